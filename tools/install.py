"""Install the package into a venv with uv, from wherever pip is told to install from.

    python3 tools/install.py VENV [REQUIREMENT ...]      e.g.  .venv -e '.[dev,server]'

`make demo` and `make test` call this. It creates VENV if it has no python, puts uv into it with
pip, and installs the requirements with `uv pip install`. Measured from a fresh clone with no
cache on a 2-core machine (README.md, "Two commands"): pip took 141 s for `-e .`, uv 40 s,
bytecode compiled in both. uv reads none of pip's settings, so the ones that say where packages
come from are passed on: pip's index URLs, extra index URLs, find-links and constraints, from
pip's configuration files and PIP_* variables alike (`pip config list`), and all indexes are
searched as pip searches them (uv's `--index-strategy unsafe-best-match`). If uv cannot be
installed, or fails, pip installs instead, and says so.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

UV = "uv==0.13.9"

# pip's settings (`pip config list` keys, without their scope) -> uv's options. A setting may
# hold several values separated by whitespace, as pip reads them.
OPTIONS = {
    "index-url": "--index-url",
    "extra-index-url": "--extra-index-url",
    "find-links": "--find-links",
    "constraint": "--constraint",
    "trusted-host": "--allow-insecure-host",
}
FLAGS = {"no-index": "--no-index"}
# pip settings uv gets through its environment instead.
ENVIRONMENT = {"cert": "SSL_CERT_FILE", "default-timeout": "UV_HTTP_TIMEOUT"}
# pip settings that change nothing of what is installed.
IGNORED = {"disable-pip-version-check", "no-cache-dir", "quiet", "verbose", "progress-bar"}


def pip_settings(pip: list[str]) -> dict[str, list[str]]:
    """pip's settings for `install`, as `pip config list` prints them (`pip`: the command that
    runs pip): environment over the `install` section over `global`, pip's own precedence."""
    listing = subprocess.run(
        [*pip, "config", "list"], capture_output=True, text=True, check=False
    ).stdout
    ranked: dict[str, tuple[int, list[str]]] = {}
    rank = {"global": 0, "install": 1, ":env:": 2}
    for line in listing.splitlines():
        key, sep, value = line.partition("=")
        scope, _, name = key.rpartition(".")
        if not sep or scope not in rank:
            continue
        values = shlex.split(value)
        values = [v for word in values for v in word.split()]
        if name not in ranked or rank[scope] >= ranked[name][0]:
            ranked[name] = (rank[scope], values)
    return {name: values for name, (_, values) in ranked.items()}


def uv_command(uv: Path, python: Path, settings: dict[str, list[str]], requirements: list[str]):
    """The `uv pip install` command line and environment that install what pip would."""
    command = [str(uv), "pip", "install", "--quiet", "--python", str(python), "--compile-bytecode"]
    command += ["--index-strategy", "unsafe-best-match"]
    env = dict(os.environ)
    for name, values in settings.items():
        if name in OPTIONS:
            for value in values:
                command += [OPTIONS[name], value]
        elif name in FLAGS and values and values[0].lower() in {"1", "true", "yes", "on"}:
            command.append(FLAGS[name])
        elif name in ENVIRONMENT and values:
            env.setdefault(ENVIRONMENT[name], values[0])
        elif name not in IGNORED:
            print(f"install: pip setting {name!r} has no uv counterpart here; not passed on")
    return command + requirements, env


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    venv, requirements = Path(argv[0]), argv[1:]
    python, pip, uv = (venv / "bin" / name for name in ("python", "pip", "uv"))
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    started = time.monotonic()
    # -qq: errors only (pip warns of each configured index that lacks uv, noise to a new user).
    if uv.exists() or _run([str(pip), "install", "-qq", UV], env) == 0:
        command, uv_env = uv_command(uv, python, pip_settings([str(pip)]), requirements)
        if _run(command, uv_env) == 0:
            seconds = time.monotonic() - started
            print(f"install: {' '.join(requirements)} with uv in {seconds:.0f} s")
            return 0
        print("install: uv failed (above); installing with pip instead")
    else:
        print(f"install: could not install {UV}; installing with pip instead")
    return _run([str(pip), "install", "-q", *requirements], env)


def _run(command: list[str], env: dict[str, str]) -> int:
    return subprocess.run(command, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

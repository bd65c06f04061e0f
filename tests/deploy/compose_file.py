"""Reading docker-compose.yml as Compose does: YAML (with merge keys), then `${VAR}` interpolation.

Shared by the static checks and the native stack test (which runs the services' own commands
and environments, with the in-network host names swapped for loopback).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
IMAGE_WORKDIR = "/opt/ablation"  # where the Dockerfile puts the repository

# $$ | ${NAME} | ${NAME<op>arg} with op in :- - :? ? :+ + | $NAME
_VAR = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


class MissingVariable(KeyError):
    """A `${VAR:?message}` whose variable is unset (or empty): Compose refuses to start."""


def load_raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def referenced_variables(text: str) -> set[str]:
    return {m["braced"] or m["bare"] for m in _VAR.finditer(text) if not m["escaped"]}


def interpolate_str(value: str, env: dict[str, str]) -> str:
    def one(m: re.Match) -> str:
        if m["escaped"]:
            return "$"
        name = m["braced"] or m["bare"]
        op, arg = m["op"], m["arg"] or ""
        present = name in env
        filled = present and env[name] != ""
        if op in (":-", "-"):
            return env[name] if (filled if op == ":-" else present) else arg
        if op in (":?", "?"):
            if not (filled if op == ":?" else present):
                raise MissingVariable(f"{name}: {arg}")
            return env[name]
        if op in (":+", "+"):
            return arg if (filled if op == ":+" else present) else ""
        return env.get(name, "")

    return _VAR.sub(one, value)


def interpolate(node: Any, env: dict[str, str]) -> Any:
    """The document with every string value interpolated (keys are left alone, as Compose does)."""
    if isinstance(node, str):
        return interpolate_str(node, env)
    if isinstance(node, list):
        return [interpolate(v, env) for v in node]
    if isinstance(node, dict):
        return {k: interpolate(v, env) for k, v in node.items()}
    return node


def read_env_file(path: Path = ENV_EXAMPLE) -> dict[str, str]:
    """KEY=VALUE lines of an env file (comments and blank lines skipped)."""
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def service_environment(doc: dict[str, Any], service: str) -> dict[str, str]:
    environment = doc["services"][service].get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.partition("=")[::2] for item in environment)
    return {k: "" if v is None else str(v) for k, v in environment.items()}


def native_command(command: list[str], python: str) -> list[str]:
    """A service's command as it runs outside the image: the repository instead of /opt/ablation."""
    out = []
    for part in command:
        if part == "python":
            part = python
        out.append(part.replace(IMAGE_WORKDIR, str(ROOT)))
    return out

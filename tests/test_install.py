"""tools/install.py: uv installs from where pip is told to install from.

`make demo` and `make test` (so every CI run) build the venv through it; these tests pin down
how pip's settings become uv's options, reading them from a real `pip config list`."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("install_tool", ROOT / "tools" / "install.py")
install = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install)


def test_pip_settings_read_files_and_environment_with_pips_precedence(tmp_path, monkeypatch):
    for name in list(os.environ):
        if name.startswith("PIP_"):
            monkeypatch.delenv(name)
    config = tmp_path / "pip.conf"
    config.write_text(
        "[global]\n"
        "index-url = http://127.0.0.1:9/simple\n"
        "extra-index-url = file:///srv/a file:///srv/b\n"
        "find-links = /global/wheels\n"
        "[install]\n"
        "find-links = /install/wheels\n"
    )
    monkeypatch.setenv("PIP_CONFIG_FILE", str(config))
    monkeypatch.setenv("PIP_CONSTRAINT", str(tmp_path / "constraints.txt"))

    settings = install.pip_settings([sys.executable, "-m", "pip"])

    assert settings["index-url"] == ["http://127.0.0.1:9/simple"]
    assert settings["extra-index-url"] == ["file:///srv/a", "file:///srv/b"]
    assert settings["find-links"] == ["/install/wheels"]  # [install] over [global]
    assert settings["constraint"] == [str(tmp_path / "constraints.txt")]  # the environment


def test_uv_command_passes_pips_sources_on(capsys):
    settings = {
        "index-url": ["http://127.0.0.1:9/simple"],
        "extra-index-url": ["file:///srv/a", "file:///srv/b"],
        "find-links": ["/wheels"],
        "constraint": ["/c.txt"],
        "no-index": ["true"],
        "cert": ["/certs.pem"],
        "disable-pip-version-check": ["1"],
        "prefer-binary": ["true"],
    }
    command, env = install.uv_command(
        Path("v/bin/uv"), Path("v/bin/python"), settings, ["-e", ".[dev]"]
    )

    assert command[:3] == ["v/bin/uv", "pip", "install"]
    assert command[-2:] == ["-e", ".[dev]"]
    pairs = list(zip(command, command[1:], strict=False))
    assert ("--python", "v/bin/python") in pairs
    assert ("--index-url", "http://127.0.0.1:9/simple") in pairs
    assert ("--extra-index-url", "file:///srv/a") in pairs
    assert ("--extra-index-url", "file:///srv/b") in pairs
    assert ("--find-links", "/wheels") in pairs
    assert ("--constraint", "/c.txt") in pairs
    assert ("--index-strategy", "unsafe-best-match") in pairs  # every index, as pip searches
    assert "--no-index" in command and "--compile-bytecode" in command
    assert env["SSL_CERT_FILE"] == os.environ.get("SSL_CERT_FILE", "/certs.pem")
    # A setting uv has no counterpart for is said, not dropped silently.
    assert "'prefer-binary'" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["false", "0"])
def test_a_setting_turned_off_is_not_passed(value):
    command, _ = install.uv_command(Path("uv"), Path("python"), {"no-index": [value]}, ["."])
    assert "--no-index" not in command

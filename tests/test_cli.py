"""The command line as a user meets it: `ablation ui` from a venv that is not activated."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from helpers import free_port, write_study


def test_ui_serves_the_store_without_the_venv_on_path(tmp_path, fresh_mlflow_uri):
    port = free_port()
    ablation = Path(sys.executable).parent / "ablation"
    env = {**os.environ, "PATH": "/usr/bin:/bin"}  # no venv: `mlflow` alone would not be found
    proc = subprocess.Popen(
        [str(ablation), "ui", "--port", str(port), "--tracking-uri", fresh_mlflow_uri],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "mlflow ui did not answer in 120 s"
                time.sleep(1)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


# --- what each command does to a store -------------------------------------------------------

COMMANDS = ("validate", "run", "submit", "status", "studies", "report", "dashboard", "ui")


def _tracking_help(command: str) -> str:
    from ablation.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    action = next(a for a in sub.choices[command]._actions if a.dest == "tracking_uri")
    return action.help


def test_every_commands_tracking_uri_help_says_what_it_means_there():
    helps = {c: _tracking_help(c) for c in COMMANDS}
    # Only the commands that read a study file take its tracking.uri first.
    assert {c for c, h in helps.items() if "tracking.uri" in h} == {"run", "submit"}
    assert "reads no store" in helps["validate"]
    for command in ("status", "studies", "report"):
        assert "read only" in helps[command], command
    assert "--no-log" in helps["dashboard"] and "--dry-run only read" in helps["run"]
    assert len(set(helps.values())) >= 6  # not one text for all


def _store_state(folder: Path, besides: Path) -> dict[str, bytes]:
    """Every file of the store's folder (the SQLite file, artifacts), but those of `besides`."""
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and besides not in p.parents
    }


def test_read_commands_and_dashboard_no_log_write_nothing_to_the_store(
    tmp_path, monkeypatch, fresh_mlflow_uri, synthetic_study_frames, log_synthetic_study, capsys
):
    from mlflow.tracking import MlflowClient

    from ablation.cli import main

    variants = [
        {"name": "none", "effect": 0.0, "levels": {"model.attention": "none"}},
        {"name": "cbam", "effect": -2.0, "levels": {"model.attention": "cbam"}},
    ]
    trials, history = synthetic_study_frames(variants, [0, 1, 2])
    parent = log_synthetic_study(fresh_mlflow_uri, "looked-at", trials, history, baseline="none")
    store = Path(fresh_mlflow_uri.removeprefix("sqlite:///")).parent
    monkeypatch.chdir(store)  # a SQLite store's artifacts go to ./mlruns
    out = tmp_path / "pages"
    before = _store_state(store, out)
    uri = ["--tracking-uri", fresh_mlflow_uri]
    assert main(["status", "looked-at", *uri]) == 0
    assert main(["studies", *uri]) == 0
    assert main(["report", "looked-at", "--format", "json", *uri]) == 0
    assert main(["dashboard", "looked-at", "-o", str(out), "--no-log", *uri]) == 0
    assert "not logged: --no-log" in capsys.readouterr().out
    # A dry run reads the store for its power plan, and writes nothing there either.
    planned = write_study(out, "planned", decision={"min_effect": 2.0})
    assert main(["run", str(planned), "--dry-run", *uri]) == 0
    assert "power plan" in capsys.readouterr().out
    assert (out / "dashboard.html").stat().st_size > 1000
    assert _store_state(store, out) == before, "a read-only command wrote to the store"
    client = MlflowClient(fresh_mlflow_uri)
    assert not [a.path for a in client.list_artifacts(parent) if a.path == "dashboard.html"]
    # Without --no-log the page is logged on the parent run: the check above can fail.
    assert main(["dashboard", "looked-at", "-o", str(out), *uri]) == 0
    assert "dashboard.html" in [a.path for a in client.list_artifacts(parent)]

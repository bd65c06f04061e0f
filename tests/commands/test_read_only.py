"""Reading commands create no store: in an empty folder they leave no file behind, and each
says which store (resolved, absolute) it looked in."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ablation.cli import main

PROBE = "import sys; from ablation.cli import main; sys.exit(main(sys.argv[1:]))"
NOTEBOOK = "from ablation import open_study; open_study('quickstart')"


@pytest.mark.parametrize(
    "argv",
    [
        ["studies"],
        ["status"],
        ["status", "quickstart"],
        ["report", "quickstart"],
        ["dashboard", "quickstart", "-o", "dash"],
        ["ui"],  # refused before the MLflow server would start
    ],
    ids=lambda a: "-".join(a[:2]),
)
def test_a_reading_command_in_an_empty_folder_creates_nothing_and_names_the_store(argv, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *argv],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    said = out.stdout + out.stderr
    assert list(tmp_path.iterdir()) == []
    assert f"no MLflow store at sqlite:///{tmp_path.resolve()}/mlflow.db" in said
    assert "INFO" not in said
    assert out.returncode == (0 if argv[0] in ("studies", "status") and len(argv) == 1 else 2)


def test_the_notebook_in_an_empty_folder_creates_nothing(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[2])
    out = subprocess.run(
        [sys.executable, "-c", NOTEBOOK], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert out.returncode == 1 and "NoStore" in out.stderr
    assert str(tmp_path.resolve() / "mlflow.db") in out.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_study_not_in_a_store_names_the_store_by_its_absolute_path(
    fresh_mlflow_uri, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path.parent)
    relative = f"sqlite:///{tmp_path.name}/mlflow.db"  # the fresh store, from its parent folder
    assert fresh_mlflow_uri.endswith(relative.removeprefix("sqlite:///"))
    store = f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert main(["status", "quickstart", "--tracking-uri", relative]) == 2
    assert f"no study 'quickstart' in the store {store}" in capsys.readouterr().err
    assert main(["report", "quickstart", "--tracking-uri", relative]) == 2
    assert store in capsys.readouterr().err
    assert main(["studies", "--tracking-uri", relative]) == 0
    assert f"no studies in the store {store}" in capsys.readouterr().out

"""Paths checked before anything starts, and a fresh store created by several processes at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import BIN, ONE_SEED, ablation_env, write_study
from mlflow.tracking import MlflowClient

CREATE = """
import sys
from mlflow.tracking import MlflowClient
from ablation.run.search import Ledger
from ablation.study import load_study
from ablation.track import stores
uri, storage, study = sys.argv[1:4]
with stores.creation_lock(uri):
    MlflowClient(uri).search_experiments(max_results=1)
with stores.creation_lock(storage):
    Ledger(storage, load_study(study), {})
print("ok")
"""


@pytest.mark.timeout(120)
def test_run_with_an_unwritable_store_says_one_line_exits_2_and_creates_nothing(
    tmp_path, ablation_processes
):
    work = tmp_path / "work"
    work.mkdir()
    path = write_study(work, "nowhere", **ONE_SEED)
    proc = ablation_processes(
        "run",
        str(path),
        "--tracking-uri",
        "sqlite:////proc/x/mlflow.db",
        env=ablation_env(tmp_path / "home"),
        cwd=work,
    )
    out, _ = proc.communicate(timeout=100)
    assert proc.returncode == 2, out
    lines = out.strip().splitlines()
    assert len(lines) == 1 and "/proc/x" in lines[0] and "cannot write" in lines[0], out
    assert "Traceback" not in out
    assert [p.name for p in work.iterdir()] == ["nowhere.yaml"]
    assert not Path("/proc/x").exists()


@pytest.mark.timeout(120)
def test_missing_dataset_root_is_a_file_line_problem_for_run_and_validate(
    tmp_path, ablation_processes
):
    root = str(tmp_path / "no-such")
    path = write_study(tmp_path, "cifar", dataset={"name": "cifar10", "root": root}, **ONE_SEED)
    e = ablation_env(tmp_path / "home")
    run = ablation_processes("run", str(path), env=e, cwd=tmp_path)
    out, _ = run.communicate(timeout=100)
    assert run.returncode == 2, out
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{path}:4: dataset.root:"), out
    assert "does not exist" in lines[0]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "ray_results").exists()

    validate = [str(BIN / "ablation"), "validate", str(path)]
    checked = subprocess.run(validate, env=e, capture_output=True, text=True, timeout=60)
    assert checked.returncode == 2 and "dataset.root" in checked.stderr
    skipped = subprocess.run(
        [*validate, "--no-data-check"], env=e, capture_output=True, text=True, timeout=60
    )
    assert skipped.returncode == 0, skipped.stderr


@pytest.mark.timeout(240)
def test_three_processes_creating_one_fresh_store_at_once_all_succeed(tmp_path):
    study = write_study(tmp_path, "fresh", **ONE_SEED)
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    storage = f"sqlite:///{tmp_path}/store/optuna.db"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CREATE, uri, storage, str(study)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=220)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], outs
    assert MlflowClient(uri).search_experiments()  # the Default experiment: a working store
    assert Path(f"{tmp_path}/store/mlflow.db.lock").exists()

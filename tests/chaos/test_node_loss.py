"""A worker node SIGKILLed mid-trial: its trials are retried, every (variant, seed) FINISHED
once. The two-node cluster and the driver run in a network namespace of the test's own whose
only interface is `lo`, so none of its traffic leaves loopback."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ablation_env, trial_runs, write_study

from ablation.track import names

HELPER = Path(__file__).with_name("node_loss_helper.py")


def _namespaces_allowed() -> bool:
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return False
    probe = ["unshare", "--net", "ip", "link", "set", "lo", "up"]
    return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0


@pytest.mark.timeout(600)
def test_worker_node_killed_mid_trial_every_trial_finished_once(tmp_path):
    if not _namespaces_allowed():
        pytest.skip("needs `unshare --net` (root or user namespaces) to keep the cluster on lo")
    path = write_study(
        tmp_path,
        "lost",
        train={"epochs": 4, "batch_size": 32, "optimizer": {"name": "sgd", "lr": 0.05}},
        seeds=[0, 1],
        resources={"cpus_per_trial": 1, "max_concurrent": 3, "max_retries": 2},
    )
    e = ablation_env(tmp_path / "home", PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(
        ["unshare", "--net", sys.executable, str(HELPER), str(tmp_path), str(path)],
        env=e,
        capture_output=True,
        text=True,
        timeout=580,
        cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    assert "killed" in out and "killed 0 " not in out, out[-4000:]
    assert proc.returncode == 0, out[-4000:]
    runs = trial_runs(f"sqlite:///{tmp_path}/mlflow.db", "lost")
    keys = [(r.data.tags[names.VARIANT], r.data.tags[names.SEED]) for r in runs]
    assert len(runs) == 4 and len(set(keys)) == 4, keys
    assert all(r.data.tags[names.STATUS] == names.STATUS_FINISHED for r in runs)

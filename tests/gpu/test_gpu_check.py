"""benchmarks/gpu_check.py on this CPU machine, under a Python that cannot import Ray, MLflow,
Optuna or pydantic (as on the GPU machine): no GPU -> exit 0 at once; --cpu-dry-run -> every
part at toy sizes, one JSON summary, in under a minute."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ablation.study.schema import TrialConfig

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
HIDDEN = ("ray", "mlflow", "optuna", "pydantic", "pydantic_core")

BLOCKER = f'''
import sys
class _Hide:
    """Hide the cluster-side packages, as the GPU machine lacks them."""
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {HIDDEN!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (hidden by the test)")
        return None
sys.meta_path.insert(0, _Hide())
'''


@pytest.fixture
def hidden_env(tmp_path):
    # sitecustomize runs in every python started with this env, the check's children too.
    (tmp_path / "sitecustomize.py").write_text(BLOCKER, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{REPO}"
    env["CUDA_VISIBLE_DEVICES"] = ""  # no GPU, even on a machine with one
    return env


def test_the_blocker_hides_them(hidden_env):
    code = "import importlib.util as u, sys; import ray"
    proc = subprocess.run(
        [sys.executable, "-c", code], env=hidden_env, capture_output=True, text=True
    )
    assert proc.returncode != 0 and "hidden by the test" in proc.stderr


def test_without_a_gpu_it_exits_0_at_once_saying_so(hidden_env):
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(SCRIPT)],
        cwd=REPO,
        env=hidden_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "no CUDA GPU" in proc.stdout and time.perf_counter() - started < 30


def test_cpu_dry_run_runs_every_part_and_prints_one_json_summary(hidden_env):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--cpu-dry-run"],
        cwd=REPO,
        env=hidden_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    start = re.search(r"(?m)^\{", proc.stdout)  # the summary: the last thing printed
    assert start, proc.stdout[-3000:]
    summary = json.loads(proc.stdout[start.start() :])
    assert summary["dry_run"] is True
    for part in ("tests", "cbam_overhead", "packing", "loader"):
        assert "error" not in summary[part], summary[part]
    assert summary["tests"]["passed"] >= 4 and summary["tests"]["failed"] == 0
    assert summary["cbam_overhead"]["eager"]["step_ms"]["none"] > 0
    assert summary["cbam_overhead"]["compiled"]["step_ms"]["cbam_reference"] > 0
    assert [r["processes"] for r in summary["packing"]["rows"]] == [1, 2]
    assert all(r["finished"] == r["processes"] for r in summary["packing"]["rows"])
    assert summary["loader"]["device_resident_images_per_second"] > 0
    # Its time is the check's own figure (summary["seconds"]; benchmarks/README.md), not a test.


def test_the_checks_trial_config_is_a_complete_schema_dump():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    cfg = module.trial_config()
    assert TrialConfig.model_validate(cfg).model_dump(mode="json") == cfg

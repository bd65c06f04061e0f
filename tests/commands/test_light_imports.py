"""`validate`, `status`, `studies` and `report` import neither torch nor Ray (seconds each)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"

PROBE = """
import json, sys
from ablation.cli import main
code = main(sys.argv[1:])
heavy = sorted(m for m in ("torch", "ray", "torchvision") if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}))
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", str(EXPERIMENTS / "quickstart.yaml")],
        ["status"],
        ["studies"],
        ["status", "quickstart"],
        ["report", "quickstart"],
    ],
    ids=["validate", "status-alone", "studies", "status", "report"],
)
def test_light_commands_import_neither_torch_nor_ray(argv, fresh_mlflow_uri):
    if argv[0] != "validate":
        argv = [*argv, "--tracking-uri", fresh_mlflow_uri]
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, timeout=120
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["code"] in (0, 2), out.stderr
    assert result["heavy"] == [], f"{argv[0]} imported {result['heavy']}"


def test_the_probe_sees_a_command_that_imports_torch():
    probe = "import sys, ablation.commands.profile; print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.stdout.strip() == "True", out.stderr

"""Helpers of the fault tests: tiny study files, `ablation` processes, their process trees."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import yaml
from mlflow.tracking import MlflowClient

from ablation.track import names

BIN = Path(sys.executable).parent
TINY = {
    "dataset": {"name": "digits", "image_size": 16, "train_samples": 200, "val_samples": 100},
    "model": {"backbone": "resnet20", "attention": "cbam"},
    "train": {"epochs": 2, "batch_size": 64, "optimizer": {"name": "sgd", "lr": 0.05}},
    "factors": {"model.cbam.kernel_size": [3, 7]},
    "seeds": [0],
    "resources": {"cpus_per_trial": 1, "max_concurrent": 1, "max_retries": 0},
}


def write_study(folder: Path, name: str, **changes) -> Path:
    """A tiny study file (2 variants x 1 seed of resnet20 on 16px digits, 2 epochs)."""
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"study": name, **TINY, **changes}, sort_keys=False))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(home: Path, **extra: str) -> dict[str, str]:
    """An environment of our own: HOME (no ~/.ray token), a Ray auth token, no RAY_ADDRESS."""
    out = {
        **os.environ,
        "HOME": str(home),
        "RAY_AUTH_TOKEN": secrets.token_hex(32),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }
    out.pop("RAY_ADDRESS", None)
    out.pop("MLFLOW_TRACKING_URI", None)
    return out


def ablation(*args: str, env: dict, **kw) -> subprocess.Popen:
    """`ablation ARGS` in a session of its own (its whole tree can be found and ended)."""
    return subprocess.Popen(
        [str(BIN / "ablation"), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **kw,
    )


def trial_runs(uri: str, study: str) -> list:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(study)
    if exp is None:
        return []
    return [
        r
        for r in client.search_runs([exp.experiment_id])
        if r.data.tags.get(names.ROLE) == names.ROLE_TRIAL
    ]


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 240, poll: float = 0.5) -> None:
    """Poll until predicate() is true; fail with the process's output if it ends first."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(proc.communicate()[0])
        assert time.monotonic() < deadline, "timed out"
        time.sleep(poll)


def session_processes(sid: int) -> list[psutil.Process]:
    """Every live process of session `sid` (Ray's daemons stay in the driver's session)."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getsid(proc.pid) == sid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
    return found


def end_session(sid: int) -> None:
    """SIGKILL whatever is left of a session we started (a failed test's leftovers)."""
    for proc in session_processes(sid):
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL)

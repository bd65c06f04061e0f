"""What several test modules share: tiny study files, free ports, `ablation` and `ray start`
processes, finding and ending our own processes, headless Chromium, paired study frames.

Imported as `helpers`: pytest puts tests/ on sys.path (tests/conftest.py), and the scripts the
tests run as subprocesses (tests/chaos/node_loss_helper.py) put it there themselves.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psutil
import yaml

BIN = Path(sys.executable).parent

# --- the suite on two workers -----------------------------------------------------------------

# The folders of tests/ whose tests start Ray clusters, servers, browsers or study processes.
# They time lease expiries, heartbeats and signals, and each wants the machine's cores, so
# `make test` (pytest-xdist, --dist loadgroup) runs them one after another on one worker, never
# two of them at once, while the rest (statistics, models, reports, study files) go to whichever
# worker is free (tests/conftest.py marks them). A new folder of such tests belongs here.
SERIAL_TESTS = ("run", "chaos", "deploy", "gpu", "dashboard")

# --- study files ------------------------------------------------------------------------------

TINY: dict[str, Any] = {
    "dataset": {"name": "digits", "image_size": 16, "train_samples": 200, "val_samples": 100},
    "model": {"backbone": "resnet20", "attention": "cbam"},
    "train": {"epochs": 2, "batch_size": 64, "optimizer": {"name": "sgd", "lr": 0.05}},
    "factors": {"model.cbam.kernel_size": [3, 7]},
    "seeds": [0, 1],
    "resources": {"cpus_per_trial": 1, "max_concurrent": 2, "max_retries": 0},
}
# One seed, one trial at a time: a tiny study whose processes stay few.
ONE_SEED: dict[str, Any] = {
    "seeds": [0],
    "resources": {"cpus_per_trial": 1, "max_concurrent": 1, "max_retries": 0},
}


def write_study(folder: Path, name: str, **changes: Any) -> Path:
    """A tiny study file `folder/name.yaml` (2 variants x 2 seeds of resnet20 on 16px digits,
    2 epochs); `changes` replace whole sections."""
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"study": name, **TINY, **changes}, sort_keys=False))
    return path


def paired_study(
    effects: dict[str, float], n: int, seed: int = 0, metric: str = "val_top1_error"
) -> pd.DataFrame:
    """Finished trials of `base` and each variant over `n` seeds, paired by seed: a variant's
    value is the base's at that seed + its effect + N(0, 1)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(30, 2, n)
    rows = []
    for v, e in {"base": 0.0, **effects}.items():
        x = base + e + (rng.normal(0, 1, n) if v != "base" else 0)
        rows += [
            {"trial_id": f"{v}-{s}", "variant": v, "seed": s, "status": "FINISHED", metric: x[s]}
            for s in range(n)
        ]
    return pd.DataFrame(rows)


# --- ports and processes ----------------------------------------------------------------------


def free_port() -> int:
    """A loopback port free now (a process started next may take it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ablation_env(home: Path, **extra: str) -> dict[str, str]:
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


def ablation(*args: str, env: dict[str, str], **kw: Any) -> subprocess.Popen[str]:
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


# The ports a Ray node opens besides the GCS's; each is given a free one, so that a Ray someone
# else runs on this machine cannot collide with ours.
NODE_PORTS = (
    "--node-manager-port",
    "--object-manager-port",
    "--metrics-export-port",
    "--runtime-env-agent-port",
    "--dashboard-agent-grpc-port",
    "--dashboard-agent-listen-port",
)


def ray_start(temp: str, env: dict[str, str], *args: str) -> None:
    """`ray start ARGS` of a node on 127.0.0.1 whose temp dir is `temp` and ports are free ones."""
    subprocess.run(
        [
            str(BIN / "ray"),
            "start",
            "--node-ip-address",
            "127.0.0.1",
            "--temp-dir",
            temp,
            "--disable-usage-stats",
            *args,
            *[x for p in NODE_PORTS for x in (p, str(free_port()))],
        ],
        env=env,
        check=True,
        timeout=240,
        capture_output=True,
    )


def trial_runs(uri: str, study: str) -> list[Any]:
    """The MLflow trial runs of `study` in the store at `uri` (none if it has no experiment).

    A test polls while a driver may be creating the store: a SQLite file not there yet is left
    alone, and the first read waits on the store's creation lock, as a second process of the
    project's own would (MLflow migrates the tables of a store it opens; two at once fail)."""
    from mlflow.tracking import MlflowClient

    from ablation.track import names, stores
    from ablation.track.reader import sqlite_path

    file = sqlite_path(uri)
    if file is not None and not file.exists():
        return []
    with stores.creation_lock(uri):
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name(study)
    if exp is None:
        return []
    return [
        r
        for r in client.search_runs([exp.experiment_id])
        if r.data.tags.get(names.ROLE) == names.ROLE_TRIAL
    ]


def wait_for(
    predicate: Callable[[], bool],
    proc: subprocess.Popen[str],
    timeout: float = 240,
    poll: float = 0.5,
) -> None:
    """Poll until predicate() is true; fail with the process's output if it ends first."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(proc.communicate()[0])
        assert time.monotonic() < deadline, "timed out"
        time.sleep(poll)


def _live(proc: psutil.Process) -> bool:
    return proc.pid != os.getpid() and proc.status() != psutil.STATUS_ZOMBIE


def session_processes(sid: int) -> list[psutil.Process]:
    """Every live process of session `sid` (Ray's daemons stay in the driver's session)."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            if os.getsid(proc.pid) == sid and _live(proc):
                found.append(proc)
    return found


def processes_marked(marker: str) -> list[psutil.Process]:
    """Our processes and their descendants: those whose command line names `marker` (a private
    temp dir), or, for a marker `NAME=value`, whose environment holds that entry."""
    found: dict[int, psutil.Process] = {}
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error, OSError):
            named = marker in " ".join(proc.cmdline())
            if not named and "=" in marker:
                name, _, value = marker.partition("=")
                named = proc.environ().get(name) == value
            if named and _live(proc):
                found[proc.pid] = proc
                for child in proc.children(recursive=True):
                    found.setdefault(child.pid, child)
    return list(found.values())


def end_processes(procs: list[psutil.Process], grace: float = 10) -> None:
    """SIGTERM, then SIGKILL whatever still runs after `grace` seconds (at once when 0)."""
    if grace > 0:
        for proc in procs:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGTERM)
        _, procs = psutil.wait_procs(procs, timeout=grace)
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL)


def end_session(sid: int) -> None:
    """SIGKILL whatever is left of a session we started (a failed test's leftovers)."""
    end_processes(session_processes(sid), grace=0)


# --- a real browser ---------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def chromium(
    url: str, profile: Path | str, *flags: str, timeout: float = 90
) -> subprocess.CompletedProcess[str]:
    """Headless Chromium on `url` with a profile of its own and none of its background traffic."""
    assert CHROMIUM is not None, "needs Debian's chromium package (make system-deps)"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={profile}",
        *flags,
        url,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

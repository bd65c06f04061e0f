"""Shared test fixtures. Append only: small, clearly named sections."""

from __future__ import annotations

import contextlib
import hashlib
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from helpers import SERIAL_TESTS, ablation, end_session, free_port

# --- report/dashboard: synthetic studies with known effects, as runs frames or in MLflow ------


def _synthetic_study_frames(
    variants: list[dict],
    seeds: list[int],
    *,
    base: float = 30.0,
    noise: float = 0.5,
    seed_sd: float = 1.0,
    epochs: int = 3,
    statuses: dict[tuple[str, int], str] | None = None,
    rng_seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """trials/history frames (docs/architecture.md) where variant v at seed s has the final
    val_top1_error = base + seed_offset[s] + v["effect"] + N(0, noise).

    Each variant dict: name, effect, optional levels {factor key: display level}, params.
    A (variant, seed) listed in ``statuses`` gets that status; a FAILED one has an error, no
    final metrics and one epoch of history, a STOPPED one stops after the first epoch.
    """
    rng = np.random.default_rng(rng_seed)
    offsets = {s: rng.normal(0, seed_sd) for s in seeds}
    factor_keys = sorted({k for v in variants for k in v.get("levels", {})})
    trials, history = [], []
    for v in variants:
        for s in seeds:
            status = (statuses or {}).get((v["name"], s), "FINISHED")
            final = base + offsets[s] + v["effect"] + rng.normal(0, noise)
            trial_id = hashlib.sha256(f"{v['name']}/{s}".encode()).hexdigest()[:16]
            n_epochs = epochs if status == "FINISHED" else 1
            row = {
                "trial_id": trial_id,
                "run_id": f"run-{v['name']}-{s}",
                "variant": v["name"],
                "seed": s,
                "status": status,
                "error": "RuntimeError: loss is nan" if status == "FAILED" else None,
                "epochs_completed": n_epochs,
            }
            for k in factor_keys:
                row["factor." + k] = v.get("levels", {}).get(k)
            for e in range(1, n_epochs + 1):
                # Curves fall towards the final value; a stopped trial's last value is far off.
                top1 = final + 10.0 * (epochs - e)
                history.append(
                    {
                        "trial_id": trial_id,
                        "variant": v["name"],
                        "seed": s,
                        "epoch": e,
                        "train_loss": 2.0 / e + 0.01 * v["effect"],
                        "val_loss": 2.2 / e,
                        "val_top1_error": top1,
                        "val_top5_error": top1 / 4,
                        "lr": 0.1 / e,
                        "epoch_seconds": 1.0,
                        "images_per_second": 100.0,
                    }
                )
            if status != "FAILED":
                last = history[-1]
                row.update({m: last[m] for m in ("train_loss", "val_loss", "val_top1_error")})
                row["val_top5_error"] = last["val_top5_error"]
                row["params"] = float(v.get("params", 270_000))
                row["gflops"] = float(v.get("gflops", 0.041))
                row["latency_ms"] = float(v.get("latency_ms", 2.0))
                row["train_seconds"] = float(n_epochs)
            trials.append(row)
    return pd.DataFrame(trials), pd.DataFrame(history)


def _log_synthetic_study(
    tracking_uri: str,
    study: str,
    trials: pd.DataFrame,
    history: pd.DataFrame,
    *,
    baseline: str,
    metric: str = "val_top1_error",
    mode: str = "min",
    design: str = "full-factorial",
    params: dict[str, str] | None = None,
) -> str:
    """Write a parent run and one child run per trial exactly per the MLflow names contract;
    return the parent run id. `params`: each trial's (flattened) config params."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    from ablation.track import names

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name(study)
    exp_id = exp.experiment_id if exp else client.create_experiment(study)
    parent = client.create_run(
        exp_id,
        run_name=study,
        tags={
            names.ROLE: names.ROLE_STUDY,
            names.STUDY_HASH: "0" * 16,
            names.DESIGN: design,
            names.BASELINE: baseline,
            names.METRIC: metric,
            names.METRIC_MODE: mode,
            names.GIT_COMMIT: "synthetic",
        },
    ).info.run_id
    factor_cols = [c for c in trials.columns if c.startswith(names.FACTOR_PREFIX)]
    for t in trials.to_dict("records"):
        tags = {
            names.PARENT_RUN_ID: parent,
            names.ROLE: names.ROLE_TRIAL,
            names.TRIAL_ID: t["trial_id"],
            names.VARIANT: t["variant"],
            names.SEED: str(t["seed"]),
            names.STATUS: t["status"],
        }
        if isinstance(t.get("error"), str):
            tags[names.ERROR] = t["error"]
        for c in factor_cols:
            level = t[c]
            if isinstance(level, str):
                tags[c] = json.dumps(level.split("+") if "+" in level else _scalar(level))
        run = client.create_run(exp_id, run_name=names.run_name(t["variant"], t["seed"]), tags=tags)
        rid = run.info.run_id
        h = history[history["trial_id"] == t["trial_id"]]
        metrics = [
            Metric(m, float(r[m]), 0, int(r["epoch"]))
            for _, r in h.iterrows()
            for m in names.EPOCH_METRICS
            if m in r and pd.notna(r[m])
        ]
        last = int(h["epoch"].max()) if len(h) else 0
        for m in names.FINAL_METRICS:
            value = t.get(m)
            if m == "epochs_completed":
                value = t["epochs_completed"]
            if value is not None and pd.notna(value):
                metrics.append(Metric(m, float(value), 0, last))
        logged = params or {"model.backbone": "resnet20", "train.epochs": "3"}
        client.log_batch(
            rid,
            metrics=metrics,
            params=[Param(k, v) for k, v in logged.items()],
            tags=[RunTag("synthetic", "1")],
        )
        mlflow_status = {"FINISHED": "FINISHED", "FAILED": "FAILED"}.get(t["status"], "KILLED")
        client.set_terminated(rid, status=mlflow_status)
    client.set_terminated(parent)
    return parent


def _scalar(level: str):
    try:
        return int(level)
    except ValueError:
        return level


@pytest.fixture(scope="session")
def synthetic_study_frames():
    """Build trials/history frames with planted effects (see `_synthetic_study_frames`)."""
    return _synthetic_study_frames


@pytest.fixture(scope="session")
def log_synthetic_study():
    """Write synthetic trials/history into a real MLflow store per the names contract."""
    return _log_synthetic_study


@pytest.fixture(scope="session")
def _mlflow_template_db(tmp_path_factory):
    """An empty MLflow SQLite store, migrated once per session (creating one takes ~10 s)."""
    from mlflow.tracking import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def fresh_mlflow_uri(tmp_path, _mlflow_template_db):
    """A fresh, empty MLflow SQLite store in tmp_path (a copy of the migrated template)."""
    import shutil

    path = tmp_path / "mlflow.db"
    shutil.copyfile(_mlflow_template_db, path)
    return f"sqlite:///{path}"


# --- attention/models/profile: one torch thread ------------------------------------------------


@pytest.fixture(scope="module")
def torch_single_thread():
    """Run torch on one thread: on a shared 2-core machine, OpenMP threads waiting on each other
    made small forward/backward passes ~10x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --- a real `mlflow server` process (report/dashboard and production-path tests) ---------------


@pytest.fixture
def start_mlflow_server(tmp_path):
    """Start a real `mlflow server` on a backend store URI with proxied artifacts in tmp_path;
    returns its URL once /health answers. Stopped (its whole process group) at teardown."""
    import os
    import signal
    import sys
    import time
    import urllib.request
    from pathlib import Path

    started: list[tuple[subprocess.Popen, object]] = []

    def start(backend_store_uri: str, *, timeout: float = 180.0) -> str:
        port = free_port()
        log_path = tmp_path / f"mlflow-server-{port}.log"
        log = open(log_path, "w")  # noqa: SIM115 (closed at teardown)
        cmd = [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            backend_store_uri,
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ]
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        started.append((proc, log))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        return url
            except OSError:
                pass
            assert proc.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow server did not come up"
            time.sleep(0.5)

    yield start
    for proc, log in started:
        # The server runs its workers in the session we gave it: stop exactly that group.
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()


# --- `ablation` processes of the test's own ---------------------------------------------------


@pytest.fixture
def ablation_processes():
    """Start `ablation ARGS` processes (`helpers.ablation`), each in a session of its own; at
    teardown, whatever is left of those sessions is killed (a failed test's leftovers)."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str, env: dict[str, str], **kw: Any) -> subprocess.Popen[str]:
        proc = ablation(*args, env=env, **kw)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        end_session(proc.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=10)


# --- two workers: `make test` runs pytest-xdist with --dist loadgroup --------------------------


def pytest_collection_modifyitems(config, items):
    """The tests under helpers.SERIAL_TESTS run one after another on one worker (one xdist
    group); the rest go to whichever worker is free."""
    root = Path(__file__).parent
    for item in items:
        parts = item.path.relative_to(root).parts
        if len(parts) > 1 and parts[0] in SERIAL_TESTS:
            item.add_marker(pytest.mark.xdist_group("processes"))

"""`ablation run` processes with their own in-process Ray: two drivers started together on one
study, SIGTERM mid-study then a rerun, and the embedded cluster listening on loopback only."""

from __future__ import annotations

import ipaddress
import signal
import time

import optuna
import psutil
import pytest
from helpers import (
    ONE_SEED,
    ablation_env,
    end_session,
    session_processes,
    trial_runs,
    wait_for,
    write_study,
)

from ablation.track import names


def _listening_beyond_loopback(sid: int) -> list[str]:
    found = []
    for proc in session_processes(sid):
        try:
            conns = proc.net_connections(kind="inet")
        except psutil.Error:
            continue
        for c in conns:
            ip = ipaddress.ip_address(c.laddr.ip)
            ip = getattr(ip, "ipv4_mapped", None) or ip  # ::ffff:127.0.0.1 is 127.0.0.1
            if c.status == psutil.CONN_LISTEN and not ip.is_loopback:
                found.append(f"{proc.name()} {c.laddr.ip}:{c.laddr.port}")
    return found


def _finished_once(uri: str, study: str, n: int) -> None:
    runs = trial_runs(uri, study)
    ids = [r.data.tags[names.TRIAL_ID] for r in runs]
    assert len(runs) == n and len(set(ids)) == n, [r.data.tags for r in runs]
    assert all(r.data.tags[names.STATUS] == names.STATUS_FINISHED for r in runs)


@pytest.mark.timeout(400)
def test_two_drivers_started_together_one_refuses_no_duplicates(tmp_path, ablation_processes):
    path = write_study(tmp_path, "twice", train=_train(1), **ONE_SEED)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    e = ablation_env(tmp_path / "home")
    args = ("run", str(path), "--tracking-uri", uri)
    procs = [ablation_processes(*args, env=e, cwd=tmp_path) for _ in "ab"]
    outs = [p.communicate(timeout=360)[0] for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], outs
    refusal = outs[[p.returncode for p in procs].index(2)].strip().splitlines()
    assert len(refusal) == 1 and "is being run by another driver" in refusal[0], refusal
    _finished_once(uri, "twice", 2)
    ostudy = optuna.load_study(study_name="twice", storage=f"sqlite:///{tmp_path}/optuna.db")
    assert len([t for t in ostudy.get_trials() if t.state.name == "COMPLETE"]) == 2


def _left_behind(pid: int, seconds: float) -> list:
    """The processes of `pid`'s session still alive after up to `seconds`."""
    deadline = time.monotonic() + seconds
    while (left := session_processes(pid)) and time.monotonic() < deadline:
        time.sleep(0.5)
    return left


@pytest.mark.timeout(500)
def test_local_run_listens_on_loopback_only_and_sigterm_stops_like_ctrl_c(
    tmp_path, ablation_processes
):
    path = write_study(tmp_path, "termed", train=_train(4), **ONE_SEED)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    e = ablation_env(tmp_path / "home")
    first = ablation_processes("run", str(path), "--tracking-uri", uri, env=e, cwd=tmp_path)
    try:
        wait_for(lambda: any(r.info.status == "RUNNING" for r in trial_runs(uri, "termed")), first)
        assert _listening_beyond_loopback(first.pid) == []
        assert len(session_processes(first.pid)) > 3  # GCS, raylet, workers: all were seen
        first.send_signal(signal.SIGTERM)
        out, _ = first.communicate(timeout=120)
        # Ray's processes go once the driver has shut it down (a few seconds at most).
        left_behind = _left_behind(first.pid, seconds=30)
    finally:
        end_session(first.pid)
    assert first.returncode == 1, out
    assert "continue the study with:" in out and f"run {path}" in out, out
    for trace in ("Traceback", "SIGABRT", "Aborted", "*** SIG", "stack trace"):
        assert trace not in out, out
    runs = trial_runs(uri, "termed")
    assert runs and all(r.info.status != "RUNNING" for r in runs)
    assert left_behind == []  # Ray shut down, nothing left behind

    second = ablation_processes("run", str(path), "--tracking-uri", uri, env=e, cwd=tmp_path)
    out, _ = second.communicate(timeout=360)
    assert second.returncode == 0, out
    _finished_once(uri, "termed", 2)


def _train(epochs: int) -> dict:
    return {"epochs": epochs, "batch_size": 32, "optimizer": {"name": "sgd", "lr": 0.05}}

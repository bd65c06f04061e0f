"""The study lease (ablation.run.lease) against a real SQLite Optuna storage and real processes:
two drivers starting at the same instant, a stale lease taken over, the refusal's one line."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from ablation.run import lease as lease_mod
from ablation.run.lease import LeaseHeld, StudyLease

RACER = Path(__file__).with_name("lease_racer.py")


@pytest.mark.timeout(120)
def test_two_processes_racing_for_the_lease_twenty_times_one_always_refused(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    StudyLease(storage, "warm-up").engine.dispose()
    rounds, step = 20, 0.6
    t0 = time.time() + 8  # both racers have imported by then
    procs = [
        subprocess.Popen(
            [sys.executable, str(RACER), storage, str(rounds), str(t0), str(step)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=100)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    for i in range(rounds):
        lines = [line for out in outs for line in out.splitlines() if line.split()[0] == str(i)]
        assert sorted(line.split()[1] for line in lines) == ["refused", "won"], (i, outs)
        refusal = next(line for line in lines if " refused " in line)
        assert "is being run by another driver" in refusal and "since" in refusal


def test_refusal_names_the_holder_and_since_when_and_touches_nothing(tmp_path):
    storage = f"sqlite:///{tmp_path}/optuna.db"
    with StudyLease(storage, "s", owner="laptop:4242:1.0") as held:
        with pytest.raises(LeaseHeld) as err:
            StudyLease(storage, "s").acquire()
        assert held.holder().owner == "laptop:4242:1.0"  # unchanged by the refused driver
    text = str(err.value)
    assert "\n" not in text and "pid 4242 on laptop" in text and "since" in text
    assert StudyLease(storage, "s").holder() is None  # released at the end


def test_stale_lease_is_taken_over_by_exactly_one_of_two(tmp_path, monkeypatch):
    monkeypatch.setenv(lease_mod.TIMEOUT_ENV, "5")
    storage = f"sqlite:///{tmp_path}/optuna.db"
    dead = StudyLease(storage, "s", owner="gone:1:1.0")
    dead.acquire()
    dead._stop.set()  # a SIGKILLed driver: no more heartbeats, the row stays
    with dead.engine.begin() as db:
        db.execute(sa.update(lease_mod._leases).values(heartbeat=time.time() - 30))
    takers = [StudyLease(storage, "s", owner=f"new:{n}:1.0") for n in (2, 3)]
    outcome: dict[str, object] = {}
    barrier = threading.Barrier(2)

    def take(taker: StudyLease) -> None:
        barrier.wait()
        try:
            taker.acquire()
            outcome[taker.owner] = taker.took_over
        except LeaseHeld as err:
            outcome[taker.owner] = err

    threads = [threading.Thread(target=take, args=(t,)) for t in takers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    won = [o for o, v in outcome.items() if not isinstance(v, LeaseHeld)]
    assert len(won) == 1, outcome
    assert outcome[won[0]].owner == "gone:1:1.0"
    assert StudyLease(storage, "s").holder().owner == won[0]
    for taker in takers:
        if taker.owner in won:
            taker.release()


def test_heartbeat_keeps_a_lease_alive_past_the_timeout(tmp_path, monkeypatch):
    monkeypatch.setenv(lease_mod.TIMEOUT_ENV, "2")
    monkeypatch.setenv(lease_mod.HEARTBEAT_ENV, "0.3")
    storage = f"sqlite:///{tmp_path}/optuna.db"
    with StudyLease(storage, "s"):
        time.sleep(3)
        with pytest.raises(LeaseHeld):
            StudyLease(storage, "s").acquire()


def test_a_killed_driver_of_this_machine_is_taken_over_at_once_a_live_one_is_not(tmp_path):
    """A SIGKILLed driver leaves its lease behind; a rerun on the same machine (same pid
    namespace) sees that the pid is gone and takes over without waiting for the timeout."""
    storage = f"sqlite:///{tmp_path}/optuna.db"
    space = lease_mod.make_owner().split(":", 3)[3]
    assert space  # /proc names this machine's pid namespace here
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    try:
        with (
            StudyLease(storage, "s", owner=f"here:{live.pid}:1.0:{space}"),
            pytest.raises(LeaseHeld),
        ):
            StudyLease(storage, "s").acquire()
        with StudyLease(storage, "s", owner=f"here:{dead.pid}:1.0:{space}"):
            rerun = StudyLease(storage, "s")
            rerun.acquire()
            assert rerun.took_over is not None and rerun.took_over.owner.startswith("here:")
            rerun.release()
        # Another machine's (or container's) pid says nothing here: the heartbeat decides.
        with (
            StudyLease(storage, "s", owner=f"there:{dead.pid}:1.0:other-boot/1"),
            pytest.raises(LeaseHeld),
        ):
            StudyLease(storage, "s").acquire()
    finally:
        live.kill()
        live.wait()

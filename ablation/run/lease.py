"""The study lease: one live driver per study, recorded in the study's Optuna storage.

A driver holds the lease while it runs the study: a row of the table `ablation_study_lease`
(study, owner `host:pid:start:space`, since, heartbeat) in the Optuna storage's database (SQLite or
PostgreSQL, the database both drivers of one study share). Taking it is an INSERT, which the
primary key makes fail for the second of two drivers starting at the same instant; taking over
a lease whose heartbeat is older than the timeout (a SIGKILLed driver, a lost node) is an UPDATE
conditioned on the row read, so of two drivers taking over at once exactly one wins. A daemon
thread refreshes the heartbeat; the lease is deleted when the driver ends. A holder that is a
process of this machine's pid namespace and no longer runs (SIGKILLed a moment ago) is taken
over at once, so a rerun after `kill -9` need not wait for the timeout.

The timeout and the heartbeat interval come from ABLATION_LEASE_TIMEOUT (seconds, default 60)
and ABLATION_LEASE_HEARTBEAT (default 10).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError

from ablation.run.search import storage_url
from ablation.track import stores

log = logging.getLogger(__name__)

TIMEOUT_ENV = "ABLATION_LEASE_TIMEOUT"
HEARTBEAT_ENV = "ABLATION_LEASE_HEARTBEAT"
TABLE = "ablation_study_lease"

_metadata = sa.MetaData()
_leases = sa.Table(
    TABLE,
    _metadata,
    sa.Column("study", sa.String(512), primary_key=True),
    sa.Column("owner", sa.String(512), nullable=False),
    sa.Column("since", sa.Float, nullable=False),
    sa.Column("heartbeat", sa.Float, nullable=False),
)


class LeaseHeld(RuntimeError):
    """Another live driver runs the study; str() is the one line to print."""

    def __init__(self, study: str, owner: str, since: float, heartbeat: float) -> None:
        self.study, self.owner, self.since, self.heartbeat = study, owner, since, heartbeat
        host, pid = (owner.split(":") + ["?", "?"])[:2]
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
        super().__init__(
            f"study {study} is being run by another driver (pid {pid} on {host}, since {when}, "
            f"last heartbeat {max(0.0, time.time() - heartbeat):.0f}s ago); wait for it, or "
            f"stop it: its lease is taken over {_timeout():.0f}s after its last heartbeat"
        )


@dataclass(frozen=True)
class Holder:
    owner: str
    since: float
    heartbeat: float


def _timeout() -> float:
    return float(os.environ.get(TIMEOUT_ENV, "60"))


def _interval() -> float:
    return float(os.environ.get(HEARTBEAT_ENV, "10"))


def make_owner() -> str:
    """`host:pid:start:space` of this process; `space` names its process-id namespace on this
    boot of this machine, so that another driver seeing the same space may ask the kernel
    whether the pid still runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{time.time():.3f}:{_pid_space()}"


def _pid_space() -> str:
    """This boot's id and the inode of our pid namespace (empty where /proc does not say)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.stat('/proc/self/ns/pid').st_ino}"
    except OSError:
        return ""


def _gone(owner: str) -> bool:
    """The owner is a process of our pid namespace that no longer runs (a SIGKILLed driver).
    A reused pid reads as alive: then the heartbeat's timeout decides, as for another machine."""
    parts = owner.split(":")
    if len(parts) < 4 or not parts[3] or parts[3] != _pid_space():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


class StudyLease:
    """The lease of one study in one Optuna storage (see the module's docstring)."""

    def __init__(self, storage: str, study: str, *, owner: str | None = None) -> None:
        self.storage, self.study = storage, study
        self.owner = owner or make_owner()
        url = storage_url(storage)
        kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
        self.engine = sa.create_engine(url, **kwargs)
        self.took_over: Holder | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> StudyLease:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lease (or take over a stale one) and start the heartbeat; else LeaseHeld."""
        with stores.creation_lock(self.storage):
            _metadata.create_all(self.engine, checkfirst=True)
        for _ in range(20):  # a lease released between our INSERT and SELECT: try again
            now = time.time()
            try:
                with self.engine.begin() as db:
                    db.execute(
                        _leases.insert().values(
                            study=self.study, owner=self.owner, since=now, heartbeat=now
                        )
                    )
                break
            except IntegrityError:
                pass
            holder = self.holder()
            if holder is None:
                continue
            if now - holder.heartbeat <= _timeout() and not _gone(holder.owner):
                self.engine.dispose()
                raise LeaseHeld(self.study, holder.owner, holder.since, holder.heartbeat)
            if self._take_over(holder, now):
                self.took_over = holder
                break
        else:  # pragma: no cover (twenty lost races in a row)
            raise RuntimeError(f"could not take the lease of study {self.study}")
        self._thread = threading.Thread(target=self._beat, name="study-lease", daemon=True)
        self._thread.start()

    def _take_over(self, holder: Holder, now: float) -> bool:
        """Compare-and-set: only the row as read is replaced, so one of two takers wins."""
        with self.engine.begin() as db:
            done = db.execute(
                _leases.update()
                .where(
                    (_leases.c.study == self.study)
                    & (_leases.c.owner == holder.owner)
                    & (_leases.c.heartbeat == holder.heartbeat)
                )
                .values(owner=self.owner, since=now, heartbeat=now)
            )
            return done.rowcount == 1

    def holder(self) -> Holder | None:
        """Who holds the lease now, if anyone."""
        with self.engine.connect() as db:
            row = db.execute(
                sa.select(_leases.c.owner, _leases.c.since, _leases.c.heartbeat).where(
                    _leases.c.study == self.study
                )
            ).first()
        return Holder(*row) if row else None

    def _beat(self) -> None:
        while not self._stop.wait(_interval()):
            try:
                with self.engine.begin() as db:
                    done = db.execute(
                        _leases.update()
                        .where((_leases.c.study == self.study) & (_leases.c.owner == self.owner))
                        .values(heartbeat=time.time())
                    )
                if done.rowcount == 0:
                    log.error("the lease of study %s was taken over by another driver", self.study)
                    return
            except OperationalError as err:  # a busy or unreachable database: try next beat
                log.warning("lease heartbeat of study %s failed: %s", self.study, err)

    def release(self) -> None:
        """Stop the heartbeat and delete the lease (if still ours)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        try:
            with self.engine.begin() as db:
                db.execute(
                    _leases.delete().where(
                        (_leases.c.study == self.study) & (_leases.c.owner == self.owner)
                    )
                )
        finally:
            self.engine.dispose()

"""The folders helpers.SERIAL_TESTS names exist: a renamed one would otherwise leave its
cluster tests ungrouped, running beside each other on the two workers of `make test`. And the
tests' store polling (helpers.trial_runs) never migrates a store a driver is creating."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from helpers import SERIAL_TESTS, trial_runs

from ablation.track import stores

TESTS = Path(__file__).resolve().parent


def test_every_serial_folder_exists_and_holds_tests():
    for folder in SERIAL_TESTS:
        assert list((TESTS / folder).glob("test_*.py")), folder


def test_the_serial_tests_share_one_xdist_group(request):
    marked = {
        item.path.relative_to(TESTS).parts[0]
        for item in request.session.items
        if item.get_closest_marker("xdist_group")
    }
    assert marked <= set(SERIAL_TESTS)


def test_polling_a_store_not_created_yet_creates_nothing(tmp_path):
    assert trial_runs(f"sqlite:///{tmp_path}/mlflow.db", "s") == []
    assert list(tmp_path.iterdir()) == []


def _waiting_on(lock: Path) -> bool:
    """Whether some process waits for an flock on `lock` (Linux's /proc/locks marks it ->)."""
    inode = f":{lock.stat().st_ino} "
    return any(
        "->" in line and inode in line for line in Path("/proc/locks").read_text().split("\n")
    )


def test_polling_waits_while_a_driver_creates_the_store(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    done = threading.Event()
    with stores.creation_lock(uri):  # as the driver holds it while MLflow migrates the tables
        (tmp_path / "mlflow.db").touch()  # the file appears before its tables are complete
        poll = threading.Thread(target=lambda: (trial_runs(uri, "s"), done.set()))
        poll.start()
        deadline = time.monotonic() + 60
        while not _waiting_on(tmp_path / "mlflow.db.lock"):
            assert not done.is_set(), "read the store while its creation lock was held"
            assert time.monotonic() < deadline
            time.sleep(0.05)
    poll.join(timeout=120)
    assert done.is_set()

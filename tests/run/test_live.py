"""Watching a study live: the parent run's summary and dashboard, refreshed while it runs."""

from __future__ import annotations

import threading
import time

from helpers import write_study
from mlflow.tracking import MlflowClient

from ablation.commands.run import live_cost_line
from ablation.dashboard import DASHBOARD_FILE
from ablation.dashboard.publish import publish_study_report
from ablation.run.callbacks import Assigned, LiveDestination, LiveRefresh, TrialEnd, TrialState
from ablation.run.driver import run_study
from ablation.study import load_study
from ablation.track import names


def _ended(live: LiveDestination, status: str = names.STATUS_FINISHED) -> None:
    live.trial_ended(TrialState(Assigned(spec=None, number=0)), TrialEnd(status, {}, 0))
    live.settled()  # TrialEvents: once every destination has written the end


def test_a_refresh_after_a_finished_trial_at_most_once_per_interval():
    calls: list[float] = []
    gate = threading.Event()
    live = LiveDestination(LiveRefresh(lambda: calls.append(time.monotonic()), every=0.5))
    _ended(live)  # the first finished trial: at once
    live.wait()
    _ended(live)  # within the interval: later, not now
    _ended(live, names.STATUS_KILLED)
    live.wait()
    assert len(calls) == 1
    live.settled()  # Tune's loop before the interval passed: still nothing
    live.wait()
    assert len(calls) == 1
    gate.wait(0.6)
    live.settled()  # the interval passed and a trial ended meanwhile: refresh
    live.wait()
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.5
    live.settled()  # nothing ended since: nothing to refresh
    live.close()
    assert len(calls) == 2 and live.refresh.count == 2


def test_the_study_runs_on_when_a_refresh_fails_and_the_page_says_partial(tmp_path):
    path = write_study(
        tmp_path,
        "live",
        seeds=[0],
        resources={"cpus_per_trial": 1, "max_concurrent": 1, "max_retries": 0},
    )
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    pages: list[str] = []
    calls = 0

    def publish() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the store is busy")  # logged; the study goes on
        publish_study_report(uri, "live", partial=True)
        pages.append(_dashboard(uri))

    live = LiveRefresh(publish, every=0.0)
    result = run_study(load_study(path), tracking_uri=uri, live=live)
    assert result.exit_code == 0 and result.count(names.STATUS_FINISHED) == 2
    assert calls == 2 and len(pages) == 1  # one per finished trial, the failed one included
    # What it cost is measured, in the refresh thread, and said in one line.
    assert live.count == 2 and live.cpu_seconds > 0 and 0 < live.seconds < result.wall_seconds
    line = live_cost_line(live, result.wall_seconds, result.concurrency)
    assert line.startswith("live view: 2 refreshes") and "% of the" in line
    assert "partial: as of " in pages[0] and "finished" in pages[0] and "still running" in pages[0]
    publish_study_report(uri, "live")  # the run command's final one: not partial
    assert "partial: as of" not in _dashboard(uri)


def _dashboard(uri: str) -> str:
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("live").experiment_id
    (parent,) = client.search_runs([exp], filter_string=f"tags.`{names.ROLE}` = 'study'")
    folder = client.download_artifacts(parent.info.run_id, DASHBOARD_FILE)
    with open(folder, encoding="utf-8") as f:
        return f.read()

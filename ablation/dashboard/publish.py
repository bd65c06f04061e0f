"""Publishing a study's summary on its parent run: every report format and the dashboard.

`ablation run` publishes once when the study ends, and while it runs: a live refresh
(`ablation.run.callbacks.LiveRefresh`) calls `partial_publisher(...)`, which marks the summary
partial. run/ may not import report/ or dashboard/, so the command hands it to the driver.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from mlflow.tracking import MlflowClient

from ablation.dashboard import log_dashboard, render_dashboard
from ablation.report import Summary, study_summary
from ablation.report.export import paper_markdown, write_all
from ablation.track import names

REPORT_ARTIFACT_DIR = "report"
# Seconds between two live refreshes of the parent run's summary and dashboard, at most.
LIVE_SECONDS_ENV = "ABLATION_LIVE_SECONDS"
DEFAULT_LIVE_SECONDS = 60.0


def publish_study_report(tracking_uri: str, study_name: str, *, partial: bool = False) -> str:
    """Log every report format and the dashboard on the study's parent run (artifacts
    ``report/report.<ext>`` and ``dashboard.html``); return the paper-style Markdown table and
    the verdict lines to print. `partial`: the study still runs; the summary and page say so,
    with the time and the trial counts."""
    summary, runs = study_summary(tracking_uri, study_name)
    if partial:
        banner = partial_line(runs.trials.get("status", []))
        summary = dataclasses.replace(summary, partial=banner)
    run_id = runs.parent.run_id
    log_report(tracking_uri, run_id, summary)
    log_dashboard(tracking_uri, run_id, render_dashboard(summary, runs))
    return paper_markdown(summary)


def log_report(tracking_uri: str, run_id: str, summary: Summary) -> None:
    """Log every report format on a run, as ``report/report.<ext>``."""
    with tempfile.TemporaryDirectory() as tmp:
        reports = Path(tmp) / REPORT_ARTIFACT_DIR
        write_all(summary, reports)
        MlflowClient(tracking_uri).log_artifacts(
            run_id, str(reports), artifact_path=REPORT_ARTIFACT_DIR
        )


def live_seconds() -> float | None:
    """Seconds between two live refreshes at most: ABLATION_LIVE_SECONDS, 60 by default;
    None (no live refresh) for 0 or less."""
    every = float(os.environ.get(LIVE_SECONDS_ENV) or DEFAULT_LIVE_SECONDS)
    return every if every > 0 else None


def partial_publisher(tracking_uri: str, study_name: str) -> Callable[[], str]:
    """What a live refresh calls: publish the study as it stands, marked partial."""
    return functools.partial(publish_study_report, tracking_uri, study_name, partial=True)


def partial_line(statuses: Iterable[str]) -> str:
    """The banner: `partial: as of TIME UTC, N finished, N running, N failed trials; ...`."""
    statuses = list(statuses)
    done = sum(s in names.DONE_STATUSES for s in statuses)
    running = sum(s == names.STATUS_RUNNING for s in statuses)
    failed = sum(s == names.STATUS_FAILED for s in statuses)
    when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    return (
        f"partial: as of {when}, {done} finished, {running} running, {failed} failed "
        "trials; the study is still running"
    )

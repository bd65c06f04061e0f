"""Publishing a study on its parent run: the report formats, the dashboard, the live banner."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from ablation.dashboard import DASHBOARD_FILE
from ablation.dashboard.publish import (
    LIVE_SECONDS_ENV,
    REPORT_ARTIFACT_DIR,
    live_seconds,
    partial_line,
    partial_publisher,
    publish_study_report,
)
from ablation.report.export import EXTENSIONS, FORMATS
from ablation.track import names


@pytest.mark.parametrize(
    ("value", "every"), [(None, 60.0), ("", 60.0), ("2.5", 2.5), ("0", None), ("-1", None)]
)
def test_live_seconds_from_the_environment(monkeypatch, value, every):
    if value is None:
        monkeypatch.delenv(LIVE_SECONDS_ENV, raising=False)
    else:
        monkeypatch.setenv(LIVE_SECONDS_ENV, value)
    assert live_seconds() == every


def test_the_partial_banner_counts_stopped_trials_as_finished():
    statuses = [names.STATUS_FINISHED, names.STATUS_STOPPED, names.STATUS_RUNNING]
    line = partial_line([*statuses, names.STATUS_FAILED, names.STATUS_KILLED])
    assert line.startswith("partial: as of ") and " UTC, " in line
    assert line.endswith("2 finished, 1 running, 1 failed trials; the study is still running")


def test_publish_logs_every_format_and_the_dashboard_on_the_parent_run(
    fresh_mlflow_uri, synthetic_study_frames, log_synthetic_study
):
    variants = [{"name": "none", "effect": 0.0}, {"name": "cbam", "effect": -1.0}]
    trials, history = synthetic_study_frames(variants, [0, 1])
    parent = log_synthetic_study(fresh_mlflow_uri, "pub", trials, history, baseline="none")
    client = MlflowClient(fresh_mlflow_uri)

    partial_publisher(fresh_mlflow_uri, "pub")()
    page = Path(client.download_artifacts(parent, DASHBOARD_FILE)).read_text(encoding="utf-8")
    assert "partial: as of " in page

    printed = publish_study_report(fresh_mlflow_uri, "pub")
    assert "cbam" in printed
    page = Path(client.download_artifacts(parent, DASHBOARD_FILE)).read_text(encoding="utf-8")
    assert "partial: as of " not in page
    logged = {a.path for a in client.list_artifacts(parent, REPORT_ARTIFACT_DIR)}
    assert logged == {f"{REPORT_ARTIFACT_DIR}/report.{EXTENSIONS[f]}" for f in FORMATS}

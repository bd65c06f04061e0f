"""The ablation summary: MLflow runs -> pandas -> statistics -> md/csv/latex/html/json/parquet.

`runs` reads the study from MLflow, `stats` computes (pure), `tables`/`export` format; this
module wires them for `ablation report` and for the end of `ablation run`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from ablation.report.export import FORMATS, paper_markdown, render, write_all
from ablation.report.runs import StudyNotFound, StudyRuns, load_runs, optuna_importance
from ablation.report.stats import Summary, summarize

__all__ = [
    "FORMATS",
    "StudyNotFound",
    "StudyRuns",
    "Summary",
    "load_runs",
    "publish_study_report",
    "report_command",
    "study_summary",
    "summarize",
    "summary_for_command",
    "summary_of_runs",
]

REPORT_ARTIFACT_DIR = "report"


def summary_of_runs(runs: StudyRuns, *, importance: bool = True) -> Summary:
    """The summary of already-loaded runs, with the parent run's settings."""
    p = runs.parent
    imp, why_not = (None, None)
    if importance:
        imp, why_not = optuna_importance(p.get("optuna_storage"), p["study"])
    summary = summarize(
        runs.trials,
        runs.history,
        metric=p["metric"],
        mode=p["metric_mode"],
        baseline=p["baseline"],
        epoch=p.get("epoch"),
        factor_levels=p.get("factor_levels") or None,
        study=p["study"],
        importance=imp,
    )
    summary.notes += runs.notes + ([why_not] if why_not else [])
    return summary


def study_summary(tracking_uri: str, study_name: str) -> tuple[Summary, StudyRuns]:
    runs = load_runs(tracking_uri, study_name)
    return summary_of_runs(runs), runs


def summary_for_command(
    args: argparse.Namespace, command: str
) -> tuple[str, Summary, StudyRuns] | int:
    """(tracking URI, summary, runs) of `args.study` for `ablation report`/`dashboard`, or
    the exit code after saying why not: 2 no such study, 1 no trial runs yet."""
    from ablation.cli import default_tracking_uri

    uri = args.tracking_uri or default_tracking_uri()
    try:
        summary, runs = study_summary(uri, args.study)
    except StudyNotFound as err:
        print(f"ablation {command}: {err} ({uri})", file=sys.stderr)
        return 2
    if summary.values.empty:
        print(f"ablation {command}: study {args.study!r} has no trial runs yet", file=sys.stderr)
        return 1
    return uri, summary, runs


def report_command(args: argparse.Namespace) -> int:
    """`ablation report STUDY [--format F] [-o FILE]`: print or write the summary."""
    found = summary_for_command(args, "report")
    if isinstance(found, int):
        return found
    _, summary, _ = found
    data = render(summary, args.format)
    if args.output:
        path = Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)
    elif isinstance(data, bytes):
        print("ablation report: parquet is binary; give -o FILE", file=sys.stderr)
        return 2
    else:
        sys.stdout.write(data)
    return 0


def publish_study_report(tracking_uri: str, study_name: str) -> str:
    """At the end of `ablation run`: log every report format and the dashboard on the study's
    parent run (artifacts ``report/report.<ext>`` and ``dashboard.html``); return the
    paper-style Markdown table and the verdict lines to print."""
    from mlflow.tracking import MlflowClient

    from ablation.dashboard import DASHBOARD_FILE, render_dashboard

    summary, runs = study_summary(tracking_uri, study_name)
    client = MlflowClient(tracking_uri)
    run_id = runs.parent["run_id"]
    with tempfile.TemporaryDirectory() as tmp:
        reports = Path(tmp) / REPORT_ARTIFACT_DIR
        write_all(summary, reports)
        client.log_artifacts(run_id, str(reports), artifact_path=REPORT_ARTIFACT_DIR)
        page = Path(tmp) / DASHBOARD_FILE
        page.write_text(render_dashboard(summary, runs), encoding="utf-8")
        client.log_artifact(run_id, str(page))
    return paper_markdown(summary)

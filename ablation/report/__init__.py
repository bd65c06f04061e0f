"""The ablation summary: MLflow runs -> pandas -> statistics -> md/csv/latex/html/json/parquet.

`runs` reads the study from MLflow, `summary` computes (pure: `variants`, `comparisons`,
`factorial`), `tables`/`export` format; this module wires them into the summary of a study in
a store.
"""

from __future__ import annotations

from ablation.report.export import FORMATS
from ablation.report.runs import StudyNotFound, StudyRuns, load_runs, optuna_importance
from ablation.report.summary import Summary, summarize

__all__ = [
    "FORMATS",
    "StudyNotFound",
    "StudyRuns",
    "Summary",
    "load_runs",
    "study_summary",
    "summarize",
    "summary_of_runs",
]


def summary_of_runs(runs: StudyRuns, *, importance: bool = True) -> Summary:
    """The summary of already-loaded runs, with the parent run's settings."""
    p = runs.parent
    imp, why_not = (None, None)
    if importance:
        imp, why_not = optuna_importance(p.optuna_storage, p.study)
    summary = summarize(
        runs.trials,
        runs.history,
        metric=p.metric,
        mode=p.metric_mode,
        baseline=p.baseline,
        epoch=p.epoch,
        factor_levels=p.factor_levels or None,
        study=p.study,
        importance=imp,
        # The study's decision: {min_effect, alpha, power} and seeds: {start, max}, where the
        # parent run records them (absent: verdicts as without a decision).
        decision=p.decision,
        sequential_seeds=p.sequential_seeds,
        notes=[*runs.notes, *([why_not] if why_not else [])],
    )
    return summary


def study_summary(tracking_uri: str, study_name: str) -> tuple[Summary, StudyRuns]:
    runs = load_runs(tracking_uri, study_name)
    return summary_of_runs(runs), runs

"""`ablation status [STUDY]`: progress of a study read from MLflow (and Optuna when reachable).

Works while a study runs (the driver writes each trial's status as it changes) and after.
Without STUDY, lists the studies in the store.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ablation.track import names
from ablation.track.search import search_runs

_OK = (names.STATUS_FINISHED, names.STATUS_STOPPED)


@dataclass
class StudyStatus:
    study: str
    run_status: str  # the parent run's MLflow status (RUNNING while a driver works on it)
    total: int | None  # trials the study has (None when unknown, e.g. before a first run)
    counts: Counter = field(default_factory=Counter)  # ablation.status -> trials
    metric: str = ""
    mode: str = "min"
    variants: dict[str, list[float]] = field(default_factory=dict)  # variant -> metric per seed

    @property
    def done(self) -> int:
        return sum(self.counts[s] for s in _OK)

    @property
    def running(self) -> int:
        return self.counts[names.STATUS_RUNNING]

    @property
    def failed(self) -> int:
        return self.counts[names.STATUS_FAILED]

    @property
    def left(self) -> int | None:
        if self.total is None:
            return None
        return max(0, self.total - self.done - self.failed - self.running)

    def best(self) -> tuple[str, float, int] | None:
        if not self.variants:
            return None
        means = {v: statistics.fmean(xs) for v, xs in self.variants.items()}
        pick = min if self.mode == "min" else max
        variant = pick(means, key=means.__getitem__)
        return variant, means[variant], len(self.variants[variant])

    def line(self) -> str:
        left = "?" if self.left is None else str(self.left)
        total = "?" if self.total is None else str(self.total)
        text = (
            f"{self.study} [{self.run_status}]: {self.done}/{total} done, {self.running} running, "
            f"{self.failed} failed, {left} left"
        )
        if self.counts[names.STATUS_STOPPED]:
            text += f" ({self.counts[names.STATUS_STOPPED]} early-stopped)"
        best = self.best()
        if best:
            text += f"; best {best[0]} {self.metric}={best[1]:.4g} (n={best[2]})"
        return text


def study_status(client: Any, study: str) -> StudyStatus | None:
    """The status of `study` in the store of `client` (an MlflowClient), or None if absent."""
    experiment = client.get_experiment_by_name(study)
    if experiment is None:
        return None
    parents = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{names.ROLE}` = '{names.ROLE_STUDY}'",
        order_by=["attributes.start_time DESC"],
    )
    if not parents:
        return None
    parent = parents[0]
    tags = parent.data.tags
    total = tags.get(names.TRIALS_TOTAL)
    status = StudyStatus(
        study=study,
        run_status=parent.info.status,
        total=int(total) if total else None,
        metric=tags.get(names.METRIC, "val_top1_error"),
        mode=tags.get(names.METRIC_MODE, "min"),
    )
    children = f"tags.`{names.PARENT_RUN_ID}` = '{parent.info.run_id}'"
    for run in search_runs(client, [experiment.experiment_id], children):
        state = run.data.tags.get(names.STATUS, names.STATUS_RUNNING)
        status.counts[state] += 1
        value = run.data.metrics.get(status.metric)
        if state in _OK and value is not None:
            variant = run.data.tags.get(names.VARIANT, "?")
            status.variants.setdefault(variant, []).append(value)
    return status


def list_studies(client: Any) -> list[StudyStatus]:
    out = []
    for experiment in client.search_experiments():
        found = study_status(client, experiment.name)
        if found is not None:
            out.append(found)
    return out

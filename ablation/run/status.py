"""`ablation status [STUDY]`: progress of a study read from MLflow (and Optuna when reachable).

Works while a study runs (the driver writes each trial's status as it changes) and after.
Without STUDY, lists the studies in the store.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ablation.run.progress import best_variant
from ablation.track import names
from ablation.track.plan import current_trials, load_plan
from ablation.track.search import RunStore, search_runs
from ablation.vocabulary.direction import Direction


@dataclass
class StudyStatus:
    study: str
    run_status: str  # the parent run's MLflow status (RUNNING while a driver works on it)
    total: int | None  # trials the study has (None when unknown, e.g. before a first run)
    counts: Counter = field(default_factory=Counter)  # ablation.status -> trials
    metric: str = ""
    mode: Direction = Direction.MIN
    variants: dict[str, list[float]] = field(default_factory=dict)  # variant -> metric per seed
    last_activity: float | None = None  # epoch seconds: the latest start or end of its runs
    set_aside: int = 0  # trials of an earlier definition: never counted above

    @property
    def done(self) -> int:
        return sum(self.counts[s] for s in names.DONE_STATUSES)

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
        """(variant, mean metric over its finished seeds, n seeds) of the best variant."""
        return best_variant(self.variants, self.mode)

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
        return text + self._set_aside_text()

    def _set_aside_text(self) -> str:
        n = self.set_aside
        return f"; set aside: {n} trial{'s' * (n != 1)} of an earlier definition" if n else ""

    def listing_line(self, now: float | None = None) -> str:
        """One line of `ablation studies`: counts, when it last moved, its best variant."""
        text = (
            f"{self.study} [{self.run_status}]: {self.done} finished, {self.running} running, "
            f"{self.failed} failed"
        )
        if self.total is not None:
            text += f" of {self.total}"
        if self.last_activity is not None:
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.last_activity))
            text += f"; last activity {when} ({_ago((now or time.time()) - self.last_activity)})"
        best = self.best()
        text += f"; best {best[0]} {self.metric}={best[1]:.4g} (n={best[2]})" if best else ""
        return text + self._set_aside_text()


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return f"{seconds:.0f} s ago"


def _latest(*runs: Any) -> float | None:
    """The latest start or end time of these MLflow runs, in epoch seconds."""
    times = [t for r in runs for t in (r.info.start_time, r.info.end_time) if t]
    return max(times) / 1000 if times else None


def study_status(client: RunStore, study: str) -> StudyStatus | None:
    """The status of `study` in the store `client` reads, or None if absent."""
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
    metric, mode = names.study_metric(tags)
    status = StudyStatus(
        study=study,
        run_status=parent.info.status,
        total=int(total) if total else None,
        metric=metric,
        mode=mode,
    )
    children = f"tags.`{names.PARENT_RUN_ID}` = '{parent.info.run_id}'"
    status.last_activity = _latest(parent)
    runs, status.set_aside = current_trials(
        list(search_runs(client, [experiment.experiment_id], children)), _plan(client, parent)
    )
    for run in runs:
        status.last_activity = max(filter(None, (status.last_activity, _latest(run))), default=None)
        state = run.data.tags.get(names.STATUS, names.STATUS_RUNNING)
        status.counts[state] += 1
        value = run.data.metrics.get(status.metric)
        if state in names.DONE_STATUSES and value is not None:
            variant = run.data.tags.get(names.VARIANT, "?")
            status.variants.setdefault(variant, []).append(value)
    return status


def _plan(client: RunStore, parent: Any) -> Any:
    """The study run's plan (its trial ids say which trials are the current definition's),
    or None: a study run without one counts every trial under it."""
    try:
        return load_plan(client, parent.info.run_id)
    except Exception:  # no plan.json, or one this code cannot read: as before plans existed
        return None


def list_studies(client: RunStore) -> list[StudyStatus]:
    """Every study in the store, the one that moved last first."""
    out = []
    for experiment in client.search_experiments():
        found = study_status(client, experiment.name)
        if found is not None:
            out.append(found)
    return sorted(out, key=lambda s: -(s.last_activity or 0))

"""The MLflow adapter: a study's parent and child runs as the ``trials`` and ``history`` frames.

Reads only what the runner writes per `ablation.track.names` (docs/results.md, "What MLflow
holds"): the latest parent run tagged ``ablation.role=study`` in the study's experiment, and
its children by ``mlflow.parentRunId``. Metric histories are fetched concurrently (MLflow has
no bulk history call in its client; one request per run and metric, overlapped, is what keeps
a few hundred trials quick against a remote server).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ablation.study.design import level_label
from ablation.track import names, stores
from ablation.track.plan import StudyPlan, current_trials, load_plan, set_aside_note
from ablation.track.reader import open_client
from ablation.track.search import RunStore, search_runs
from ablation.vocabulary.direction import Direction

_HISTORY_WORKERS = 8


class StudyNotFound(LookupError):
    """No experiment, or no parent run, for the study name in this store."""


@dataclass(frozen=True)
class ParentRun:
    """The study's parent run: its ids, what its tags say, and the plan it records."""

    run_id: str
    experiment_id: str
    study: str
    baseline: str | None
    metric: str
    metric_mode: Direction
    design: str | None
    factors: list[str]  # the factor keys the trials' tags carry
    optuna_storage: str | None
    plan: StudyPlan | None = None  # `plan.json`; None on a parent that recorded none

    @property
    def epoch(self) -> int | None:
        """The epoch the metric is read at (None: each trial's final one)."""
        return self.plan.metric_epoch if self.plan else None

    @property
    def factor_levels(self) -> dict[str, list[str]]:
        """Each factor's level labels in declared order ({} without a plan)."""
        return self.plan.factor_levels if self.plan else {}

    @property
    def variant_order(self) -> list[str]:
        """The variants in run order ([] without a plan)."""
        return self.plan.variants if self.plan else []

    @property
    def decision(self) -> dict[str, Any] | None:
        """The study's `decision:` {min_effect, alpha, power, pilot_sd}, or None."""
        return self.plan.decision if self.plan else None

    @property
    def sequential_seeds(self) -> tuple[int, int] | None:
        """Sequential seeds as (start, max), or None."""
        seq = self.plan.sequential_seeds if self.plan else None
        return (int(seq["start"]), int(seq["max"])) if seq else None


@dataclass(frozen=True)
class StudyRuns:
    """One study's runs as pandas, plus what the parent run says about the study."""

    trials: pd.DataFrame
    history: pd.DataFrame
    parent: ParentRun
    notes: list[str] = field(default_factory=list)
    # Trials of an earlier definition of the study (its file was edited, or the code that
    # trains changed): kept in MLflow under the study run, never in `trials`.
    set_aside: int = 0


def _tag_level(tag: str) -> Any:
    """A factor tag's level (the writer logs it as JSON); a tag that is no JSON, as is."""
    try:
        return json.loads(tag)
    except (TypeError, ValueError):
        return tag


def _search(client: RunStore, experiment_id: str, filter_string: str) -> Iterator[Any]:
    return search_runs(
        client, [experiment_id], filter_string, order_by=["attributes.start_time ASC"]
    )


def find_parent(client: RunStore, study_name: str) -> Any:
    """The study's latest parent run."""
    experiment = client.get_experiment_by_name(study_name)
    if experiment is None or experiment.lifecycle_stage == "deleted":
        raise StudyNotFound(f"no MLflow experiment named {study_name!r} in this store")
    parents = list(
        _search(client, experiment.experiment_id, f"tags.`{names.ROLE}` = '{names.ROLE_STUDY}'")
    )
    if not parents:
        raise StudyNotFound(f"experiment {study_name!r} has no study run (tag {names.ROLE}=study)")
    return max(parents, key=lambda r: r.info.start_time or 0)


def _status(run: Any) -> str:
    """The ablation.status tag; a run without one (crashed driver) by MLflow's own status."""
    tag = run.data.tags.get(names.STATUS)
    if tag:
        return tag
    return {"FAILED": names.STATUS_FAILED, "KILLED": names.STATUS_KILLED}.get(
        run.info.status, names.STATUS_RUNNING
    )


def _trial_row(run: Any) -> dict[str, Any]:
    tags, metrics = run.data.tags, run.data.metrics
    seed = tags.get(names.SEED, run.data.params.get("seed"))
    row: dict[str, Any] = {
        "trial_id": tags.get(names.TRIAL_ID, run.info.run_id),
        "run_id": run.info.run_id,
        "variant": tags.get(names.VARIANT, run.info.run_name or run.info.run_id),
        "seed": int(seed) if seed is not None and str(seed).lstrip("-").isdigit() else -1,
        "status": _status(run),
        "error": tags.get(names.ERROR),
        "epochs_completed": metrics.get("epochs_completed"),
        "reused_from": tags.get(names.REUSED_FROM),
        "start_time": run.info.start_time,
        "dataset": run.data.params.get("dataset.name"),  # its classes: chance, for "did it learn"
    }
    for key, value in tags.items():
        if key.startswith(names.FACTOR_PREFIX):
            row[key] = level_label(_tag_level(value))
    for m in names.FINAL_METRICS + names.EPOCH_METRICS:
        if m != "epochs_completed" and m in metrics:
            row[m] = metrics[m]
    return row


def _histories(client: RunStore, runs: list[Any], trial_of: dict[str, dict]) -> pd.DataFrame:
    if hasattr(client, "metric_histories"):  # the SQLite reader: one query for them all
        found = client.metric_histories([r.info.run_id for r in runs], list(names.EPOCH_METRICS))
        points = [
            (run_id, key, m.step, m.timestamp, m.value)
            for (run_id, key), history in found.items()
            for m in history
        ]
    else:
        jobs = [
            (run.info.run_id, key)
            for run in runs
            for key in run.data.metrics
            if key in names.EPOCH_METRICS
        ]

        def fetch(job: tuple[str, str]) -> list[tuple]:
            run_id, key = job
            history = client.get_metric_history(*job)
            return [(run_id, key, m.step, m.timestamp, m.value) for m in history]

        with ThreadPoolExecutor(max_workers=_HISTORY_WORKERS) as pool:
            points = [p for batch in pool.map(fetch, jobs) for p in batch]
    cols = ["trial_id", "variant", "seed", "epoch", *names.EPOCH_METRICS]
    if not points:
        return pd.DataFrame(columns=cols)
    long = pd.DataFrame(points, columns=["run_id", "metric", "epoch", "timestamp", "value"])
    # A step logged twice (a retried epoch) keeps its latest value.
    long = long.sort_values("timestamp").drop_duplicates(["run_id", "metric", "epoch"], keep="last")
    wide = long.pivot(index=["run_id", "epoch"], columns="metric", values="value").reset_index()
    wide.columns.name = None
    for c in ("trial_id", "variant", "seed"):
        wide[c] = wide["run_id"].map(lambda r, c=c: trial_of[r][c])
    for m in names.EPOCH_METRICS:
        if m not in wide:
            wide[m] = float("nan")
    return wide[cols].sort_values(["trial_id", "epoch"]).reset_index(drop=True)


def _study_plan(client: RunStore, parent: Any) -> tuple[StudyPlan | None, list[str]]:
    """The plan the driver recorded on the parent run (`plan.json`), and the notes.

    Best effort (the report stands without it: levels then sort naturally, and the metric is
    read at the final epoch), so a parent run without `plan.json` still reports.
    """
    try:
        return load_plan(client, parent.info.run_id), []
    except Exception as err:  # no plan, an unreadable one, or an unreachable store
        why = f"({type(err).__name__})" if not isinstance(err, ValueError) else f"({err})"
        return None, [
            f"no usable study plan on the study run {why}: variant and level order and "
            f"metric.epoch unknown; rerun `ablation run FILE` to record it (finished "
            f"trials are kept)"
        ]


def load_runs(tracking_uri: str, study_name: str) -> StudyRuns:
    """The study's trials and per-epoch history from MLflow, and its parent run's settings."""
    client = open_client(tracking_uri)
    try:
        parent = find_parent(client, study_name)
    except StudyNotFound as err:
        raise StudyNotFound(f"{err} ({stores.shown(tracking_uri)})") from None
    exp_id = parent.info.experiment_id
    children = list(
        _search(client, exp_id, f"tags.`{names.PARENT_RUN_ID}` = '{parent.info.run_id}'")
    )
    children = [r for r in children if r.data.tags.get(names.ROLE) == names.ROLE_TRIAL]
    plan, notes = _study_plan(client, parent)
    children, set_aside = current_trials(children, plan)
    if set_aside:
        notes.append(set_aside_note(set_aside))
    elif plan is not None and plan.trial_ids is None and children:
        notes.append(
            "the study run records no trial ids (an older version ran it): every trial "
            "under it is shown, whichever definition of the study ran it; rerun "
            "`ablation run FILE` to record them"
        )
    rows = [_trial_row(r) for r in children]
    trials = pd.DataFrame(rows)
    base_cols = ["trial_id", "run_id", "variant", "seed", "status", "error", "epochs_completed"]
    if trials.empty:
        trials = pd.DataFrame(columns=base_cols)
    factor_cols = sorted(c for c in trials.columns if c.startswith(names.FACTOR_PREFIX))
    metric_cols = [m for m in names.FINAL_METRICS + names.EPOCH_METRICS if m in trials.columns]
    metric_cols = [m for m in metric_cols if m != "epochs_completed"]
    extra = [c for c in ("reused_from", "start_time", "dataset") if c in trials.columns]
    trials = trials[base_cols + factor_cols + metric_cols + extra]
    history = _histories(client, children, {r["run_id"]: r for r in rows})

    tags = parent.data.tags
    variant_order = plan.variants if plan else []
    if variant_order:
        rank = {v: i for i, v in enumerate(variant_order)}
        order = trials["variant"].map(rank).fillna(len(rank))
        trials = trials.assign(_order=order).sort_values(["_order", "seed"], kind="stable")
        trials = trials.drop(columns="_order").reset_index(drop=True)
    metric, mode = names.study_metric(tags)
    parent_run = ParentRun(
        run_id=parent.info.run_id,
        experiment_id=exp_id,
        study=study_name,
        baseline=tags.get(names.BASELINE) or None,
        metric=metric,
        metric_mode=mode,
        design=tags.get(names.DESIGN),
        factors=[c[len(names.FACTOR_PREFIX) :] for c in factor_cols],
        optuna_storage=tags.get(names.OPTUNA_STORAGE),
        plan=plan,
    )
    return StudyRuns(
        trials=trials, history=history, parent=parent_run, notes=notes, set_aside=set_aside
    )


def optuna_importance(storage: str | None, study_name: str) -> tuple[pd.DataFrame, str | None]:
    """Optuna's parameter importance of the study's objective, or (empty, why not).

    A secondary view: never fatal. A redacted storage URL (``:***@``) cannot be opened.
    """
    empty = pd.DataFrame(columns=["param", "importance"])
    if not storage or "***" in storage:
        return empty, "Optuna importance: no readable Optuna storage recorded on the study run"
    try:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        if storage.startswith("sqlite:///"):
            path = Path(storage.removeprefix("sqlite:///"))
            if not path.exists():
                return empty, f"Optuna importance: {path} not found"
        study = optuna.load_study(study_name=study_name, storage=storage)
        complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if len(complete) < 2:
            return empty, "Optuna importance: fewer than two complete Optuna trials"
        # Several objectives: the importance for the first (the study's metric).
        target = (lambda t: t.values[0]) if len(study.directions) > 1 else None
        # Seeded, so the same runs give the same report (fANOVA fits a random forest).
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        scores = optuna.importance.get_param_importances(study, evaluator=evaluator, target=target)
    except Exception as err:  # an unreachable storage or a degenerate search space
        return empty, f"Optuna importance not available ({type(err).__name__}: {err})"
    frame = pd.DataFrame({"param": list(scores), "importance": list(scores.values())})
    return frame, None

"""The MLflow adapter of the power plan: where its paired sd comes from.

In this order: the study's own finished trials (those of its current definition, so a rerun
plans with the noise it measured); else another study in the store whose baseline shares
trial ids with this one's (the same configuration and seeds: the best evidence); else another
study whose training setup is this one's (data, backbone, epochs, batch size, optimizer and
schedule: `SETUP_KEYS`). A study on the same data and backbone but trained otherwise (other
epochs, another optimizer) has another noise, and is refused, with the keys that differ. The
sd pools the paired differences (final epoch, FINISHED trials) of every comparison, and says
how many pairs it rests on; the plan itself (`ablation.study.plan.power_plan`) is pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ablation.report.comparisons import paired_differences
from ablation.report.runs import StudyNotFound, StudyRuns, load_runs
from ablation.report.variants import trial_values
from ablation.study.plan import PairedSd
from ablation.track import names
from ablation.track.reader import open_client
from ablation.track.search import RunStore
from ablation.track.writer import flatten

# The resolved keys (MLflow params of a trial: flattened dotted keys) that make two studies'
# seed-to-seed noise comparable: what data, which network, trained how. A key ending in "."
# stands for every key below it. The attention is what studies vary, so it is not here; nor
# are where the data lies and how it is loaded (dataset.root, dataset.num_workers).
SETUP_KEYS = (
    "dataset.",
    "model.backbone",
    "train.epochs",
    "train.batch_size",
    "train.optimizer.",
    "train.schedule",
    "train.milestones",
    "train.gamma",
    "train.warmup_epochs",
    "train.label_smoothing",
)
_NOT_SETUP = ("dataset.root", "dataset.num_workers")

OWN = "this study's own finished trials"
SHARES_IDS = "shares the baseline's trial ids"
SAME_SETUP = "same training setup: data, backbone, epochs, optimizer, schedule"


@dataclass(frozen=True)
class PilotChoice:
    """The paired sd the plan uses (None: none found) and the studies refused, with why."""

    found: PairedSd | None
    refused: list[str] = field(default_factory=list)


def training_setup(config: Mapping[str, Any]) -> dict[str, str]:
    """The `SETUP_KEYS` of a resolved trial config (nested, or flattened MLflow params)."""
    flat = flatten(config) if any(isinstance(v, Mapping) for v in config.values()) else config
    return {
        k: str(v)
        for k, v in flat.items()
        if k not in _NOT_SETUP
        and any(k == s or (s.endswith(".") and k.startswith(s)) for s in SETUP_KEYS)
    }


def setup_differences(here: Mapping[str, str], there: Mapping[str, str]) -> list[str]:
    """`key: A there, B here` for each setup key whose values differ (or one side lacks)."""
    out = []
    for key in sorted(set(here) | set(there)):
        a, b = there.get(key, "not recorded"), here.get(key, "not recorded")
        if a != b:
            out.append(f"{key} {a} there, {b} here")
    return out


def paired_sd_for_plan(
    tracking_uri: str,
    *,
    study: str,
    trial_ids: set[str],
    baseline_trial_ids: set[str],
    setup: Mapping[str, str],
    metric: str,
) -> PilotChoice:
    """The paired sd the power plan of `study` should use, and the studies refused.

    `trial_ids`: the trials of the study's current definition (its own finished ones among
    them come first); `baseline_trial_ids`: its baseline's; `setup`: `training_setup` of its
    baseline's resolved config."""
    client = open_client(tracking_uri)
    refused: list[str] = []
    shared: PairedSd | None = None
    same: PairedSd | None = None
    for experiment in client.search_experiments():
        runs = _runs(tracking_uri, experiment.name)
        if runs is None:
            continue
        base = runs.parent.baseline
        trials = runs.trials
        if experiment.name == study:
            own = _pooled(trials[trials["trial_id"].isin(trial_ids)], runs.history, base, metric)
            if own is not None:
                return PilotChoice(own.named(OWN), refused)
            continue
        if base is None or trials.empty:
            continue
        base_trials = trials[trials["variant"] == base]
        if baseline_trial_ids & set(base_trials["trial_id"]):
            found = _pooled(trials, runs.history, base, metric)
            if found is not None and (shared is None or found.pairs > shared.pairs):
                shared = found.named(f"study {experiment.name} ({SHARES_IDS})")
            continue
        differ = setup_differences(setup, _recorded_setup(client, base_trials))
        if differ:
            refused.append(
                f"study {experiment.name}: another training setup ({'; '.join(differ[:4])})"
            )
            continue
        found = _pooled(trials, runs.history, base, metric)
        if found is not None and (same is None or found.pairs > same.pairs):
            same = found.named(f"study {experiment.name} ({SAME_SETUP})")
    return PilotChoice(shared or same, refused)


def _runs(tracking_uri: str, name: str) -> StudyRuns | None:
    try:
        return load_runs(tracking_uri, name)
    except StudyNotFound:
        return None


def _recorded_setup(client: RunStore, base_trials: pd.DataFrame) -> dict[str, str]:
    """The training setup a study's baseline trial recorded (its MLflow params)."""
    if base_trials.empty:
        return {}
    params = client.get_run(base_trials["run_id"].iloc[0]).data.params
    return training_setup(dict(params))


@dataclass(frozen=True)
class _Pooled:
    sd: float
    pairs: int
    comparisons: int
    seconds: float | None

    def named(self, source: str) -> PairedSd:
        return PairedSd(
            self.sd, source, self.seconds, pairs=self.pairs, comparisons=self.comparisons
        )


def _pooled(
    trials: pd.DataFrame, history: pd.DataFrame, baseline: str | None, metric: str
) -> _Pooled | None:
    """The sd of the paired differences of every comparison, pooled (each comparison about
    its own mean), with how many pairs it rests on; None with fewer than two pairs in any."""
    if baseline is None or trials.empty:
        return None
    values = trial_values(trials, history)
    if metric not in values:
        return None
    finished = values[values["status"] == names.STATUS_FINISHED]
    squares, dof, pairs, comparisons = 0.0, 0, 0, 0
    for p in paired_differences(
        finished, pd.unique(finished["variant"]), baseline, metric
    ).values():
        d = p["diff"].to_numpy(dtype=float)
        if len(d) >= 2:
            squares += float(((d - d.mean()) ** 2).sum())
            dof += len(d) - 1
            pairs += len(d)
            comparisons += 1
    if dof == 0 or squares <= 0:
        return None
    seconds = finished["train_seconds"].mean() if "train_seconds" in finished else np.nan
    return _Pooled(
        float(np.sqrt(squares / dof)),
        pairs,
        comparisons,
        float(seconds) if np.isfinite(seconds) else None,
    )

"""The MLflow adapter of the power plan: a paired sd from an earlier study in the same store.

An earlier study qualifies when its baseline's trials share trial ids with this study's
baseline (the same configuration and seeds: the best evidence), else when its trials used the
same data set and backbone. Its comparisons' paired differences (final epoch, FINISHED
trials) are pooled into one sd; the plan itself (`ablation.study.plan.power_plan`) is pure.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ablation.report.comparisons import paired_differences
from ablation.report.runs import StudyNotFound, load_runs
from ablation.report.variants import trial_values
from ablation.study.plan import PairedSd
from ablation.track import names
from ablation.track.reader import open_client
from ablation.track.search import RunStore


def earlier_paired_sd(
    tracking_uri: str,
    *,
    study: str,
    baseline_trial_ids: set[str],
    dataset: str,
    backbone: str,
    metric: str,
) -> PairedSd | None:
    """The pooled paired sd of the best-matching earlier study, or None when none matches.

    Another study sharing the baseline's trial ids comes first, then one on the same data set
    and backbone, then this study's own finished trials (a rerun continues them)."""
    client = open_client(tracking_uri)
    by_data: PairedSd | None = None
    own: PairedSd | None = None
    for experiment in client.search_experiments():
        try:
            runs = load_runs(tracking_uri, experiment.name)
        except StudyNotFound:
            continue
        base = runs.parent.baseline
        trials = runs.trials
        if base is None or trials.empty:
            continue
        shares_ids = False
        if experiment.name == study:
            why = "this study's own finished trials, which a rerun keeps"
        else:
            base_ids = set(trials.loc[trials.variant == base, "trial_id"])
            shares_ids = bool(baseline_trial_ids & base_ids)
            # Without shared ids only the first study on the same data and backbone counts.
            second = by_data is not None
            if not shares_ids and (second or not _same_data(client, trials, dataset, backbone)):
                continue
            why = "shares the baseline's trial ids" if shares_ids else "same data set and backbone"
        sd, seconds = _pooled_sd(trials, runs.history, base, metric)
        if sd is None:
            continue
        found = PairedSd(sd, f"study {experiment.name} ({why})", seconds)
        if shares_ids:
            return found
        if experiment.name == study:
            own = found
        else:
            by_data = found
    return by_data or own


def _same_data(client: RunStore, trials: pd.DataFrame, dataset: str, backbone: str) -> bool:
    run_id = trials["run_id"].iloc[0]
    params = client.get_run(run_id).data.params
    return params.get("dataset.name") == dataset and params.get("model.backbone") == backbone


def _pooled_sd(
    trials: pd.DataFrame, history: pd.DataFrame, baseline: str, metric: str
) -> tuple[float | None, float | None]:
    values = trial_values(trials, history)
    if metric not in values:
        return None, None
    finished = values[values["status"] == names.STATUS_FINISHED]
    squares, dof = 0.0, 0
    pairs = paired_differences(finished, pd.unique(finished["variant"]), baseline, metric)
    for p in pairs.values():
        d = p["diff"].to_numpy(dtype=float)
        if len(d) >= 2:
            squares += float(((d - d.mean()) ** 2).sum())
            dof += len(d) - 1
    if dof == 0 or squares <= 0:
        return None, None
    seconds = finished["train_seconds"].mean() if "train_seconds" in finished else np.nan
    return float(np.sqrt(squares / dof)), (float(seconds) if np.isfinite(seconds) else None)

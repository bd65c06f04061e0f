"""Per trial and per variant: the metric at the analysed epoch, the seeds aggregated, the curves.

Honesty rules kept here:
- the metric of a trial is its final epoch, or the epoch the study declares, never the best one;
- only FINISHED trials enter the statistics; stopped, failed and running ones are counted per
  variant and shown, never averaged in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ablation.stats.intervals import t_interval
from ablation.track import names
from ablation.vocabulary.datasets import DATASETS
from ablation.vocabulary.direction import Direction
from ablation.vocabulary.metrics import COMPARABLE_EPOCH, COSTS

# Columns the summary aggregates per variant when present: the per-epoch metrics taken at the
# analysed epoch, then the costs measured once per trial.
CURVE_METRICS = COMPARABLE_EPOCH
COST_METRICS = (*COSTS, "train_seconds")

# What `ci_method` says a variant's intervals are.
CI_MEAN_T = "t"

STATUS_COUNTS = {
    "n_finished": names.STATUS_FINISHED,
    "n_stopped": names.STATUS_STOPPED,
    "n_failed": names.STATUS_FAILED,
}


def trial_values(
    trials: pd.DataFrame, history: pd.DataFrame, *, epoch: int | None = None
) -> pd.DataFrame:
    """One row per trial with each per-epoch metric at the analysed epoch.

    The analysed epoch is the trial's last logged epoch, or ``epoch`` when the study declares one
    (a trial that never reached it has NaN there). Never the best epoch. Where a trial has no
    history at all, the final values already on the trials frame are kept (epoch=None only).
    """
    out = trials.copy()
    if history is None or history.empty:
        if epoch is not None:
            for m in CURVE_METRICS:
                if m in out:
                    out[m] = np.nan
        return out
    hist = history
    for m in [c for c in hist.columns if c in names.EPOCH_METRICS]:
        h = hist[["trial_id", "epoch", m]].dropna(subset=[m])
        if epoch is None:
            picked = h.sort_values("epoch").groupby("trial_id")[m].last()
        else:
            picked = h[h["epoch"] == epoch].groupby("trial_id")[m].last()
        from_history = out["trial_id"].map(picked)
        has_history = out["trial_id"].isin(hist["trial_id"])
        if m in out and epoch is None:
            out[m] = from_history.where(has_history, out[m])
        else:
            out[m] = from_history
    return out


def variant_order(values: pd.DataFrame, baseline: str | None) -> list[str]:
    """The variants in order of first appearance, the baseline first."""
    order = list(pd.unique(values["variant"]))
    if baseline in order:
        order.remove(baseline)
        order.insert(0, baseline)
    return order


def per_variant(
    values: pd.DataFrame,
    *,
    metric: str,
    alpha: float = 0.05,
    order: Sequence[str] | None = None,
    history: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per variant: trial counts by status, n/mean/std/CI of each metric over FINISHED seeds,
    and whether it learned (`did_it_learn`: `learned`, `learned_why`)."""
    metrics = [metric] + [m for m in CURVE_METRICS + COST_METRICS if m != metric]
    metrics = [m for m in metrics if m in values.columns]
    rows = []
    for variant in order or pd.unique(values["variant"]):
        v = values[values["variant"] == variant]
        done = v[v["status"] == names.STATUS_FINISHED]
        row: dict[str, Any] = {"variant": variant, "n_trials": len(v)}
        for col, status in STATUS_COUNTS.items():
            row[col] = int((v["status"] == status).sum())
        row["n_other"] = len(v) - sum(row[c] for c in STATUS_COUNTS)
        row["seeds"] = ",".join(str(s) for s in sorted(done["seed"].tolist()))
        row["ci_method"] = CI_MEAN_T  # every `<metric>.ci_*`: the t-interval of the mean
        for m in metrics:
            for k, x in t_interval(done[m].to_numpy(dtype=float), alpha).items():
                row[f"{m}.{k}"] = x
        row["learned"], row["learned_why"] = did_it_learn(done, history)
        rows.append(row)
    if not rows:
        counts = ["variant", "n_trials", *STATUS_COUNTS, "n_other", "seeds", "ci_method"]
        stats_cols = [
            f"{m}.{k}" for m in metrics for k in ("n", "mean", "std", "ci_low", "ci_high")
        ]
        return pd.DataFrame(columns=counts + stats_cols + ["learned", "learned_why"])
    return pd.DataFrame(rows)


# -- did it learn? -------------------------------------------------------------------------------

# A variant "learned" unless its top-1 accuracy stays under this many times chance's (1 / the
# data set's classes: 85% top-1 error on 10 classes is 15% accuracy, under 2 x 10%), or its
# training loss did not fall. Either way its comparison measures a network that did not train,
# and says nothing about the architecture.
NEAR_CHANCE = 2.0
# The training loss "fell" when its last epoch's mean is under this fraction of the first
# epoch's, or under half the loss of a uniform guess (ln classes: a network that learned
# within its first epoch, whose loss then stays flat).
LOSS_FELL = 0.95


def did_it_learn(done: pd.DataFrame, history: pd.DataFrame | None) -> tuple[bool | None, str]:
    """(learned, why not) of one variant's FINISHED trials: False with the reason when its mean
    top-1 error stays near chance or its training loss did not fall; None when nothing says
    (no finished trial, or neither measure recorded)."""
    if done.empty:
        return None, ""
    classes = None
    if "dataset" in done and done["dataset"].notna().any():
        name = done["dataset"].dropna().iloc[0]
        classes = DATASETS[name].num_classes if name in DATASETS else None
    said = False
    if classes and "val_top1_error" in done and done["val_top1_error"].notna().any():
        said = True
        error = float(done["val_top1_error"].mean())
        accuracy, chance = 100.0 - error, 100.0 / classes
        if accuracy < NEAR_CHANCE * chance:
            return False, (
                f"top-1 error {error:.1f}% is near chance ({100 - chance:.1f}% for {classes} "
                "classes)"
            )
    first, last = _train_loss_ends(done, history)
    if first is not None and last is not None:
        said = True
        uniform = float(np.log(classes)) if classes else None
        if last >= LOSS_FELL * first and (uniform is None or last >= uniform / 2):
            return False, f"training loss did not fall ({first:.3g} at epoch 1, {last:.3g} last)"
    return (True, "") if said else (None, "")


def _train_loss_ends(
    done: pd.DataFrame, history: pd.DataFrame | None
) -> tuple[float | None, float | None]:
    """Mean over the trials of their first and last epochs' training loss (two epochs or more)."""
    if history is None or history.empty or "train_loss" not in history:
        return None, None
    h = history[history["trial_id"].isin(done["trial_id"])].dropna(subset=["train_loss"])
    if h.empty or h["epoch"].nunique() < 2:
        return None, None
    h = h.sort_values("epoch").groupby("trial_id")["train_loss"]
    return float(h.first().mean()), float(h.last().mean())


def learning_curves(history: pd.DataFrame, values: pd.DataFrame) -> pd.DataFrame:
    """Mean and std over FINISHED seeds of each per-epoch metric, per (variant, epoch)."""
    cols = ["variant", "metric", "epoch", "n", "mean", "std"]
    if history is None or history.empty:
        return pd.DataFrame(columns=cols)
    done = set(values.loc[values["status"] == names.STATUS_FINISHED, "trial_id"])
    h = history[history["trial_id"].isin(done)]
    metrics = [m for m in names.EPOCH_METRICS if m in h.columns]
    long = h.melt(id_vars=["variant", "epoch"], value_vars=metrics, var_name="metric").dropna()
    if long.empty:
        return pd.DataFrame(columns=cols)
    g = long.groupby(["variant", "metric", "epoch"])["value"]
    out = pd.DataFrame({"n": g.count(), "mean": g.mean(), "std": g.std(ddof=1)}).reset_index()
    return out[cols]


def pareto_front(
    x: Sequence[float], y: Sequence[float], *, y_mode: str | Direction = Direction.MIN
) -> np.ndarray:
    """Mask of the points no other point beats on both cost x (lower is better) and metric y."""
    xs = np.asarray(x, dtype=float)
    # Negated sign: lower is better on both axes, whichever way the metric improves.
    ys = np.asarray(y, dtype=float) * -Direction.of(y_mode).sign
    ok = np.isfinite(xs) & np.isfinite(ys)
    front = np.zeros(len(xs), dtype=bool)
    for i in np.flatnonzero(ok):
        others = ok.copy()
        others[i] = False
        dominated = (xs[others] <= xs[i]) & (ys[others] <= ys[i])
        dominated &= (xs[others] < xs[i]) | (ys[others] < ys[i])
        front[i] = not dominated.any()
    return front

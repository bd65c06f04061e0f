"""The ablation summary: every table the report prints, as pure functions of the runs frames.

Runs in (the ``trials`` and ``history`` frames of docs/architecture.md), a frozen `Summary`
out. No MLflow, no files: the report, its exports and the dashboard all read the same
`Summary`, so every number on the dashboard is one the report prints. The parts are computed
where they read best: per trial and per variant in `variants`, against the baseline in
`comparisons`, factor effects in `factorial`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ablation.report.comparisons import (
    compare_to_baseline,
    paired_differences,
    seeds_plan,
    sequential_comparisons,
)
from ablation.report.factorial import analyse_factors, factor_columns
from ablation.report.variants import learning_curves, per_variant, trial_values, variant_order
from ablation.stats.decide import Decision
from ablation.stats.sequential import SequentialPlan
from ablation.track import names
from ablation.vocabulary.direction import Direction


@dataclass(frozen=True)
class Summary:
    """Everything `ablation report` prints and the dashboard draws, as plain DataFrames."""

    study: str
    metric: str
    mode: Direction
    baseline: str | None
    epoch: int | None
    alpha: float
    factors: list[str]
    values: pd.DataFrame  # one row per trial, metric columns at the analysed epoch
    variants: pd.DataFrame  # one row per variant: status counts, n/mean/std/CI per metric
    comparisons: pd.DataFrame  # one row per non-baseline variant: paired effect on the metric
    marginal_means: pd.DataFrame  # one row per (factor, level)
    main_effects: pd.DataFrame  # one row per (factor, non-reference level)
    interactions: pd.DataFrame  # one row per two-factor interaction term
    interaction_cells: pd.DataFrame  # cell means per (factor pair, level pair), for heat maps
    curves: pd.DataFrame  # learning curves: (variant, metric, epoch) -> n, mean, std
    importance: pd.DataFrame = field(default_factory=pd.DataFrame)  # Optuna's view, optional
    notes: list[str] = field(default_factory=list)
    decision: Decision | None = None  # the study's `decision:` (min_effect, alpha, power)
    looks: pd.DataFrame = field(default_factory=pd.DataFrame)  # sequential seeds: one row per
    # (look, comparison): how each decision was reached
    plan: pd.DataFrame = field(default_factory=pd.DataFrame)  # seeds each comparison needs
    # Set while the study still runs (a live refresh): "partial: as of TIME, counts".
    partial: str | None = None


def as_decision(decision: Decision | Mapping[str, Any] | None) -> Decision | None:
    """The study's ``decision:`` section (a mapping, as the parent run records it) as a value."""
    if decision is None or isinstance(decision, Decision):
        return decision
    keys = ("min_effect", "alpha", "power", "pilot_sd")
    return Decision(**{k: decision[k] for k in keys if decision.get(k) is not None})


def summarize(
    trials: pd.DataFrame,
    history: pd.DataFrame | None = None,
    *,
    metric: str = "val_top1_error",
    mode: str | Direction = Direction.MIN,
    baseline: str | None = None,
    epoch: int | None = None,
    alpha: float = 0.05,
    factor_levels: Mapping[str, Sequence[str]] | None = None,
    study: str = "",
    n_resamples: int = 9999,
    bootstrap_seed: int = 0,
    importance: pd.DataFrame | None = None,
    decision: Decision | Mapping[str, Any] | None = None,
    sequential_seeds: tuple[int, int] | None = None,
    notes: Sequence[str] = (),
) -> Summary:
    """The whole ablation summary of one study from its runs frames.

    `decision` (the study's ``decision:`` section) turns the verdicts into better / worse /
    equivalent / undecided; `sequential_seeds` ``(start, max)`` (with `decision`) reads them
    from the group-sequential looks instead of a fixed-n test. `notes` (from reading the runs)
    follow the summary's own.
    """
    decision = as_decision(decision)
    if decision is not None:
        alpha = decision.alpha
    if sequential_seeds is not None and decision is None:
        raise ValueError("sequential seeds need a decision (min_effect, alpha, power)")
    mode = Direction.of(mode)
    history = history if history is not None else pd.DataFrame()
    values, own_notes = _values(trials, history, metric=metric, baseline=baseline, epoch=epoch)
    finished = values[values["status"] == names.STATUS_FINISHED]
    order = variant_order(values, baseline)
    pairs = paired_differences(finished, order, baseline, metric)
    comparisons = compare_to_baseline(
        pairs,
        metric=metric,
        mode=mode,
        baseline=baseline,
        alpha=alpha,
        n_resamples=n_resamples,
        seed=bootstrap_seed,
        decision=decision,
    )
    looks = pd.DataFrame()
    if sequential_seeds is not None and decision is not None:
        plan = SequentialPlan(*sequential_seeds, decision=decision, mode=mode)
        comparisons, looks = sequential_comparisons(comparisons, pairs, plan)
    factors = factor_columns(trials)
    factorial = analyse_factors(finished, metric, factors, factor_levels)
    variants = per_variant(values, metric=metric, alpha=alpha, order=order, history=history)
    return Summary(
        study=study,
        metric=metric,
        mode=mode,
        baseline=baseline,
        epoch=epoch,
        alpha=alpha,
        factors=factors,
        values=values,
        variants=variants,
        comparisons=comparisons,
        marginal_means=factorial.marginal_means,
        main_effects=factorial.main_effects,
        interactions=factorial.interactions,
        interaction_cells=factorial.interaction_cells,
        curves=learning_curves(history, values),
        importance=importance if importance is not None else pd.DataFrame(),
        notes=[*own_notes, *_not_learned(variants), *factorial.notes, *notes],
        decision=decision,
        looks=looks,
        plan=seeds_plan(pairs, decision) if decision is not None else pd.DataFrame(),
    )


def _values(
    trials: pd.DataFrame,
    history: pd.DataFrame,
    *,
    metric: str,
    baseline: str | None,
    epoch: int | None,
) -> tuple[pd.DataFrame, list[str]]:
    """The per-trial values (`trial_values`) and the notes on what they are taken from."""
    values = trial_values(trials, history, epoch=epoch)
    notes: list[str] = []
    if baseline is not None and baseline not in set(values["variant"]):
        notes.append(f"baseline {baseline!r} has no trials; no comparisons")
    if metric not in values.columns:
        # No trial logged it (all failed early, or none finished yet): every statistic is empty.
        values[metric] = np.nan
        notes.append(f"no trial recorded {metric!r}")
    if epoch is not None:
        notes.append(f"metrics taken at the declared epoch {epoch}")
    else:
        notes.append("metrics taken at each trial's final epoch (never the best epoch)")
    return values, notes


def _not_learned(variants: pd.DataFrame) -> list[str]:
    """A note per variant that did not learn (`variants.did_it_learn`)."""
    flagged = variants[variants["learned"].eq(False)] if "learned" in variants else variants[:0]
    return [
        f"{r['variant']} did not learn: {r['learned_why']}; its comparisons say nothing about "
        "the architecture"
        for r in flagged.to_dict("records")
    ]

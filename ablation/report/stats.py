"""Where seeds are aggregated: the ablation summary as pure functions of the runs frames.

Runs in (the ``trials`` and ``history`` frames of docs/architecture.md), tables out. No MLflow,
no files: the report, its exports and the dashboard all read the same `Summary`, so every
number on the dashboard is one the report prints.

Honesty rules kept here:
- the metric of a trial is its final epoch, or the epoch the study declares, never the best one;
- only FINISHED trials enter the statistics; stopped, failed and running ones are counted per
  variant and shown, never averaged in;
- the comparison with the baseline is paired by seed: a paired t-test (Wilcoxon signed-rank
  beside it when n allows), Holm's correction across the comparisons, Cohen's d_z, and a
  verdict that says "not enough seeds" rather than guessing when fewer than two pairs exist;
- the interval shown first (`ci_low`/`ci_high`, named by `ci_method`) is the paired t-interval
  at the level Holm tested the comparison at, so it excludes zero exactly when the verdict is
  better/worse; its coverage holds from two seeds on. The BCa bootstrap interval is computed
  only from `BOOTSTRAP_MIN_N` pairs (`boot_ci_low`/`boot_ci_high`, NaN below);
- with a study's `decision` (min_effect, alpha, power) each comparison is better / worse /
  equivalent / undecided (`ablation.stats.decide`), with the seeds an undecided one needs; with
  sequential seeds the verdicts and intervals are those of the group-sequential looks
  (`ablation.stats.sequential`), replayed from the finished trials.
"""

from __future__ import annotations

import itertools
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from ablation.stats import decide as decisions
from ablation.stats import sequential
from ablation.stats.decide import Decision
from ablation.stats.intervals import (
    bootstrap_mean_ci,
    has_spread,
    holm,
    holm_levels,
    t_interval,
)
from ablation.track import names
from ablation.vocabulary.metrics import COMPARABLE_EPOCH, COSTS

# Columns the summary aggregates per variant when present: the per-epoch metrics taken at the
# analysed epoch, then the costs measured once per trial.
CURVE_METRICS = COMPARABLE_EPOCH
COST_METRICS = (*COSTS, "train_seconds")

BETTER = "better"
WORSE = "worse"
NO_DIFFERENCE = "no detectable difference at this n"
NOT_ENOUGH_SEEDS = "not enough seeds"
NO_BASELINE = "no baseline"
EQUIVALENT = decisions.EQUIVALENT
UNDECIDED = decisions.UNDECIDED

# What `ci_method` says the headline interval is.
CI_T = "paired t"
CI_T_HOLM = "paired t at Holm's level"
CI_SEQUENTIAL = "paired t at the sequential look's level"
CI_MEAN_T = "t"

STATUS_COUNTS = {
    "n_finished": names.STATUS_FINISHED,
    "n_stopped": names.STATUS_STOPPED,
    "n_failed": names.STATUS_FAILED,
}


@dataclass
class Summary:
    """Everything `ablation report` prints and the dashboard draws, as plain DataFrames."""

    study: str
    metric: str
    mode: str
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


# --- small statistics -------------------------------------------------------------------------


def verdict(n_pairs: int, mean_diff: float, significant: bool, mode: str) -> str:
    """A plain word for a comparison, respecting whether the metric is minimised or maximised."""
    if n_pairs < 2:
        return NOT_ENOUGH_SEEDS
    if not significant:
        return NO_DIFFERENCE
    improves = mean_diff < 0 if mode == "min" else mean_diff > 0
    return BETTER if improves else WORSE


def pareto_front(x: Sequence[float], y: Sequence[float], *, y_mode: str = "min") -> np.ndarray:
    """Mask of the points no other point beats on both cost x (lower is better) and metric y."""
    xs = np.asarray(x, dtype=float)
    ys = np.asarray(y, dtype=float) * (1 if y_mode == "min" else -1)
    ok = np.isfinite(xs) & np.isfinite(ys)
    front = np.zeros(len(xs), dtype=bool)
    for i in np.flatnonzero(ok):
        others = ok.copy()
        others[i] = False
        dominated = (xs[others] <= xs[i]) & (ys[others] <= ys[i])
        dominated &= (xs[others] < xs[i]) | (ys[others] < ys[i])
        front[i] = not dominated.any()
    return front


# --- from runs to per-trial values ------------------------------------------------------------


def factor_columns(trials: pd.DataFrame) -> list[str]:
    """The factor keys (without the ``factor.`` prefix), in column order."""
    prefix = names.FACTOR_PREFIX
    return [c[len(prefix) :] for c in trials.columns if c.startswith(prefix)]


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


def _natural_key(label: Any) -> tuple:
    text = str(label)
    try:
        return (0, float(text), "")
    except ValueError:
        parts = re.split(r"(\d+)", text)
        return (1, 0.0, tuple(int(p) if p.isdigit() else p for p in parts))


def level_order(values: pd.Series, declared: Sequence[str] | None = None) -> list[str]:
    """Levels of a factor: the study's declared order when known, else a natural sort."""
    present = [v for v in pd.unique(values.dropna())]
    if declared:
        ordered = [str(v) for v in declared if v in present]
        return ordered + sorted((v for v in present if v not in ordered), key=_natural_key)
    return sorted(present, key=_natural_key)


# --- the summary ------------------------------------------------------------------------------


def summarize(
    trials: pd.DataFrame,
    history: pd.DataFrame | None = None,
    *,
    metric: str = "val_top1_error",
    mode: str = "min",
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
) -> Summary:
    """The whole ablation summary of one study from its runs frames.

    `decision` (the study's ``decision:`` section) turns the verdicts into better / worse /
    equivalent / undecided; `sequential_seeds` ``(start, max)`` (with `decision`) reads them
    from the group-sequential looks instead of a fixed-n test.
    """
    decision = as_decision(decision)
    if decision is not None:
        alpha = decision.alpha
    if sequential_seeds is not None and decision is None:
        raise ValueError("sequential seeds need a decision (min_effect, alpha, power)")
    if mode not in ("min", "max"):
        raise ValueError(f"metric mode must be 'min' or 'max', not {mode!r}")
    history = history if history is not None else pd.DataFrame()
    values = trial_values(trials, history, epoch=epoch)
    factors = factor_columns(trials)
    notes: list[str] = []
    if baseline is not None and baseline not in set(values["variant"]):
        notes.append(f"baseline {baseline!r} has no trials; no comparisons")
    if metric not in values.columns:
        # No trial logged it (all failed early, or none finished yet): every statistic is empty.
        values[metric] = np.nan
        notes.append(f"no trial recorded {metric!r}")
    finished = values[values["status"] == names.STATUS_FINISHED]
    if epoch is not None:
        notes.append(f"metrics taken at the declared epoch {epoch}")
    else:
        notes.append("metrics taken at each trial's final epoch (never the best epoch)")

    variant_order = _variant_order(values, baseline)
    summary = Summary(
        study=study,
        metric=metric,
        mode=mode,
        baseline=baseline,
        epoch=epoch,
        alpha=alpha,
        factors=factors,
        values=values,
        variants=per_variant(values, metric=metric, alpha=alpha, order=variant_order),
        comparisons=compare_to_baseline(
            finished,
            metric=metric,
            mode=mode,
            baseline=baseline,
            alpha=alpha,
            order=variant_order,
            n_resamples=n_resamples,
            seed=bootstrap_seed,
            decision=decision,
        ),
        marginal_means=pd.DataFrame(),
        main_effects=pd.DataFrame(),
        interactions=pd.DataFrame(),
        interaction_cells=pd.DataFrame(),
        curves=learning_curves(history, values),
        importance=importance if importance is not None else pd.DataFrame(),
        notes=notes,
        decision=decision,
    )
    if decision is not None:
        summary.plan = seeds_plan(summary.comparisons, finished, decision, baseline, metric)
    if sequential_seeds is not None and decision is not None:
        plan = sequential.SequentialPlan(*sequential_seeds, decision=decision, mode=mode)
        summary.comparisons, summary.looks = sequential_comparisons(
            summary.comparisons, finished, plan, metric=metric, baseline=baseline
        )
    if factors:
        levels = {
            f: level_order(finished[names.FACTOR_PREFIX + f], (factor_levels or {}).get(f))
            for f in factors
        }
        summary.marginal_means = marginal_means(finished, metric, levels, alpha=alpha)
        summary.main_effects, anova_notes = main_effects(finished, metric, levels, alpha=alpha)
        summary.interactions, summary.interaction_cells, inter_notes = interactions(
            finished, metric, levels, alpha=alpha
        )
        summary.notes += anova_notes + inter_notes
    return summary


def _variant_order(values: pd.DataFrame, baseline: str | None) -> list[str]:
    order = list(pd.unique(values["variant"]))
    if baseline in order:
        order.remove(baseline)
        order.insert(0, baseline)
    return order


def per_variant(
    values: pd.DataFrame, *, metric: str, alpha: float = 0.05, order: Sequence[str] | None = None
) -> pd.DataFrame:
    """Per variant: trial counts by status, and n/mean/std/CI of each metric over FINISHED seeds."""
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
        rows.append(row)
    if not rows:
        counts = ["variant", "n_trials", *STATUS_COUNTS, "n_other", "seeds", "ci_method"]
        stats_cols = [
            f"{m}.{k}" for m in metrics for k in ("n", "mean", "std", "ci_low", "ci_high")
        ]
        return pd.DataFrame(columns=counts + stats_cols)
    return pd.DataFrame(rows)


def paired(finished: pd.DataFrame, variant: str, baseline: str, metric: str) -> pd.DataFrame:
    """The seeds both variants finished, with the metric of each (a trial per seed)."""

    def by_seed(name: str) -> pd.Series:
        rows = finished[finished["variant"] == name].dropna(subset=[metric])
        return rows.groupby("seed")[metric].mean()

    both = pd.concat({"variant": by_seed(variant), "baseline": by_seed(baseline)}, axis=1)
    return both.dropna().sort_index()


COMPARISON_COLUMNS = [
    "variant", "baseline", "metric", "n_pairs", "variant_mean", "baseline_mean", "mean_diff",
    "ci_low", "ci_high", "ci_level", "ci_method", "boot_ci_low", "boot_ci_high", "t", "p_t",
    "p_wilcoxon", "p_holm", "effect_dz", "significant", "verdict", "decision", "seeds_needed",
    "tost_low", "tost_high",
]  # fmt: skip


def as_decision(decision: Decision | Mapping[str, Any] | None) -> Decision | None:
    """The study's ``decision:`` section (a mapping, as the parent run records it) as a value."""
    if decision is None or isinstance(decision, Decision):
        return decision
    keys = ("min_effect", "alpha", "power", "pilot_sd")
    return Decision(**{k: decision[k] for k in keys if decision.get(k) is not None})


def compare_to_baseline(
    finished: pd.DataFrame,
    *,
    metric: str,
    mode: str,
    baseline: str | None,
    alpha: float = 0.05,
    order: Sequence[str] | None = None,
    n_resamples: int = 9999,
    seed: int = 0,
    decision: Decision | None = None,
) -> pd.DataFrame:
    """Each variant against the baseline, paired by seed, Holm-corrected across variants.

    ``ci_low``/``ci_high`` is the headline interval: the paired t-interval at the level Holm
    tested the comparison at (``ci_level`` its confidence; 1 - alpha with one comparison), so
    it excludes zero exactly when the verdict is better or worse. ``boot_ci_*`` is the BCa
    bootstrap at 1 - alpha, only from `BOOTSTRAP_MIN_N` pairs. With `decision`, ``decision``
    holds better / worse / equivalent / undecided (``tost_*`` the (1 - 2 alpha) interval the
    equivalence test reads, ``seeds_needed`` for an undecided one); without it, NaN.
    """
    variants = [v for v in (order or pd.unique(finished["variant"])) if v != baseline]
    if baseline is None or not variants:
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    rows, diffs = [], []
    for variant in variants:
        pairs = paired(finished, variant, baseline, metric)
        d = (pairs["variant"] - pairs["baseline"]).to_numpy(dtype=float)
        diffs.append(d)
        n = len(d)
        row: dict[str, Any] = {
            "variant": variant,
            "baseline": baseline,
            "metric": metric,
            "n_pairs": n,
            "variant_mean": float(pairs["variant"].mean()) if n else np.nan,
            "baseline_mean": float(pairs["baseline"].mean()) if n else np.nan,
            "mean_diff": float(d.mean()) if n else np.nan,
            "p_wilcoxon": np.nan,
            "effect_dz": np.nan,
        }
        row["boot_ci_low"], row["boot_ci_high"] = bootstrap_mean_ci(
            d, alpha=alpha, n_resamples=n_resamples, seed=seed
        )
        # A constant non-zero difference has no sampling distribution to test: p is NaN.
        row["t"], row["p_t"] = decisions.paired_t(d)
        if n >= 2 and np.isfinite(row["p_t"]) and row["t"] != 0:
            row["effect_dz"] = float(d.mean() / d.std(ddof=1))
        # The exact signed-rank test cannot reach p < 0.05 below 6 pairs; it is shown only where
        # it could say something.
        if n >= 6 and np.any(d != 0):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                row["p_wilcoxon"] = float(sps.wilcoxon(d).pvalue)
        rows.append(row)
    out = pd.DataFrame(rows)
    out["p_holm"], out["significant"] = holm(out["p_t"].to_numpy(), alpha)
    levels = holm_levels(out["p_t"].to_numpy(), alpha)
    method = CI_T if len(out) == 1 else CI_T_HOLM
    for i, d in enumerate(diffs):
        # No spread between seeds (n < 2, or a constant difference): no interval to show,
        # rather than a zero-width one that would contradict the untestable verdict.
        ci = t_interval(d, levels[i]) if has_spread(d) else {}
        out.loc[i, "ci_low"] = ci.get("ci_low", np.nan)
        out.loc[i, "ci_high"] = ci.get("ci_high", np.nan)
        out.loc[i, "ci_level"] = 1 - levels[i]
        out.loc[i, "ci_method"] = method
    out["verdict"] = [
        verdict(int(r.n_pairs), r.mean_diff, bool(r.significant), mode) for r in out.itertuples()
    ]
    out["decision"], out["seeds_needed"] = None, np.nan
    out["tost_low"], out["tost_high"] = np.nan, np.nan
    if decision is not None:
        for i, d in enumerate(diffs):
            word, needed = decisions.decide(
                d,
                significant=bool(out.loc[i, "significant"]),
                mode=mode,
                decision=decision,
                n_comparisons=len(out),
            )
            out.loc[i, "decision"], out.loc[i, "seeds_needed"] = word, needed
            out.loc[i, "tost_low"], out.loc[i, "tost_high"] = decisions.tost_interval(
                d, decision.alpha
            )
            out.loc[i, "verdict"] = word
    return out[COMPARISON_COLUMNS]


PLAN_COLUMNS = ["variant", "n_pairs", "sd", "sd_source", "seeds_needed"]


def seeds_plan(
    comparisons: pd.DataFrame,
    finished: pd.DataFrame,
    decision: Decision,
    baseline: str | None,
    metric: str,
) -> pd.DataFrame:
    """Per comparison: the seeds the declared power at min_effect needs, from its observed
    paired sd (else the study's pilot_sd), at Holm's first-step level alpha / m."""
    rows = []
    m = max(len(comparisons), 1)
    for variant in comparisons["variant"]:
        pairs = paired(finished, variant, baseline, metric) if baseline else pd.DataFrame()
        d = (pairs["variant"] - pairs["baseline"]).to_numpy(dtype=float) if len(pairs) else []
        d = np.asarray(d, dtype=float)
        sd, source = (float(d.std(ddof=1)), "observed") if has_spread(d) else (None, "")
        if sd is None and decision.pilot_sd:
            sd, source = decision.pilot_sd, "decision.pilot_sd"
        needed = (
            decisions.seeds_for_power(
                sd, decision.min_effect, alpha=decision.alpha / m, power=decision.power
            )
            if sd
            else np.nan
        )
        rows.append(
            {
                "variant": variant,
                "n_pairs": len(d),
                "sd": sd if sd else np.nan,
                "sd_source": source or "none",
                "seeds_needed": needed,
            }
        )
    return pd.DataFrame(rows, columns=PLAN_COLUMNS)


LOOK_COLUMNS = [
    "look", "n", "variant", "mean_diff", "ci_low", "ci_high", "level", "p",
    "equivalence_level", "decision", "seeds_needed",
]  # fmt: skip


def sequential_comparisons(
    comparisons: pd.DataFrame,
    finished: pd.DataFrame,
    plan: sequential.SequentialPlan,
    *,
    metric: str,
    baseline: str | None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The comparisons as the sequential looks decided them, and the looks themselves.

    The paired values are replayed in seed order through `ablation.stats.sequential.looks`
    (the function the driver decides with), so the report shows the decision that was acted
    on; the headline interval is the one at the level of the comparison's deciding look.
    """
    if comparisons.empty or baseline is None:
        return comparisons, pd.DataFrame(columns=LOOK_COLUMNS)
    diffs = {}
    for variant in comparisons["variant"]:
        pairs = paired(finished, variant, baseline, metric)
        diffs[variant] = (pairs["variant"] - pairs["baseline"]).to_numpy(dtype=float)
    history = sequential.looks(plan, diffs)
    rows = [
        {"look": k + 1, "n": look.n, "variant": c, **_look_fields(r)}
        for k, look in enumerate(history)
        for c, r in look.comparisons.items()
    ]
    final = sequential.final_decisions(history)
    out = comparisons.copy()
    for i, variant in enumerate(out["variant"]):
        r = final.get(variant)
        if r is None:  # fewer seeds than the first look: nothing decided yet
            out.loc[i, ["ci_low", "ci_high", "ci_level"]] = np.nan
            out.loc[i, "decision"] = out.loc[i, "verdict"] = sequential.CONTINUE
            continue
        out.loc[i, "ci_low"], out.loc[i, "ci_high"] = r.ci_low, r.ci_high
        out.loc[i, "ci_level"] = 1 - r.level
        out.loc[i, "ci_method"] = CI_SEQUENTIAL
        out.loc[i, "significant"] = r.decision in (decisions.BETTER, decisions.WORSE)
        out.loc[i, "decision"] = out.loc[i, "verdict"] = r.decision
        out.loc[i, "seeds_needed"] = r.seeds_needed
    return out, pd.DataFrame(rows, columns=LOOK_COLUMNS)


def _look_fields(r: sequential.ComparisonLook) -> dict[str, Any]:
    return {
        "mean_diff": r.mean_diff,
        "ci_low": r.ci_low,
        "ci_high": r.ci_high,
        "level": r.level,
        "p": r.p,
        "equivalence_level": r.equivalence_level,
        "decision": r.decision,
        "seeds_needed": r.seeds_needed,
    }


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


# --- factors ----------------------------------------------------------------------------------


def _factorial_rows(finished: pd.DataFrame, metric: str, factors: Sequence[str]) -> pd.DataFrame:
    cols = [names.FACTOR_PREFIX + f for f in factors]
    return finished.dropna(subset=cols + [metric])


def marginal_means(
    finished: pd.DataFrame, metric: str, levels: Mapping[str, list[str]], *, alpha: float = 0.05
) -> pd.DataFrame:
    """Per factor level: n, mean, std, t-CI of the metric over the factorial trials at that level.

    Raw means over whatever the other factors did at that level; in a balanced full factorial
    their differences are the main effects below.
    """
    rows = []
    data = _factorial_rows(finished, metric, list(levels))
    for f, lv in levels.items():
        for level in lv:
            x = data.loc[data[names.FACTOR_PREFIX + f] == level, metric].to_numpy(dtype=float)
            rows.append({"factor": f, "level": level, **t_interval(x, alpha)})
    return pd.DataFrame(rows, columns=["factor", "level", "n", "mean", "std", "ci_low", "ci_high"])


def _design_frame(
    data: pd.DataFrame, metric: str, levels: Mapping[str, list[str]]
) -> tuple[pd.DataFrame, dict[str, str]]:
    """A frame with formula-safe names (f0, f1, ...), categorical levels in declared order."""
    safe = {f: f"f{i}" for i, f in enumerate(levels)}
    frame = pd.DataFrame({"y": data[metric].to_numpy(dtype=float)})
    for f, s in safe.items():
        frame[s] = pd.Categorical(data[names.FACTOR_PREFIX + f].to_numpy(), categories=levels[f])
    frame["seed"] = pd.Categorical(data["seed"].astype(str).to_numpy())
    return frame, safe


def _fit(formula: str, frame: pd.DataFrame):
    import statsmodels.formula.api as smf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return smf.ols(formula, data=frame).fit()


def _varying(frame: pd.DataFrame, col: str) -> bool:
    return frame[col].nunique() > 1


def main_effects(
    finished: pd.DataFrame, metric: str, levels: Mapping[str, list[str]], *, alpha: float = 0.05
) -> tuple[pd.DataFrame, list[str]]:
    """Main effects from the additive model ``metric ~ C(f1) + ... + C(seed)`` (seed as a block).

    One row per non-reference level: the effect of moving the factor from its reference (first)
    level to this one, with the OLS t-interval and p, and the factor's ANOVA F-test p. In a
    balanced full factorial the estimate equals the difference of marginal means; in a
    one-at-a-time design it is the change from the base point.
    """
    cols = ["factor", "level", "reference", "estimate", "ci_low", "ci_high", "p", "p_factor", "n"]
    data = _factorial_rows(finished, metric, list(levels))
    usable = {f: lv for f, lv in levels.items() if len(lv) >= 2}
    if data.empty or not usable:
        return pd.DataFrame(columns=cols), []
    frame, safe = _design_frame(data, metric, usable)
    terms = [f"C({safe[f]})" for f in usable if _varying(frame, safe[f])]
    if _varying(frame, "seed"):
        terms.append("C(seed)")
    if not terms:
        return pd.DataFrame(columns=cols), []
    n_params = 1 + sum(frame[t[2:-1]].nunique() - 1 for t in terms)
    if len(frame) <= n_params:
        return pd.DataFrame(columns=cols), [
            f"main effects need more finished trials than the {n_params} model parameters"
        ]
    fit = _fit("y ~ " + " + ".join(terms), frame)
    ci = fit.conf_int(alpha)
    anova = _anova(fit)
    rows = []
    for f, lv in usable.items():
        s = safe[f]
        for level in lv[1:]:
            key = f"C({s})[T.{level}]"
            if key not in fit.params.index:
                continue
            rows.append(
                {
                    "factor": f,
                    "level": level,
                    "reference": lv[0],
                    "estimate": float(fit.params[key]),
                    "ci_low": float(ci.loc[key, 0]),
                    "ci_high": float(ci.loc[key, 1]),
                    "p": float(fit.pvalues[key]),
                    "p_factor": float(anova.get(f"C({s})", np.nan)),
                    "n": int(fit.nobs),
                }
            )
    return pd.DataFrame(rows, columns=cols), []


def _anova(fit) -> dict[str, float]:
    """Type-II ANOVA p-values by term; empty when the model has no residual degrees of freedom."""
    from statsmodels.stats.anova import anova_lm

    if fit.df_resid <= 0:
        return {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            table = anova_lm(fit, typ=2)
        except Exception:  # singular designs: the estimates stand, the F-tests do not
            return {}
    return table["PR(>F)"].dropna().to_dict()


def interactions(
    finished: pd.DataFrame, metric: str, levels: Mapping[str, list[str]], *, alpha: float = 0.05
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Two-factor interactions where the design crosses the two factors.

    For each pair (a, b) whose level combinations all occur among the finished trials, fits
    ``metric ~ C(a) * C(b) + C(other factors) + C(seed)``. Each interaction term is the
    difference-in-differences against both reference levels (for a 2x2:
    (y11 - y10) - (y01 - y00) over cell means when balanced), with its t-interval and p; the
    pair's ANOVA F-test p sits beside it. Cell means are returned for the heat map.
    """
    cols = [
        "factor_a", "factor_b", "level_a", "level_b", "estimate", "ci_low", "ci_high", "p",
        "p_interaction", "n",
    ]  # fmt: skip
    cell_cols = ["factor_a", "factor_b", "level_a", "level_b", "n", "mean", "std"]
    data = _factorial_rows(finished, metric, list(levels))
    usable = [f for f, lv in levels.items() if len(lv) >= 2]
    rows, cells, notes = [], [], []
    for a, b in itertools.combinations(usable, 2):
        fa, fb = names.FACTOR_PREFIX + a, names.FACTOR_PREFIX + b
        grouped = data.groupby([fa, fb])[metric]
        stats = pd.DataFrame({"n": grouped.count(), "mean": grouped.mean(), "std": grouped.std()})
        for (la, lb), r in stats.iterrows():
            cells.append({"factor_a": a, "factor_b": b, "level_a": la, "level_b": lb, **r})
        observed = set(stats.index)
        if any((la, lb) not in observed for la in levels[a] for lb in levels[b]):
            notes.append(f"{a} x {b}: not crossed in the finished trials; no interaction")
            continue
        sub = {f: levels[f] for f in usable}
        frame, safe = _design_frame(data, metric, sub)
        others = [f"C({safe[f]})" for f in usable if f not in (a, b) and _varying(frame, safe[f])]
        blocks = ["C(seed)"] if _varying(frame, "seed") else []
        sa, sb = safe[a], safe[b]
        formula = "y ~ " + " + ".join([f"C({sa}) * C({sb})", *others, *blocks])
        fit = _fit(formula, frame)
        if fit.df_resid <= 0:
            notes.append(f"{a} x {b}: too few finished trials for an interaction with a CI")
            continue
        ci = fit.conf_int(alpha)
        anova = _anova(fit)
        p_pair = anova.get(f"C({sa}):C({sb})", np.nan)
        for la in levels[a][1:]:
            for lb in levels[b][1:]:
                key = f"C({sa})[T.{la}]:C({sb})[T.{lb}]"
                if key not in fit.params.index:
                    continue
                rows.append(
                    {
                        "factor_a": a,
                        "factor_b": b,
                        "level_a": la,
                        "level_b": lb,
                        "estimate": float(fit.params[key]),
                        "ci_low": float(ci.loc[key, 0]),
                        "ci_high": float(ci.loc[key, 1]),
                        "p": float(fit.pvalues[key]),
                        "p_interaction": float(p_pair),
                        "n": int(fit.nobs),
                    }
                )
    return pd.DataFrame(rows, columns=cols), pd.DataFrame(cells, columns=cell_cols), notes

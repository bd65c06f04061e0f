"""Each variant against the baseline, paired by seed: the comparison rows, the seeds plan and
the sequential looks, all read from one set of paired differences.

Honesty rules kept here:
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

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from ablation.stats import checks, sequential
from ablation.stats import decide as decisions
from ablation.stats.decide import Decision
from ablation.stats.intervals import (
    bootstrap_mean_ci,
    has_spread,
    holm,
    holm_levels,
    t_interval,
)
from ablation.vocabulary.direction import Direction
from ablation.vocabulary.verdicts import (
    BETTER,
    CONTINUE,
    EQUIVALENT,
    NO_DIFFERENCE,
    NOT_ENOUGH_SEEDS,
    WORSE,
)

# What `ci_method` says the headline interval is.
CI_T = "paired t"
CI_T_HOLM = "paired t at Holm's level"
CI_SEQUENTIAL = "paired t at the sequential look's level"
# An equivalent verdict shows the interval that decided it: the TOST's (1 - 2 alpha) one.
CI_TOST = "TOST interval (equivalence)"

# Packed (fmt: skip): one column a line would spread a table's header over 24 lines.
COMPARISON_COLUMNS = [
    "variant", "baseline", "metric", "n_pairs", "variant_mean", "baseline_mean", "mean_diff",
    "ci_low", "ci_high", "ci_level", "ci_method", "boot_ci_low", "boot_ci_high", "t", "p_t",
    "p_wilcoxon", "p_holm", "effect_dz", "significant", "verdict", "decision", "seeds_needed",
    "tost_low", "tost_high", "reason", "outlier_seeds",
]  # fmt: skip
PLAN_COLUMNS = ["variant", "n_pairs", "sd", "sd_source", "seeds_needed"]
# Packed like COMPARISON_COLUMNS.
# `ci_low`/`ci_high` is the interval that decided the look (`ci_method`, `ci_level`), `level`
# the efficacy test's nominal level at the look.
LOOK_COLUMNS = [
    "look", "n", "variant", "mean_diff", "ci_low", "ci_high", "level", "p",
    "equivalence_level", "decision", "seeds_needed", "ci_level", "ci_method", "reason",
    "outlier_seeds",
]  # fmt: skip


def verdict(n_pairs: int, mean_diff: float, significant: bool, mode: str | Direction) -> str:
    """A plain word for a comparison, respecting whether the metric is minimised or maximised."""
    if n_pairs < 2:
        return NOT_ENOUGH_SEEDS
    if not significant:
        return NO_DIFFERENCE
    return BETTER if Direction.of(mode).improves(mean_diff) else WORSE


def paired(finished: pd.DataFrame, variant: str, baseline: str, metric: str) -> pd.DataFrame:
    """The seeds both variants finished (the index), the metric of each (`variant`,
    `baseline`, a trial per seed) and their difference `diff` = variant - baseline."""

    def by_seed(name: str) -> pd.Series:
        rows = finished[finished["variant"] == name].dropna(subset=[metric])
        return rows.groupby("seed")[metric].mean()

    both = pd.concat({"variant": by_seed(variant), "baseline": by_seed(baseline)}, axis=1)
    both = both.sort_index()
    # A finished trial with a non-finite metric diverged: its seed is left out of the pairs and
    # named in the comparison's `reason` (attrs["diverged_seeds"]).
    bad = both.isin([np.inf, -np.inf]).any(axis=1)
    ran = finished["variant"].isin([variant, baseline]) & finished[metric].isna()
    nan_seeds = set(finished.loc[ran, "seed"])
    diverged = sorted({*both.index[bad], *nan_seeds})
    both = both[~bad].dropna()
    both["diff"] = both["variant"] - both["baseline"]
    both.attrs["diverged_seeds"] = [int(s) for s in diverged]
    return both


def paired_differences(
    finished: pd.DataFrame, variants: Iterable[str], baseline: str | None, metric: str
) -> dict[str, pd.DataFrame]:
    """Per variant other than the baseline, in order: its `paired` frame; empty without a
    baseline. Computed once per summary and read by every comparison, plan and look."""
    if baseline is None:
        return {}
    return {v: paired(finished, v, baseline, metric) for v in variants if v != baseline}


def _diffs(pairs: Mapping[str, pd.DataFrame]) -> list[np.ndarray]:
    return [p["diff"].to_numpy(dtype=float) for p in pairs.values()]


def compare_to_baseline(
    pairs: Mapping[str, pd.DataFrame],
    *,
    metric: str,
    mode: str | Direction,
    baseline: str | None,
    alpha: float = 0.05,
    n_resamples: int = 9999,
    seed: int = 0,
    decision: Decision | None = None,
) -> pd.DataFrame:
    """Each variant of `pairs` (`paired_differences`) against the baseline, Holm-corrected.

    ``ci_low``/``ci_high`` is the headline interval: the paired t-interval at the level Holm
    tested the comparison at (``ci_level`` its confidence; 1 - alpha with one comparison), so
    it excludes zero exactly when the verdict is better or worse. ``boot_ci_*`` is the BCa
    bootstrap at 1 - alpha, only from `BOOTSTRAP_MIN_N` pairs. With `decision`, ``decision``
    holds better / worse / equivalent / undecided (``tost_*`` the (1 - 2 alpha) interval the
    equivalence test reads, ``seeds_needed`` for an undecided one); without it, NaN.
    """
    if baseline is None or not pairs:
        return pd.DataFrame(columns=COMPARISON_COLUMNS)
    diffs = _diffs(pairs)
    out = pd.DataFrame(
        [
            {
                "variant": v,
                "baseline": baseline,
                "metric": metric,
                **_paired_tests(p, alpha=alpha, n_resamples=n_resamples, seed=seed),
            }
            for v, p in pairs.items()
        ]
    )
    # A constant non-zero difference has p NaN: Holm never rejects it (it stays undecided).
    p_holm_in = out["p_t"].to_numpy(dtype=float)
    out["p_holm"], out["significant"] = holm(p_holm_in, alpha)
    _headline_intervals(out, diffs, alpha, p_holm_in)
    out["verdict"] = [
        verdict(int(r.n_pairs), r.mean_diff, bool(r.significant), mode) for r in out.itertuples()
    ]
    out["decision"], out["seeds_needed"] = None, np.nan
    out["tost_low"], out["tost_high"] = np.nan, np.nan
    # `reason`: why a verdict is what it is where the numbers alone do not say (a constant
    # difference, a diverged seed); `outlier_seeds`: the seeds whose paired difference is an
    # outlier, comma-separated ("" for none). Both empty until the decision rules set them.
    out["reason"], out["outlier_seeds"] = "", ""
    for i, p in enumerate(pairs.values()):
        diverged = p.attrs.get("diverged_seeds", [])
        out.loc[i, "reason"], out.loc[i, "outlier_seeds"] = checks.describe(
            diffs[i], list(p.index), diverged=diverged
        )
    if decision is not None:
        _decide(out, diffs, mode, decision)
    return out[COMPARISON_COLUMNS]


def _paired_tests(
    pairs: pd.DataFrame, *, alpha: float, n_resamples: int, seed: int
) -> dict[str, Any]:
    """One comparison's means, bootstrap interval, paired t-test, d_z and (from 6 pairs) the
    Wilcoxon signed-rank p."""
    d = pairs["diff"].to_numpy(dtype=float)
    n = len(d)
    row: dict[str, Any] = {
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
    return row


def _headline_intervals(
    out: pd.DataFrame, diffs: list[np.ndarray], alpha: float, p: np.ndarray
) -> None:
    """Each comparison's paired t-interval at the level Holm tested it at, set on `out`."""
    levels = holm_levels(p, alpha)
    method = CI_T if len(out) == 1 else CI_T_HOLM
    for i, d in enumerate(diffs):
        # No spread between seeds (n < 2, or a constant difference): no interval to show,
        # rather than a zero-width one that would contradict the untestable verdict.
        ci = t_interval(d, levels[i]) if has_spread(d) else {}
        out.loc[i, "ci_low"] = ci.get("ci_low", np.nan)
        out.loc[i, "ci_high"] = ci.get("ci_high", np.nan)
        out.loc[i, "ci_level"] = 1 - levels[i]
        out.loc[i, "ci_method"] = method


def _decide(
    out: pd.DataFrame, diffs: list[np.ndarray], mode: str | Direction, decision: Decision
) -> None:
    """The study's three-way decisions (`ablation.stats.decide`) set on `out`, as verdicts,
    each with the interval that decided it: the TOST's (1 - 2 alpha) one for equivalent, the
    efficacy interval at Holm's level otherwise (set by `_headline_intervals`). Differences
    without spread say why in `reason`: an exact null shows [0, 0], a constant non-zero
    difference (undecided) no interval."""
    for i, d in enumerate(diffs):
        word, needed = decisions.decide(
            d,
            significant=bool(out.loc[i, "significant"]),
            mode=mode,
            decision=decision,
            n_comparisons=len(out),
        )
        out.loc[i, "decision"], out.loc[i, "seeds_needed"] = word, needed
        tost = decisions.tost_interval(d, decision.alpha)
        out.loc[i, "tost_low"], out.loc[i, "tost_high"] = tost
        out.loc[i, "verdict"] = word
        constant = checks.spread_verdict(d)
        if constant is not None:
            if constant[0] == EQUIVALENT:
                x = d[np.isfinite(d)]
                tost = (float(x.mean()), float(x.mean()))
                out.loc[i, "tost_low"], out.loc[i, "tost_high"] = tost
            out.loc[i, "reason"] = "; ".join(r for r in (constant[1], out.loc[i, "reason"]) if r)
        if word == EQUIVALENT:
            out.loc[i, "ci_low"], out.loc[i, "ci_high"] = tost
            out.loc[i, "ci_level"] = 1 - 2 * decision.alpha
            out.loc[i, "ci_method"] = CI_TOST


def seeds_plan(pairs: Mapping[str, pd.DataFrame], decision: Decision) -> pd.DataFrame:
    """Per comparison: the seeds the declared power at min_effect needs, from its observed
    paired sd (else the study's pilot_sd), at Holm's first-step level alpha / m."""
    rows = []
    m = max(len(pairs), 1)
    for variant, d in zip(pairs, _diffs(pairs), strict=True):
        sd, source = decisions.planning_sd(d, decision)
        needed = decisions.seeds_needed(sd, decision, m)
        rows.append(
            {
                "variant": variant,
                "n_pairs": len(d),
                "sd": sd if sd else np.nan,
                "sd_source": source,
                "seeds_needed": np.nan if needed is None else needed,
            }
        )
    return pd.DataFrame(rows, columns=PLAN_COLUMNS)


def sequential_comparisons(
    comparisons: pd.DataFrame,
    pairs: Mapping[str, pd.DataFrame],
    plan: sequential.SequentialPlan,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The comparisons as the sequential looks decided them, and the looks themselves.

    The paired values are replayed in seed order through `ablation.stats.sequential.looks`
    (the function the driver decides with), so the report shows the decision that was acted
    on; the headline interval is the one at the level of the comparison's deciding look, and
    the means, n and d_z those of that look's pairs. The fixed-n answer is not kept beside it:
    ``t``, ``p_t``, ``p_wilcoxon``, ``p_holm`` are NaN and ``significant`` None (the looks
    table holds each look's p with the level it was tested at), the bootstrap and fixed-n TOST
    intervals NaN.
    """
    if comparisons.empty or not pairs:
        return comparisons, pd.DataFrame(columns=LOOK_COLUMNS)
    seeds = {v: list(p.index) for v, p in pairs.items()}
    history = sequential.looks(plan, dict(zip(pairs, _diffs(pairs), strict=True)), seeds)
    rows = [
        {"look": k + 1, "n": look.n, "variant": c, **_look_fields(r)}
        for k, look in enumerate(history)
        for c, r in look.comparisons.items()
    ]
    final = sequential.final_decisions(history)
    out = comparisons.copy()
    out[_FIXED_N_ONLY] = np.nan
    out["significant"] = pd.Series([None] * len(out), index=out.index, dtype=object)
    for i, variant in enumerate(out["variant"]):
        r = final.get(variant)
        if r is None:  # fewer seeds than the first look: nothing decided yet
            out.loc[i, ["ci_low", "ci_high", "ci_level"]] = np.nan
            out.loc[i, "decision"] = out.loc[i, "verdict"] = CONTINUE
            continue
        _look_pairs(out, i, pairs[variant].iloc[: r.n])
        out.loc[i, "ci_low"], out.loc[i, "ci_high"] = r.ci_low, r.ci_high
        out.loc[i, "ci_level"] = r.ci_level
        out.loc[i, "ci_method"] = _look_method(r)
        out.loc[i, "decision"] = out.loc[i, "verdict"] = r.decision
        out.loc[i, "seeds_needed"] = r.seeds_needed
        # The look's own reason (no spread, outliers among the seeds it used) and the seeds
        # whose trial diverged.
        diverged = pairs[variant].attrs.get("diverged_seeds", [])
        extra, _ = checks.describe([], [], diverged=diverged)
        out.loc[i, "reason"] = "; ".join(x for x in (r.reason, extra) if x)
        out.loc[i, "outlier_seeds"] = r.outlier_seeds
    return out, pd.DataFrame(rows, columns=LOOK_COLUMNS)


# What a sequential comparison does not carry: the fixed-n tests and intervals of all its
# pairs, a second answer beside the look's (`sequential_comparisons`).
_FIXED_N_ONLY = ["t", "p_t", "p_wilcoxon", "p_holm", "boot_ci_low", "boot_ci_high"]
_FIXED_N_ONLY += ["tost_low", "tost_high"]


def _look_pairs(out: pd.DataFrame, i: int, pairs: pd.DataFrame) -> None:
    """Row i's n, means and d_z from the pairs its deciding look used (the first n seeds)."""
    d = pairs["diff"].to_numpy(dtype=float)
    out.loc[i, "n_pairs"] = len(d)
    out.loc[i, "variant_mean"] = float(pairs["variant"].mean())
    out.loc[i, "baseline_mean"] = float(pairs["baseline"].mean())
    out.loc[i, "mean_diff"] = float(d.mean())
    out.loc[i, "effect_dz"] = float(d.mean() / d.std(ddof=1)) if has_spread(d) else np.nan


def _look_method(r: sequential.ComparisonLook) -> str:
    return CI_TOST if r.interval == "tost" else CI_SEQUENTIAL


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
        "ci_level": r.ci_level,
        "ci_method": _look_method(r),
        "reason": r.reason,
        "outlier_seeds": r.outlier_seeds,
    }

"""Three-way decisions against a smallest effect of interest, and the seeds a power needs.

A comparison (paired differences variant - baseline over seeds) is
- ``better`` / ``worse``: its paired t-test is significant at the level Holm's correction gives
  it (the sign read through the metric's mode: lower error is better);
- ``equivalent``: not significant, and its (1 - 2 alpha) t-interval lies inside
  (-min_effect, +min_effect): the two one-sided tests (TOST) at alpha both reject;
- ``undecided``: neither; `seeds_for_power` says how many seeds would detect min_effect.
Differences without seed-to-seed spread go through `ablation.stats.checks.spread_verdict`: an
exact null (every difference 0) is equivalent; a constant non-zero difference is undecided,
with the reason (nothing to test it against). Under normal paired differences the t-test and
the TOST are exact at every n >= 2: false positives at most alpha (family-wise, Holm),
"equivalent" for a true effect of min_effect at most alpha
(tests/stats/test_exact_decisions.py measures both).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

from ablation.stats.checks import spread_verdict
from ablation.stats.intervals import has_spread, is_zero
from ablation.vocabulary.direction import Direction
from ablation.vocabulary.verdicts import BETTER, EQUIVALENT, UNDECIDED, WORSE

# Past this many seeds a plan is not a plan: say "more than" instead of a number.
MAX_SEEDS = 1000


@dataclass(frozen=True)
class Decision:
    """What a study declares under ``decision:``: the smallest effect worth finding (in the
    metric's units), the error rate, and the power wanted; `pilot_sd` for planning."""

    min_effect: float
    alpha: float = 0.05
    power: float = 0.8
    pilot_sd: float | None = None


def paired_t(d: np.ndarray) -> tuple[float, float]:
    """(t, two-sided p) of the paired t-test; (0, 1) for all-zero differences, NaN p for a
    constant non-zero difference (no sampling distribution to test) or n < 2."""
    if len(d) < 2:
        return (np.nan, np.nan)
    if has_spread(d):
        res = sps.ttest_1samp(d, 0.0)
        return (float(res.statistic), float(res.pvalue))
    if is_zero(float(d.mean())):
        return (0.0, 1.0)
    return (np.nan, np.nan)


def equivalent(d: np.ndarray, min_effect: float, alpha: float) -> bool:
    """TOST at alpha: the (1 - 2 alpha) t-interval of the mean lies inside +-min_effect."""
    low, high = tost_interval(d, alpha)
    return bool(np.isfinite(low) and -min_effect < low and high < min_effect)


def tost_interval(d: np.ndarray, alpha: float) -> tuple[float, float]:
    """The (1 - 2 alpha) t-interval the equivalence test reads; NaN where n < 2 or no spread."""
    if not has_spread(d):
        return (np.nan, np.nan)
    n = len(d)
    half = float(sps.t.ppf(1 - alpha, n - 1)) * float(d.std(ddof=1)) / np.sqrt(n)
    mean = float(d.mean())
    return (mean - half, mean + half)


def decide(
    d: Sequence[float] | np.ndarray,
    *,
    significant: bool,
    mode: str | Direction,
    decision: Decision,
    n_comparisons: int = 1,
) -> tuple[str, float]:
    """(decision word, seeds needed) of one comparison; seeds needed is NaN unless undecided.

    `significant` is the Holm-corrected paired test's rejection (the caller corrects across the
    comparisons, with `holm_p` for its p); `n_comparisons` sets the planning level alpha / m
    for the seeds needed. An exact null is equivalent (`spread_verdict`); a constant non-zero
    difference has no p (NaN, never significant) and no TOST interval, so it ends undecided.
    """
    x = np.asarray(d, dtype=float)
    x = x[np.isfinite(x)]
    constant = spread_verdict(x)
    if constant is not None and constant[0] == EQUIVALENT:
        return (EQUIVALENT, np.nan)
    if significant and len(x):
        return (BETTER if Direction.of(mode).improves(float(x.mean())) else WORSE, np.nan)
    if equivalent(x, decision.min_effect, decision.alpha):
        return (EQUIVALENT, np.nan)
    sd, _ = planning_sd(x, decision)
    needed = seeds_needed(sd, decision, n_comparisons, already=len(x))
    return (UNDECIDED, np.nan if needed is None else float(needed))


def planning_sd(d: Sequence[float] | np.ndarray, decision: Decision) -> tuple[float | None, str]:
    """(sd, where it came from) of the paired differences a plan reads: the observed sd where
    they vary, else the study's ``pilot_sd``; ``(None, "none")`` without either."""
    x = np.asarray(d, dtype=float)
    x = x[np.isfinite(x)]
    if has_spread(x):
        return (float(x.std(ddof=1)), "observed")
    if decision.pilot_sd:
        return (decision.pilot_sd, "decision.pilot_sd")
    return (None, "none")


def seeds_needed(
    sd: float | None, decision: Decision, n_comparisons: int = 1, already: int = 0
) -> int | None:
    """The seeds the declared power at min_effect needs at paired sd `sd` (the fixed-n plan),
    at Holm's first-step level alpha / m for m comparisons; None without an sd to plan from.

    For a comparison left undecided after `already` seeds, at least `already + 1`: the plan
    at the observed sd can come out at or below the seeds run (the sd happened to be small,
    the mean landed between the bands), and "needs about 6 seeds" after 6 says nothing.
    """
    if not sd:
        return None
    alpha = decision.alpha / max(n_comparisons, 1)
    plan = seeds_for_power(sd, decision.min_effect, alpha=alpha, power=decision.power)
    return max(plan, already + 1)


def power_paired_t(n: np.ndarray | int, sd: float, effect: float, alpha: float) -> np.ndarray:
    """Power of the two-sided paired t-test at level alpha with n pairs (noncentral t).

    Both tails through the survival function: P(T < -c) for noncentrality nc is P(T' > c) for
    -nc. (scipy's `nct.cdf` far in the lower tail returns NaN at a large nc, e.g. sd 0.3
    against min_effect 2, which made the plan ask more seeds of a quieter comparison.)
    """
    n = np.asarray(n, dtype=float)
    df = n - 1
    crit = sps.t.ppf(1 - alpha / 2, df)
    nc = abs(effect) / sd * np.sqrt(n)
    power = sps.nct.sf(crit, df, nc) + sps.nct.sf(crit, df, -nc)
    return np.clip(power, 0.0, 1.0)


def seeds_for_power(sd: float, effect: float, *, alpha: float, power: float) -> int:
    """The fewest seeds (paired, >= 2) whose two-sided paired t-test at level alpha detects
    `effect` with probability `power`, for paired differences of standard deviation `sd`.

    With m comparisons pass alpha / m: the first step of Holm's correction, so the plan holds
    whatever the other comparisons do. `MAX_SEEDS + 1` when even that many would not do.
    """
    if not (sd > 0 and effect != 0):
        raise ValueError("seeds_for_power needs sd > 0 and a non-zero effect")
    # The t-test never has more power than the z-test with the sd known, so the answer is at
    # least the z-test's n: search upward from there, a few n at a time (power rises with n).
    z = (sps.norm.isf(alpha / 2) + sps.norm.ppf(power)) * sd / abs(effect)
    first = int(min(max(2, math.floor(z * z) - 1), MAX_SEEDS + 1))
    for low in range(first, MAX_SEEDS + 1, 16):
        n = np.arange(low, min(low + 16, MAX_SEEDS + 1))
        ok = np.flatnonzero(power_paired_t(n, sd, effect, alpha) >= power)
        if len(ok):
            return int(n[ok[0]])
    return MAX_SEEDS + 1

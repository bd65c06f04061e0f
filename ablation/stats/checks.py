"""What is checked in a comparison's paired differences before its verdict is read.

- No seed-to-seed spread (every seed gave the same difference): the t-test has no sampling
  distribution to read (`spread_verdict`). Exactly the same values on every seed (all
  differences 0) are an exact null, equivalent. A constant NON-zero difference decides nothing
  by itself: a metric with few distinct values (an error rate on 360 validation images moves
  in steps of 1/360) gives equal differences by chance at two or three seeds, and calling
  those better/worse/equivalent put "equivalent" at 7.9% for a true effect of min_effect
  ({2, 10}, sd 0.5 x min_effect). It stays open ("no spread yet": the next look, or
  undecided at the last one / at a fixed n), with that reason.
- Outlier seeds (`outliers`): a seed whose difference lies far from the mean of the others,
  measured in their sd (the externally studentized, leave-one-out residual, t with n - 2
  degrees of freedom under normal noise), flagged where its two-sided p is below
  `OUTLIER_ALPHA` / n (Bonferroni over the seeds): normal noise flags a comparison at most 1%
  of the time at every n, from `OUTLIER_MIN_N` pairs. (The MAD-based modified z-score > 3.5
  flagged 10-20% of normal-noise comparisons at 5-18 seeds: the median and MAD of a handful
  of values are themselves too noisy.) A flagged seed stays in the test (dropping it after
  seeing it would bias the verdict); the verdict names it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

from ablation.stats.intervals import NO_SPREAD, has_spread, is_zero
from ablation.vocabulary.verdicts import EQUIVALENT, UNDECIDED

# The chance that normal noise flags some seed of a comparison (at most; Bonferroni).
OUTLIER_ALPHA = 0.01
# The leave-one-out sd needs two other seeds' spread: from 4 pairs (2 degrees of freedom).
OUTLIER_MIN_N = 4


def spread_verdict(d: Sequence[float] | np.ndarray) -> tuple[str, str] | None:
    """(verdict, reason) of differences without seed-to-seed spread; None where they vary or
    fewer than two are finite. An exact null is equivalent; a constant non-zero difference is
    undecided (a sequential look continues instead, with the same reason)."""
    x = np.asarray(d, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) < 2 or has_spread(x):
        return None
    mean = float(x.mean())
    if is_zero(mean):
        return (EQUIVALENT, "every seed gave the same value: an exact null")
    return (
        UNDECIDED,
        f"no spread yet: a constant difference of {mean:+.3g} on every seed, nothing to test "
        "it against (a metric with few distinct values ties by chance)",
    )


def outliers(d: Sequence[float] | np.ndarray) -> list[tuple[int, float]]:
    """(position, studentized residual) of each outlying value of `d` (positions into `d`)."""
    x = np.asarray(d, dtype=float)
    ok = np.flatnonzero(np.isfinite(x))
    n = len(ok)
    if n < OUTLIER_MIN_N:
        return []
    v = x[ok]
    # Leave-one-out mean and sd of the other n - 1 values, for every value at once.
    rest_mean = (v.sum() - v) / (n - 1)
    rest_ss = (np.square(v).sum() - np.square(v)) - (n - 1) * np.square(rest_mean)
    rest_sd = np.sqrt(np.maximum(rest_ss, 0.0) / (n - 2))
    scale = rest_sd * np.sqrt(1 + 1 / (n - 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.abs(v - rest_mean) / scale
    # The others agreeing exactly while this one differs: as far out as it gets.
    tol = NO_SPREAD * np.maximum(1.0, np.abs(rest_mean))
    r = np.where(scale > tol, r, np.where(np.abs(v - rest_mean) > tol, np.inf, 0.0))
    p = 2 * sps.t.sf(r, n - 2)
    return [(int(ok[i]), float(r[i])) for i in np.flatnonzero(p < OUTLIER_ALPHA / n)]


def describe(
    d: Sequence[float] | np.ndarray,
    seeds: Sequence[int],
    *,
    diverged: Sequence[int] = (),
) -> tuple[str, str]:
    """(reason, outlier seeds) for a verdict line: outlier seeds (by seed value, with how far
    out) and seeds whose trial diverged (a non-finite metric, left out of the test)."""
    parts: list[str] = []
    flagged = [(int(seeds[i]), z) for i, z in outliers(d)]
    for seed, z in flagged:
        far = f"{z:.1f} sd of the others from their mean" if np.isfinite(z) else "the others agree"
        parts.append(f"seed {seed}'s difference is an outlier ({far})")
    if diverged:
        names = ", ".join(str(s) for s in diverged)
        parts.append(f"seed {names}: non-finite metric (diverged), left out of the test")
    return ("; ".join(parts), ",".join(str(s) for s, _ in flagged))

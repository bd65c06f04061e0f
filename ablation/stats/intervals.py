"""Intervals of a mean and Holm's correction, with the levels that make them agree.

The headline interval everywhere is Student's t: its coverage holds from two seeds on (the
simulation tests check >= 93% at every n from 2 to 20). The BCa bootstrap undercovers with few
seeds (its resamples take few distinct values): it is computed only from `BOOTSTRAP_MIN_N`
pairs, the n from which the coverage tests show it holding.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats as sps

# From this many pairs on the BCa interval of a mean covers >= 93% in the coverage simulation
# (tests/stats/test_coverage.py); below it, it is not shown at all.
BOOTSTRAP_MIN_N = 40

# Rounding leaves ~1e-15 of spread on differences that are equal (error rates are multiples of
# 1/n_val): that is no variance, not a huge effect. The one tolerance for "no spread" and for
# "exactly zero" (an exact null), relative to the values' size from 1 up.
NO_SPREAD = 1e-9


def has_spread(x: np.ndarray) -> bool:
    """Whether the sample varies more than rounding does."""
    return len(x) >= 2 and float(x.std(ddof=1)) > NO_SPREAD * max(1.0, abs(float(x.mean())))


def is_zero(mean: float | np.ndarray) -> bool | np.ndarray:
    """Whether a mean difference is zero up to rounding (every seed the same value: an exact
    null), elementwise for arrays."""
    return np.abs(mean) <= NO_SPREAD


def t_interval(values: Sequence[float] | np.ndarray, alpha: float = 0.05) -> dict[str, float]:
    """n, mean, std (ddof=1) and the (1 - alpha) Student-t interval of the mean; NaN where n < 2."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    n = len(x)
    mean = float(x.mean()) if n else np.nan
    if n < 2:
        return {"n": n, "mean": mean, "std": np.nan, "ci_low": np.nan, "ci_high": np.nan}
    std = float(x.std(ddof=1))
    half = float(sps.t.ppf(1 - alpha / 2, n - 1)) * std / np.sqrt(n)
    return {"n": n, "mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half}


def bootstrap_mean_ci(
    diffs: Sequence[float] | np.ndarray,
    *,
    alpha: float = 0.05,
    n_resamples: int = 9999,
    seed: int = 0,
    min_n: int = BOOTSTRAP_MIN_N,
) -> tuple[float, float]:
    """BCa bootstrap CI of the mean (resampling the pairs), seeded; NaN below `min_n` values.

    The percentile interval where BCa degenerates (ties); a constant sample has [d, d].
    """
    d = np.asarray(diffs, dtype=float)
    d = d[np.isfinite(d)]
    if len(d) < max(min_n, 2):
        return (np.nan, np.nan)
    if np.ptp(d) == 0:
        return (float(d[0]), float(d[0]))
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = sps.bootstrap(
                (d,),
                np.mean,
                n_resamples=n_resamples,
                confidence_level=1 - alpha,
                method=method,
                rng=np.random.default_rng(seed),
            )
        low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if np.isfinite(low) and np.isfinite(high):
            return (low, high)
    return (np.nan, np.nan)


def holm(p_values: Sequence[float], alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Holm-adjusted p-values and rejections; NaN p-values stay NaN and are never rejected."""
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(len(p), np.nan)
    reject = np.zeros(len(p), dtype=bool)
    ok = np.flatnonzero(np.isfinite(p))
    if len(ok):
        m = len(ok)
        order = ok[np.argsort(p[ok], kind="stable")]
        running = 0.0
        for rank, i in enumerate(order):
            running = max(running, min(1.0, (m - rank) * p[i]))
            adjusted[i] = running
        reject[ok] = adjusted[ok] <= alpha
    return adjusted, reject


def holm_levels(p_values: Sequence[float], alpha: float = 0.05) -> np.ndarray:
    """Per comparison, the level Holm's step-down tested it at: alpha / (m - k) for the k-th
    smallest p while all before it were rejected; the first non-rejected level for the rest.

    The (1 - level) t-interval of a comparison then excludes zero exactly when Holm rejects it,
    so the interval shown first and the verdict never disagree; each level is <= alpha, so its
    coverage is at least that of the plain (1 - alpha) interval. NaN p-values get the level of
    the last step (they are never rejected).
    """
    p = np.asarray(p_values, dtype=float)
    levels = np.full(len(p), float(alpha))
    ok = np.flatnonzero(np.isfinite(p))
    m = len(ok)
    if not m:
        return levels
    order = ok[np.argsort(p[ok], kind="stable")]
    level = alpha / m
    for rank, i in enumerate(order):
        level = alpha / (m - rank)
        levels[i] = level
        if p[i] > level:
            levels[order[rank:]] = level
            break
    levels[[i for i in range(len(p)) if i not in set(ok)]] = level
    return levels

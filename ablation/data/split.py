"""Fixed, stratified index splits: the split seed decides them, never the trial seed."""

from __future__ import annotations

import numpy as np


def stratified_split(
    labels: np.ndarray, n_first: int, *, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split indices of `labels` into (first, rest) with `n_first` indices in `first`.

    Each class gets its proportional share of `first` (largest remainders round up), chosen at
    random with `seed`; both parts come back sorted, so the split is a pure function of
    (labels, n_first, seed).
    """
    labels = np.asarray(labels)
    n = len(labels)
    if not 0 <= n_first <= n:
        raise ValueError(f"cannot take {n_first} of {n} samples")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = counts * (n_first / n)
    take = np.floor(quota).astype(int)
    # Hand out the rounding remainder to the classes with the largest fractional parts.
    short = n_first - int(take.sum())
    order = np.argsort(-(quota - take), kind="stable")
    take[order[:short]] += 1
    first = [
        rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take, strict=True)
    ]
    first_idx = np.sort(np.concatenate(first)) if first else np.empty(0, dtype=np.int64)
    rest_idx = np.setdiff1d(np.arange(n), first_idx, assume_unique=True)
    return first_idx.astype(np.int64), rest_idx.astype(np.int64)

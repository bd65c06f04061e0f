"""A study whose three comparisons end better, equivalent and undecided, as the decision rules
hand them to the pages (issue 22's contract: each row's ``ci_*`` is the interval that decided
its verdict, the TOST interval for an equivalent one), with a reason and an outlier seed."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from ablation.report.summary import Summary, summarize

MIN_EFFECT = 1.0
# Paired differences (variant - baseline) per seed, in error points (lower is better).
DIFFERENCES = {
    "big": [-3.1, -2.9, -3.3, -2.8, -3.0, -3.2],  # better
    "same": [0.05, -0.08, 0.02, 0.1, -0.04, -0.03],  # equivalent
    "noisy": [2.5, -3.0, 1.0, -1.5, 3.5, -2.0],  # undecided
}


def verdict_frames() -> pd.DataFrame:
    """Finished trials of `base` and the three variants over six seeds."""
    base = 30 + np.linspace(-1, 1, 6)
    rows = [
        {"trial_id": f"base-{s}", "variant": "base", "seed": s, "status": "FINISHED",
         "val_top1_error": base[s]}
        for s in range(6)
    ]  # fmt: skip
    for v, d in DIFFERENCES.items():
        rows += [
            {"trial_id": f"{v}-{s}", "variant": v, "seed": s, "status": "FINISHED",
             "val_top1_error": base[s] + d[s]}
            for s in range(6)
        ]  # fmt: skip
    return pd.DataFrame(rows)


def as_decided(summary: Summary) -> Summary:
    """The summary with a planted reason and outlier seed on the undecided row (the decision
    rules set an equivalent row's interval to the TOST one themselves)."""
    c = summary.comparisons.copy()
    noisy = c["variant"] == "noisy"
    c.loc[noisy, "reason"] = "planted reason: seed 4 diverged"
    c.loc[noisy, "outlier_seeds"] = "4"
    return dataclasses.replace(summary, comparisons=c)


def verdict_summary() -> Summary:
    """better / equivalent / undecided at min_effect 1, fixed n = 6."""
    return as_decided(
        summarize(
            verdict_frames(),
            baseline="base",
            study="verdicts",
            decision={"min_effect": MIN_EFFECT, "alpha": 0.05, "power": 0.8},
            n_resamples=99,
        )
    )

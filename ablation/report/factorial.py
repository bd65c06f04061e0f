"""Factor effects: marginal means, main effects and two-factor interactions (OLS, seed blocks).

Pure functions of the FINISHED trials' values (one row per trial, ``factor.<key>`` level
labels): the additive model ``metric ~ C(f1) + ... + C(seed)`` for the main effects, and one
model per crossed pair for the interactions.

Descriptive only (`DESCRIPTIVE`): estimates, no interval, no p-value, no ANOVA. The verdicts
are the paired comparisons' (`comparisons.py`), adjusted for the sequential looks and for
Holm's multiplicity; an OLS interval or F-test here, pooled over every variant and adjusted for
neither, would answer the same question a second time and could contradict them (issue 22).
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
import statsmodels.formula.api as smf
from statsmodels.regression.linear_model import RegressionResultsWrapper

from ablation.track import names

# How every page heads the factor tables and figures: what they are and are not.
DESCRIPTIVE = "descriptive: not adjusted for sequential looks or multiple comparisons"


@dataclass(frozen=True)
class FactorialAnalysis:
    """The factor tables of a summary; all empty when the study has no factors."""

    marginal_means: pd.DataFrame = field(default_factory=pd.DataFrame)
    main_effects: pd.DataFrame = field(default_factory=pd.DataFrame)
    interactions: pd.DataFrame = field(default_factory=pd.DataFrame)
    interaction_cells: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)


def factor_columns(trials: pd.DataFrame) -> list[str]:
    """The factor keys (without the ``factor.`` prefix), in column order."""
    prefix = names.FACTOR_PREFIX
    return [c[len(prefix) :] for c in trials.columns if c.startswith(prefix)]


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


def analyse_factors(
    finished: pd.DataFrame,
    metric: str,
    factors: Sequence[str],
    declared: Mapping[str, Sequence[str]] | None = None,
) -> FactorialAnalysis:
    """Marginal means, main effects and interactions of `factors` over the finished trials,
    their levels in the study's `declared` order where known; estimates only (`DESCRIPTIVE`)."""
    if not factors:
        return FactorialAnalysis()
    levels = {
        f: level_order(finished[names.FACTOR_PREFIX + f], (declared or {}).get(f)) for f in factors
    }
    effects, effect_notes = main_effects(finished, metric, levels)
    inter, cells, inter_notes = interactions(finished, metric, levels)
    return FactorialAnalysis(
        marginal_means=marginal_means(finished, metric, levels),
        main_effects=effects,
        interactions=inter,
        interaction_cells=cells,
        notes=effect_notes + inter_notes,
    )


def _factorial_rows(finished: pd.DataFrame, metric: str, factors: Sequence[str]) -> pd.DataFrame:
    cols = [names.FACTOR_PREFIX + f for f in factors]
    return finished.dropna(subset=cols + [metric])


def marginal_means(
    finished: pd.DataFrame, metric: str, levels: Mapping[str, list[str]]
) -> pd.DataFrame:
    """Per factor level: n, mean and std of the metric over the factorial trials at that level.

    Raw means over whatever the other factors did at that level; in a balanced full factorial
    their differences are the main effects below.
    """
    rows = []
    data = _factorial_rows(finished, metric, list(levels))
    for f, lv in levels.items():
        for level in lv:
            x = data.loc[data[names.FACTOR_PREFIX + f] == level, metric].to_numpy(dtype=float)
            rows.append(
                {
                    "factor": f,
                    "level": level,
                    "n": len(x),
                    "mean": float(x.mean()) if len(x) else np.nan,
                    "std": float(x.std(ddof=1)) if len(x) >= 2 else np.nan,
                }
            )
    return pd.DataFrame(rows, columns=["factor", "level", "n", "mean", "std"])


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


def _fit(formula: str, frame: pd.DataFrame) -> RegressionResultsWrapper:
    """The OLS fit of `formula`; statsmodels' warnings on small designs are the notes' job."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return smf.ols(formula, data=frame).fit()


def _varying(frame: pd.DataFrame, col: str) -> bool:
    return frame[col].nunique() > 1


def main_effects(
    finished: pd.DataFrame, metric: str, levels: Mapping[str, list[str]]
) -> tuple[pd.DataFrame, list[str]]:
    """Main effects from the additive model ``metric ~ C(f1) + ... + C(seed)`` (seed as a block).

    One row per non-reference level: the estimated effect of moving the factor from its
    reference (first) level to this one (`DESCRIPTIVE`: no interval, no p). In a balanced full
    factorial the estimate equals the difference of marginal means; in a one-at-a-time design
    it is the change from the base point.
    """
    cols = ["factor", "level", "reference", "estimate", "n"]
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
                    "n": int(fit.nobs),
                }
            )
    return pd.DataFrame(rows, columns=cols), []


def interactions(
    finished: pd.DataFrame, metric: str, levels: Mapping[str, list[str]]
) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """Two-factor interactions where the design crosses the two factors.

    For each pair (a, b) whose level combinations all occur among the finished trials, fits
    ``metric ~ C(a) * C(b) + C(other factors) + C(seed)``. Each interaction term is the
    difference-in-differences against both reference levels (for a 2x2:
    (y11 - y10) - (y01 - y00) over cell means when balanced), an estimate only
    (`DESCRIPTIVE`). Cell means are returned for the heat map.
    """
    cols = ["factor_a", "factor_b", "level_a", "level_b", "estimate", "n"]
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
            # An exact fit: the estimate would be one seed's noise passed off as an effect.
            notes.append(f"{a} x {b}: too few finished trials to estimate an interaction")
            continue
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
                        "n": int(fit.nobs),
                    }
                )
    return pd.DataFrame(rows, columns=cols), pd.DataFrame(cells, columns=cell_cols), notes

"""Every figure of a summary, titled and captioned, in the dashboard's reading order."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from ablation.report import tables
from ablation.report.factorial import DESCRIPTIVE
from ablation.report.figures.cost import cost_axis, cost_figure, has_cost
from ablation.report.figures.curve import curve_figure
from ablation.report.figures.effect import effect_figure
from ablation.report.figures.factorial import factor_figure, interaction_figure
from ablation.report.figures.style import MarkedFigure
from ablation.report.summary import Summary
from ablation.vocabulary import metrics

# The learning curves drawn, in this order.
CURVES = ("val_top1_error", "train_loss")


@dataclass(frozen=True)
class Chart:
    """One figure of the summary with its name (the dashboard's element id and the file stem
    for papers), kind (effect | curve | factor | interaction | cost), title and caption."""

    name: str
    kind: str
    title: str
    caption: str
    figure: MarkedFigure = field(repr=False)


def _estimates(terms: pd.DataFrame, name: Callable[[dict], str]) -> str:
    """Each model term's estimate as ``name: +1.23``, joined by ``; `` (no interval, no p)."""
    return "; ".join(
        f"{name(r)}: {tables.fmt_signed(r['estimate'])}" for r in terms.to_dict("records")
    )


def _effect_chart(summary: Summary) -> Chart:
    m = tables.metric_label(summary.metric)
    better = "right" if summary.mode.improves(1.0) else "left"
    return Chart(
        "forest",
        "effect",
        f"Effect against the baseline ({summary.baseline})",
        f"Δ {m}, paired by seed; one bar per comparison: the interval that decided its "
        "verdict (the legend names it: for equivalent the TOST interval, for better or worse "
        "the efficacy interval, which excludes 0); shaded: ±min_effect when the study declares "
        f"one; an equivalent bar lies inside it. Better is to the {better}. Blue: better, "
        "vermillion: worse, green: equivalent, orange: undecided, grey: no decision.",
        effect_figure(summary),
    )


def _curve_charts(summary: Summary) -> list[Chart]:
    return [
        Chart(
            f"curve-{metric}",
            "curve",
            f"Learning curves: {metrics.axis(metric)[0].lower()}",
            f"Mean over finished seeds, band {tables.PM} one std.",
            curve_figure(summary, metric),
        )
        for metric in CURVES
    ]


def _factor_charts(summary: Summary) -> list[Chart]:
    mm, me = summary.marginal_means, summary.main_effects
    out = []
    for i, factor in enumerate(summary.factors):
        if len(mm) == 0 or (mm["factor"] == factor).sum() < 2:
            continue
        effects = me[me["factor"] == factor] if len(me) else me
        caption = _estimates(effects, lambda r: f"{r['level']} vs {r['reference']}")
        out.append(
            Chart(
                f"effect-{i}",
                "factor",
                f"Main effect: {factor}",
                (caption or "no estimate") + f" (marginal means; {DESCRIPTIVE}).",
                factor_figure(summary, factor),
            )
        )
    return out


def _interaction_charts(summary: Summary) -> list[Chart]:
    m = tables.metric_label(summary.metric)
    cells, inter = summary.interaction_cells, summary.interactions
    pairs = (
        [] if cells is None or cells.empty else cells.groupby(["factor_a", "factor_b"], sort=False)
    )
    out = []
    for i, ((a, b), _) in enumerate(pairs):
        terms = inter[(inter["factor_a"] == a) & (inter["factor_b"] == b)] if len(inter) else inter
        caption = _estimates(terms, lambda r: f"interaction {r['level_a']} × {r['level_b']}")
        out.append(
            Chart(
                f"heatmap-{i}",
                "interaction",
                f"Interaction: {a} × {b}",
                (caption or "interaction not estimable with these trials")
                + f". Cells: mean {m} ({DESCRIPTIVE}).",
                interaction_figure(summary, a, b),
            )
        )
    return out


def _cost_charts(summary: Summary) -> list[Chart]:
    m = tables.metric_label(summary.metric)
    return [
        Chart(
            f"pareto-{cost}",
            "cost",
            f"{m} against {cost_axis(cost)[0]}",
            "Per-variant means (bars: 95% t-CI over seeds); big dots joined by the step line "
            "form the Pareto front.",
            cost_figure(summary, cost),
        )
        for cost in metrics.COSTS
        if has_cost(summary, cost)
    ]


def charts(summary: Summary) -> list[Chart]:
    """Every figure of the summary, in the dashboard's reading order."""
    return [
        _effect_chart(summary),
        *_curve_charts(summary),
        *_factor_charts(summary),
        *_interaction_charts(summary),
        *_cost_charts(summary),
    ]

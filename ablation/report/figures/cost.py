"""The metric against one of the model's costs, per variant, with the Pareto front."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.axes import Axes

from ablation.report import tables
from ablation.report.figures.style import (
    SMALL,
    MarkedFigure,
    empty,
    finite,
    new_figure,
    styled,
    variant_colour,
    variant_index,
)
from ablation.report.summary import Summary
from ablation.report.variants import pareto_front
from ablation.vocabulary import metrics


def has_cost(summary: Summary, cost: str) -> bool:
    """Whether the summary holds the metric and some measured value of ``cost`` to plot."""
    v, col = summary.variants, f"{cost}.mean"
    return col in v and f"{summary.metric}.mean" in v and bool(v[col].notna().any())


def cost_axis(cost: str) -> tuple[str, float]:
    """The cost's axis label and the scale its values are drawn at."""
    return metrics.axis(cost)


@styled
def cost_figure(summary: Summary, cost: str) -> MarkedFigure:
    """The metric against one cost, per variant (bars: the metric's 95% t-CI), Pareto front
    joined by a step line."""
    x_label, scale = cost_axis(cost)
    v, m = summary.variants, summary.metric
    m_label = tables.metric_label(m)
    fig, ax = new_figure(SMALL)
    if not has_cost(summary, cost):
        return empty(fig, ax, "no finished trials with this cost measured")
    xs = v[f"{cost}.mean"].to_numpy(float) * scale
    ys = v[f"{m}.mean"].to_numpy(float)
    front = pareto_front(xs, ys, y_mode=summary.mode)
    ok = np.isfinite(xs) & np.isfinite(ys)
    on_front = sorted((x, y) for x, y, f, o in zip(xs, ys, front, ok, strict=True) if f and o)
    if len(on_front) >= 2:
        fx, fy = zip(*on_front, strict=True)
        (step,) = ax.step(fx, fy, where="post", color="#444444", linewidth=1.2, dashes=(5, 3))
        fig.mark(step, "Pareto front")
    index = variant_index(summary)
    x_mid = np.nanmean(xs[ok]) if ok.any() else 0.0
    labels: list[tuple[Any, Any, str]] = []
    for j, r in enumerate(v.to_dict("records")):
        if not ok[j]:
            continue
        name = r["variant"]
        c = variant_colour(index[name])
        lo, hi = r.get(f"{m}.ci_low", np.nan), r.get(f"{m}.ci_high", np.nan)
        if finite(lo, hi):
            ci = ax.vlines(xs[j], lo, hi, color=c, linewidth=1.8)
            fig.mark(ci, "", name, kind="ci")
        tip = (
            f"{name}: {m_label} {tables.fmt_pm(r[f'{m}.mean'], r[f'{m}.std'])}, "
            f"{x_label} {tables.fmt(xs[j], 3)}" + (" (Pareto front)" if front[j] else "")
        )
        (dot,) = ax.plot(
            [xs[j]],
            [ys[j]],
            "o",
            color=c,
            markersize=8 if front[j] else 6,
            markeredgecolor="#111111" if front[j] else c,
            markeredgewidth=1.2,
        )
        fig.mark(dot, tip, name)
        right = xs[j] <= x_mid
        label = ax.annotate(
            name,
            (xs[j], ys[j]),
            xytext=(7 if right else -7, 6),
            textcoords="offset points",
            ha="left" if right else "right",
            fontsize=7.5,
            color="#222222",
        )
        fig.mark(label, "", name, kind="point-label")
        labels.append((label, dot, name))
    ax.margins(x=0.15, y=0.1)
    ax.set_xlabel(x_label)
    ax.set_ylabel(m_label)
    _labels_or_legend(fig, ax, labels)
    return fig


def _overlap(a: Any, b: Any) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


def _labels_or_legend(fig: MarkedFigure, ax: Axes, labels: list[tuple[Any, Any, str]]) -> None:
    """Keep the point labels when no two overlap (CBAM variants often have close values);
    otherwise drop them for a legend below the plot, which never overlaps."""
    if len(labels) < 2:
        return
    fig.draw_without_rendering()
    boxes = [text.get_window_extent() for text, _, _ in labels]
    if not any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :]):
        return
    for text, _, _ in labels:
        fig.marks.pop(text.get_gid(), None)
        text.remove()
    # As many columns as fit the figure's width: a legend wider than the figure is cut off
    # at both sides (the first markers, the last names).
    width = fig.bbox.width
    for ncols in range(min(4, len(labels)), 0, -1):
        legend = fig.legend(
            [dot for _, dot, _ in labels],
            [name for _, _, name in labels],
            loc="outside lower center",
            ncols=ncols,
            fontsize=7.5,
            frameon=False,
        )
        fig.draw_without_rendering()
        if ncols == 1 or legend.get_window_extent().width <= 0.98 * width:
            return
        legend.remove()

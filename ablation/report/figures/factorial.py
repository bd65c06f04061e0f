"""The factorial design's figures: one factor's main effect, and a factor pair's cell means."""

from __future__ import annotations

import numpy as np
from matplotlib.patches import Rectangle

from ablation.report import tables
from ablation.report.figures.style import (
    SMALL,
    MarkedFigure,
    empty,
    finite,
    new_figure,
    styled,
)
from ablation.report.summary import Summary

# Descriptive marks are drawn in a neutral ink, never in a verdict's colour.
INK = "#3b4048"


@styled
def factor_figure(summary: Summary, factor: str) -> MarkedFigure:
    """Main effect of one factor: the marginal mean per level (descriptive: no interval)."""
    mm = summary.marginal_means
    rows = mm[mm["factor"] == factor].to_dict("records") if len(mm) else []
    fig, ax = new_figure(SMALL)
    if not any(finite(r["mean"]) for r in rows):
        return empty(fig, ax, "no finished factorial trials")
    xs = [i for i, r in enumerate(rows) if finite(r["mean"])]
    ax.plot(xs, [rows[i]["mean"] for i in xs], color=INK, linewidth=1.6)
    for i in xs:
        r = rows[i]
        tip = f"{factor} = {r['level']}: mean {tables.fmt_pm(r['mean'], r['std'])}, n={r['n']}"
        fig.mark(ax.plot([i], [r["mean"]], "o", color=INK, markersize=7)[0], tip)
    ax.set_xticks(range(len(rows)), [str(r["level"]) for r in rows])
    ax.set_xlim(-0.5, len(rows) - 0.5)
    ax.grid(False, axis="x")
    ax.set_xlabel(factor)
    ax.set_ylabel(tables.metric_label(summary.metric))
    return fig


def _blue(t: float) -> tuple[float, float, float]:
    """A single-hue ramp from pale to dark blue (readable for every colour vision)."""
    a, b = np.array((0xF7, 0xFB, 0xFF)), np.array((0x08, 0x30, 0x6B))
    return tuple((a + (b - a) * min(max(t, 0.0), 1.0)) / 255)


@styled
def interaction_figure(summary: Summary, factor_a: str, factor_b: str) -> MarkedFigure:
    """Cell means of a factor pair: darker is better, the value written in each cell."""
    cells = summary.interaction_cells
    group = cells[(cells["factor_a"] == factor_a) & (cells["factor_b"] == factor_b)]
    mm = summary.marginal_means
    values = {(str(r["level_a"]), str(r["level_b"])): r for r in group.to_dict("records")}
    rows = mm.loc[mm["factor"] == factor_a, "level"].astype(str).tolist() or sorted(
        {k[0] for k in values}
    )
    cols = mm.loc[mm["factor"] == factor_b, "level"].astype(str).tolist() or sorted(
        {k[1] for k in values}
    )
    fig, ax = new_figure(SMALL)
    finite_means = [r["mean"] for r in values.values() if finite(r["mean"])]
    if not finite_means:
        return empty(fig, ax, "no finished trials in this factor pair")
    ax.grid(False)
    lo, hi = min(finite_means), max(finite_means)
    best = summary.mode.best(finite_means, key=float)
    for i, a in enumerate(rows):
        for j, b in enumerate(cols):
            r = values.get((a, b))
            if r is None or not finite(r["mean"]):
                ax.add_patch(
                    Rectangle(
                        (j, i),
                        0.97,
                        0.97,
                        facecolor="#f3f3f3",
                        edgecolor="#cccccc",
                        hatch="//",
                        linewidth=0.8,
                    )
                )
                continue
            # Darker is closer to the best cell.
            t = 0.5 if hi == lo else 1 - abs(r["mean"] - best) / (hi - lo)
            cell = ax.add_patch(Rectangle((j, i), 0.97, 0.97, facecolor=_blue(0.1 + 0.8 * t)))
            tip = (
                f"{factor_a} = {a}, {factor_b} = {b}: {tables.fmt_pm(r['mean'], r['std'])} "
                f"(n={int(r['n'])})"
            )
            fig.mark(cell, tip, kind="mark cell")
            ax.text(
                j + 0.485,
                i + 0.485,
                f"{r['mean']:.2f}",
                ha="center",
                va="center",
                fontweight="bold",
                color="#ffffff" if t > 0.55 else "#111111",
            )
    ax.set_xlim(0, len(cols))
    ax.set_ylim(len(rows), 0)  # first level on top
    ax.set_xticks([j + 0.485 for j in range(len(cols))], cols)
    ax.set_yticks([i + 0.485 for i in range(len(rows))], rows)
    ax.tick_params(length=0)
    ax.xaxis.tick_top()
    ax.xaxis.set_label_position("top")
    for side in ("left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel(factor_b)
    ax.set_ylabel(factor_a)
    fig.supxlabel(f"darker = better; range {lo:.2f} – {hi:.2f}", fontsize=8, color="#5f6368")
    return fig

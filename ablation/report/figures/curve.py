"""Learning curves: a metric per epoch, mean over seeds with a band of one std."""

from __future__ import annotations

import numpy as np
from matplotlib.ticker import MaxNLocator

from ablation.report import tables
from ablation.report.figures.style import (
    WIDE,
    MarkedFigure,
    dashes,
    empty,
    new_figure,
    styled,
    variant_colour,
    variant_index,
)
from ablation.report.summary import Summary
from ablation.vocabulary import metrics


@styled
def curve_figure(summary: Summary, metric: str) -> MarkedFigure:
    """Learning curves of one metric: mean over seeds per epoch, band ± one std."""
    label, _ = metrics.axis(metric)
    fig, ax = new_figure(WIDE)
    c = summary.curves[summary.curves["metric"] == metric] if len(summary.curves) else None
    drawn = False
    for variant, i in variant_index(summary).items():
        rows = c[c["variant"] == variant].sort_values("epoch") if c is not None else []
        rows = rows[rows["mean"].notna()] if len(rows) else rows
        if len(rows) == 0:
            continue
        drawn = True
        colour_, dash = variant_colour(i), dashes(i)
        x = rows["epoch"].to_numpy(float)
        mean, std = rows["mean"].to_numpy(float), rows["std"].to_numpy(float)
        banded = np.isfinite(std)
        if banded.sum() >= 2:
            band = ax.fill_between(
                x[banded],
                (mean - std)[banded],
                (mean + std)[banded],
                color=colour_,
                alpha=0.14,
                linewidth=0,
            )
            fig.mark(band, "", variant, kind="band")
        if len(x) >= 2:
            (line,) = ax.plot(x, mean, color=colour_, linewidth=1.8, dashes=dash or (None, None))
            fig.mark(line, variant, variant)
        elif banded.any():  # a single epoch: the band becomes an error bar
            ax.vlines(x, mean - std, mean + std, color=colour_, linewidth=2)
        for e, mu, s, n in zip(x, mean, std, rows["n"], strict=True):
            pm = tables.fmt_pm(mu, s, 3)
            tip = f"{variant}, epoch {int(e)}: {pm} (mean {tables.PM} std, n={n})"
            fig.mark(ax.plot([e], [mu], "o", color=colour_, markersize=3.5)[0], tip, variant)
    if not drawn:
        return empty(fig, ax, "no finished trials with per-epoch history yet")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Epoch")
    ax.set_ylabel(label)
    return fig

"""The summary's figures, drawn with matplotlib: inlined as SVG by the dashboard, written as
PDF and SVG for papers (`write_figures`).

One function per figure, each returning a `MarkedFigure` (a `matplotlib.figure.Figure`, built
with the object API: no pyplot, so no global figure state and no GUI backend; fonts are
matplotlib's own). Its data marks carry a ``gid`` and a tooltip, which `svg_text` turns into
``class="mark"``, ``data-variant`` (the dashboard script's cross-highlighting hook) and a
``<title>`` (the browser's own tooltip, so the numbers show where scripts are blocked).

`style` holds the look (Okabe-Ito colours, matplotlib's settings); `effect`, `curve`,
`factorial` and `cost` one kind of figure each; `catalogue` titles and captions them all;
`output` writes them.
"""

from __future__ import annotations

from ablation.report.figures.catalogue import Chart, charts
from ablation.report.figures.cost import cost_figure
from ablation.report.figures.curve import curve_figure
from ablation.report.figures.effect import effect_figure
from ablation.report.figures.factorial import factor_figure, interaction_figure
from ablation.report.figures.output import svg_text, write_figures
from ablation.report.figures.style import VERDICT_COLOURS, MarkedFigure, colour, verdict_colour

__all__ = [
    "VERDICT_COLOURS",
    "Chart",
    "MarkedFigure",
    "charts",
    "colour",
    "cost_figure",
    "curve_figure",
    "effect_figure",
    "factor_figure",
    "interaction_figure",
    "svg_text",
    "verdict_colour",
    "write_figures",
]

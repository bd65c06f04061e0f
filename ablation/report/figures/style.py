"""How every figure looks: the palette, matplotlib's settings, and the figure that knows its marks.

Colours are Okabe-Ito (colour-blind safe); after eight variants, dashes tell them apart. Figures
are built with the object API (no pyplot: no global figure state, no GUI backend) and drawn under
`STYLE` only, never changing matplotlib's global settings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ablation.report.summary import Summary
from ablation.vocabulary.verdicts import BETTER, EQUIVALENT, UNDECIDED, WORSE

# Okabe & Ito (2008); black first for the baseline, yellow last (weak on white).
OKABE_ITO = ("#000000", "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#F0E442")
# After the eight colours, variants are told apart by dashes (on-off lengths in points).
DASHES: tuple[tuple[float, ...], ...] = ((), (6, 3), (2, 2), (8, 3, 2, 3))
# One colour per verdict (Okabe-Ito), so an equivalent comparison never looks like an open
# one; "none" is every other word (no decision declared, not enough seeds, continue).
VERDICT_COLOURS = {
    BETTER: "#0072B2",
    WORSE: "#D55E00",
    EQUIVALENT: "#009E73",
    UNDECIDED: "#E69F00",
    "none": "#8a8f98",
}
# The +-min_effect band the equivalent bars lie inside.
BAND_COLOUR = "#e3efe9"
GRID = "#e6e6e6"

WIDE = (6.4, 3.4)
SMALL = (4.4, 3.1)

# Drawn and saved under these settings only (never changed globally). Type 42 fonts keep the
# PDF's text editable, which journals ask for; the SVG hash salt makes its ids reproducible.
STYLE = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.labelsize": 9,
    "axes.titlesize": 9,
    "xtick.labelsize": 8,
    "ytick.labelsize": 8,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#555555",
    "axes.axisbelow": True,
    "pdf.fonttype": 42,
    "svg.fonttype": "path",
    "figure.dpi": 100,
}


def verdict_colour(verdict: object) -> str:
    """The colour a comparison is drawn in: its verdict's, grey for any other word."""
    return VERDICT_COLOURS.get(verdict, VERDICT_COLOURS["none"])  # type: ignore[arg-type]


def dashes(i: int) -> tuple[float, ...]:
    """The dash pattern of the i-th variant (solid for the first eight)."""
    return DASHES[(i // len(OKABE_ITO)) % len(DASHES)]


def variant_colour(i: int) -> str:
    """The colour of the i-th variant."""
    return OKABE_ITO[i % len(OKABE_ITO)]


def colour(i: int) -> tuple[str, str]:
    """(colour, SVG dash pattern) of the i-th variant: colours first, then dashes."""
    return variant_colour(i), " ".join(f"{d:g}" for d in dashes(i))


def finite(*xs: object) -> bool:
    """Whether every value is a finite number (None, NaN and non-numbers are not)."""
    return all(
        x is not None and isinstance(x, int | float | np.number) and math.isfinite(float(x))
        for x in xs
    )


def variant_index(summary: Summary) -> dict[str, int]:
    """Each variant's position, which picks its colour on every figure and in the legend."""
    return {v: i for i, v in enumerate(summary.variants["variant"])}


@dataclass(frozen=True)
class Mark:
    """What one drawn mark says on hover: its tooltip, and the variant it belongs to."""

    tip: str
    variant: str | None = None
    kind: str = "mark"  # the element's class in the SVG: "mark" for data marks
    # Extra ``data-<key>`` attributes of the element, for a reader of the page (or a test)
    # to check what a mark stands for without parsing its tooltip.
    data: tuple[tuple[str, str], ...] = ()


class MarkedFigure(Figure):
    """A matplotlib Figure that remembers which artists are data marks (by ``gid``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.marks: dict[str, Mark] = {}

    def mark(
        self,
        artist: Artist,
        tip: str,
        variant: str | None = None,
        kind: str = "mark",
        data: dict[str, object] | None = None,
    ):
        """Tag ``artist`` as a data mark with its tooltip, variant and ``data-*`` attributes;
        returns the artist."""
        gid = f"mark-{len(self.marks)}"
        artist.set_gid(gid)
        attrs = tuple((k, str(v)) for k, v in (data or {}).items())
        self.marks[gid] = Mark(tip, variant, kind, attrs)
        return artist


@contextmanager
def style(extra: dict | None = None) -> Iterator[None]:
    """matplotlib's settings for drawing and saving a figure (plus ``extra``), for this block."""
    with mpl.rc_context({**STYLE, **(extra or {})}):
        yield


def styled(draw: Callable[..., MarkedFigure]) -> Callable[..., MarkedFigure]:
    """A figure function drawn under `style`."""

    def wrapper(*args: Any, **kwargs: Any) -> MarkedFigure:
        with style():
            return draw(*args, **kwargs)

    wrapper.__name__, wrapper.__doc__ = draw.__name__, draw.__doc__
    return wrapper


def new_figure(size: tuple[float, float]) -> tuple[MarkedFigure, Axes]:
    """A figure of ``size`` inches with one gridded axes."""
    fig = MarkedFigure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    ax.grid(True, color=GRID, linewidth=0.8)
    return fig, ax


def empty(fig: MarkedFigure, ax: Axes, message: str) -> MarkedFigure:
    """The figure with no data: ``message`` where the plot would be."""
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", color="#5f6368", transform=ax.transAxes)
    return fig

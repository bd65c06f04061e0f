"""The forest plot: each variant's paired difference to the baseline, and its verdict's interval."""

from __future__ import annotations

from collections.abc import Mapping

from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from ablation.report import tables
from ablation.report.figures.style import (
    BAND_COLOUR,
    WIDE,
    MarkedFigure,
    empty,
    finite,
    new_figure,
    styled,
    verdict_colour,
)
from ablation.report.summary import Summary

# The bar of a comparison's interval, thick enough to read its colour at a glance.
BAR_WIDTH = 4.5


def _bar_data(r: Mapping[str, object]) -> dict[str, object]:
    """What a bar stands for, as the SVG element's ``data-*`` attributes."""
    return {
        "verdict": r["verdict"],
        "ci-low": repr(float(r["ci_low"])),
        "ci-high": repr(float(r["ci_high"])),
        "ci-level": repr(float(r["ci_level"])) if finite(r["ci_level"]) else "",
        "ci-method": tables.plain_text(r.get("ci_method")),
    }


def _legend_entries(rows: list[dict], margin: float | None) -> list[tuple[object, str]]:
    """Per verdict shown: its colour and which interval its bars are (with the level where
    every bar of it has the same one); then the band."""
    entries: list[tuple[object, str]] = []
    for verdict in dict.fromkeys(r["verdict"] for r in rows if finite(r["ci_low"], r["ci_high"])):
        group = [r for r in rows if r["verdict"] == verdict]
        methods = {tables.plain_text(r.get("ci_method")) for r in group}
        levels = {round(float(r["ci_level"]), 4) for r in group if finite(r["ci_level"])}
        method = methods.pop() if len(methods) == 1 else "interval of its verdict"
        level = levels.pop() if len(levels) == 1 else None
        handle = Line2D([], [], color=verdict_colour(verdict), linewidth=BAR_WIDTH)
        entries.append((handle, f"{verdict}: {tables.ci_label(level, method)}"))
    if margin:
        entries.append((Patch(color=BAND_COLOUR), f"±min_effect {margin:g} (equivalence band)"))
    return entries


@styled
def effect_figure(summary: Summary) -> MarkedFigure:
    """Forest plot: each variant's paired difference to the baseline, with one bar per
    comparison: the interval that decided its verdict (`ci_low`/`ci_high`, named by
    `ci_method`), in its verdict's colour; shaded band: +-min_effect when the study declares a
    decision. An equivalent comparison's bar (the TOST interval) lies inside the band.
    """
    rows = summary.comparisons.to_dict("records") if len(summary.comparisons) else []
    m = tables.metric_label(summary.metric)
    margin = summary.decision.min_effect if summary.decision is not None else None
    legend = _legend_entries(rows, margin)
    height = 0.9 + 0.32 * max(len(rows), 1) + 0.2 * ((len(legend) + 1) // 2)
    fig, ax = new_figure((WIDE[0], height))
    ok = [r for r in rows if finite(r["mean_diff"])]
    if not ok:
        return empty(fig, ax, "no comparison with the baseline yet")
    core = [r["mean_diff"] for r in ok] + [0.0]
    if margin:
        core += [-margin, margin]
    span = max(core) - min(core) or 1.0
    # The intervals may stretch the axis to 2x the core span; beyond that they are clipped
    # with an arrowhead, so one 2-seed variant cannot squash every other row.
    lo_cap, hi_cap = min(core) - span, max(core) + span
    wide = [
        min(max(v, lo_cap), hi_cap) for r in ok for v in (r["ci_low"], r["ci_high"]) if finite(v)
    ]
    x0, x1 = min(core + wide), max(core + wide)
    pad = (x1 - x0) * 0.06 or 0.5
    x0, x1 = x0 - pad, x1 + pad
    if margin:
        band = ax.axvspan(-margin, margin, color=BAND_COLOUR, zorder=0)
        data = {"low": repr(-float(margin)), "high": repr(float(margin))}
        fig.mark(band, f"±min_effect {margin:g}: equivalence band", kind="band", data=data)
    zero = ax.axvline(0.0, color="#333333", linestyle=(0, (4, 3)), linewidth=1)
    fig.mark(zero, "no difference", kind="zero")
    for i, r in enumerate(rows):
        y = len(rows) - 1 - i
        c, v, tip = verdict_colour(r["verdict"]), r["variant"], tables.verdict_line(summary, r)
        if finite(r["ci_low"], r["ci_high"]):
            a, b = max(r["ci_low"], x0), min(r["ci_high"], x1)
            bar = ax.hlines(y, a, b, color=c, linewidth=BAR_WIDTH)
            fig.mark(bar, tip, v, kind="mark interval", data=_bar_data(r))
            for end, clipped, arrow in (
                (a, r["ci_low"] < x0, "<"),
                (b, r["ci_high"] > x1, ">"),
            ):
                if clipped:
                    ax.plot([end], [y], marker=arrow, color=c, markersize=5, clip_on=False)
        if finite(r["mean_diff"]):
            fig.mark(ax.plot([r["mean_diff"]], [y], "s", color=c, markersize=6)[0], tip, v)
    ax.set_xlim(x0, x1)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_yticks(range(len(rows)), [r["variant"] for r in reversed(rows)])
    ax.tick_params(axis="y", length=0)
    ax.grid(False, axis="y")
    ax.set_xlabel(f"Δ {m} (variant − baseline)")
    if legend:
        handles, labels = zip(*legend, strict=True)
        fig.legend(
            handles,
            labels,
            loc="outside lower center",
            ncols=2 if len(legend) > 2 else len(legend),
            frameon=False,
            fontsize=7.5,
            handlelength=1.6,
        )
    return fig

"""The summary's figures, drawn with matplotlib: inlined as SVG by the dashboard, written as
PDF and SVG for papers (`write_figures`).

One function per figure, each returning a `MarkedFigure` (a `matplotlib.figure.Figure`, built
with the object API: no pyplot, so no global figure state and no GUI backend; fonts are
matplotlib's own). Its data marks carry a ``gid`` and a tooltip, which `svg_text` turns into
``class="mark"``, ``data-variant`` (the dashboard script's cross-highlighting hook) and a
``<title>`` (the browser's own tooltip, so the numbers show where scripts are blocked).
Colours are Okabe-Ito (colour-blind safe); the interaction heat map uses one blue ramp.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib as mpl
import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from ablation.report import tables
from ablation.report.stats import Summary, pareto_front
from ablation.stats.intervals import BOOTSTRAP_MIN_N

# Okabe & Ito (2008); black first for the baseline, yellow last (weak on white).
OKABE_ITO = ("#000000", "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#F0E442")
# After the eight colours, variants are told apart by dashes (on-off lengths in points).
DASHES: tuple[tuple[float, ...], ...] = ((), (6, 3), (2, 2), (8, 3, 2, 3))
VERDICT_COLOURS = {"better": "#0072B2", "worse": "#D55E00", "none": "#8a8f98"}
GRID = "#e6e6e6"

CURVES = (("val_top1_error", "Val top-1 error (%)"), ("train_loss", "Train loss"))
COSTS = (
    ("params", "Params (M)", 1e-6),
    ("gflops", "GFLOPs", 1.0),
    ("latency_ms", "Latency (ms)", 1.0),
)
FORMATS = ("pdf", "svg")

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


def colour(i: int) -> tuple[str, str]:
    """(colour, SVG dash pattern) of the i-th variant: colours first, then dashes."""
    dash = DASHES[(i // len(OKABE_ITO)) % len(DASHES)]
    return OKABE_ITO[i % len(OKABE_ITO)], " ".join(f"{d:g}" for d in dash)


def _dashes(i: int) -> tuple[float, ...]:
    return DASHES[(i // len(OKABE_ITO)) % len(DASHES)]


def _finite(*xs: object) -> bool:
    return all(
        x is not None and isinstance(x, int | float | np.number) and math.isfinite(float(x))
        for x in xs
    )


@dataclass(frozen=True)
class Mark:
    """What one drawn mark says on hover: its tooltip, and the variant it belongs to."""

    tip: str
    variant: str | None = None
    kind: str = "mark"  # the element's class in the SVG: "mark" for data marks


class MarkedFigure(Figure):
    """A matplotlib Figure that remembers which artists are data marks (by ``gid``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.marks: dict[str, Mark] = {}

    def mark(self, artist: Artist, tip: str, variant: str | None = None, kind: str = "mark"):
        gid = f"mark-{len(self.marks)}"
        artist.set_gid(gid)
        self.marks[gid] = Mark(tip, variant, kind)
        return artist


@contextmanager
def _style(extra: dict | None = None) -> Iterator[None]:
    with mpl.rc_context({**STYLE, **(extra or {})}):
        yield


def _styled(draw: Callable[..., MarkedFigure]) -> Callable[..., MarkedFigure]:
    def wrapper(*args: Any, **kwargs: Any) -> MarkedFigure:
        with _style():
            return draw(*args, **kwargs)

    wrapper.__name__, wrapper.__doc__ = draw.__name__, draw.__doc__
    return wrapper


def _figure(size: tuple[float, float]) -> tuple[MarkedFigure, Axes]:
    fig = MarkedFigure(figsize=size, layout="constrained")
    ax = fig.add_subplot()
    ax.grid(True, color=GRID, linewidth=0.8)
    return fig, ax


def _empty(fig: MarkedFigure, ax: Axes, message: str) -> MarkedFigure:
    ax.set_axis_off()
    ax.text(0.5, 0.5, message, ha="center", va="center", color="#5f6368", transform=ax.transAxes)
    return fig


def _index(summary: Summary) -> dict[str, int]:
    return {v: i for i, v in enumerate(summary.variants["variant"])}


# --- the figures ------------------------------------------------------------------------------


@_styled
def effect_figure(summary: Summary) -> MarkedFigure:
    """Forest plot: each variant's paired difference to the baseline with its intervals.

    Thick bar: the headline interval (`ci_low`/`ci_high`, the one the verdict agrees with);
    thin line: the BCa bootstrap where there are pairs enough for it; shaded band: +-min_effect
    when the study declares a decision.
    """
    rows = summary.comparisons.to_dict("records") if len(summary.comparisons) else []
    m = tables.metric_label(summary.metric)
    fig, ax = _figure((WIDE[0], 0.9 + 0.32 * max(len(rows), 1)))
    ok = [r for r in rows if _finite(r["mean_diff"])]
    if not ok:
        return _empty(fig, ax, "no comparison with the baseline yet")
    core = [v for r in ok for v in (r["mean_diff"], r["boot_ci_low"], r["boot_ci_high"])
            if _finite(v)]  # fmt: skip
    core.append(0.0)
    margin = summary.decision.min_effect if summary.decision is not None else None
    if margin:
        core += [-margin, margin]
    span = max(core) - min(core) or 1.0
    # The headline intervals may stretch the axis to 2x the core span; beyond that they are
    # clipped with an arrowhead, so one 2-seed variant cannot squash every other row.
    lo_cap, hi_cap = min(core) - span, max(core) + span
    wide = [
        min(max(v, lo_cap), hi_cap) for r in ok for v in (r["ci_low"], r["ci_high"]) if _finite(v)
    ]
    x0, x1 = min(core + wide), max(core + wide)
    pad = (x1 - x0) * 0.06 or 0.5
    x0, x1 = x0 - pad, x1 + pad
    if margin:
        ax.axvspan(-margin, margin, color="#e8f0e8", zorder=0)
    ax.axvline(0.0, color="#333333", linestyle=(0, (4, 3)), linewidth=1)
    for i, r in enumerate(rows):
        y = len(rows) - 1 - i
        klass = r["verdict"] if r["verdict"] in ("better", "worse") else "none"
        c, v = VERDICT_COLOURS[klass], r["variant"]
        level = tables.ci_label(r["ci_level"])
        boot = ""
        if _finite(r["boot_ci_low"], r["boot_ci_high"]):
            boot = f", BCa bootstrap 95% CI {tables.fmt_ci(r['boot_ci_low'], r['boot_ci_high'])}"
        tip = (
            f"{v} − {r['baseline']}: {tables.fmt_signed(r['mean_diff'])}, "
            f"{level} {tables.fmt_ci(r['ci_low'], r['ci_high'])}{boot}, "
            f"p_holm {tables.fmt_p(r['p_holm'])}, n={r['n_pairs']}: {r['verdict']}"
        )
        if _finite(r["ci_low"], r["ci_high"]):
            a, b = max(r["ci_low"], x0), min(r["ci_high"], x1)
            fig.mark(ax.hlines(y, a, b, color=c, linewidth=4.5), tip, v)
            for end, clipped, arrow in (
                (a, r["ci_low"] < x0, "<"),
                (b, r["ci_high"] > x1, ">"),
            ):
                if clipped:
                    ax.plot([end], [y], marker=arrow, color=c, markersize=5, clip_on=False)
        if _finite(r["boot_ci_low"], r["boot_ci_high"]):
            lo, hi = max(r["boot_ci_low"], x0), min(r["boot_ci_high"], x1)
            fig.mark(ax.hlines(y + 0.18, lo, hi, color=c, linewidth=1.2), tip, v)
        if _finite(r["mean_diff"]):
            fig.mark(ax.plot([r["mean_diff"]], [y], "s", color=c, markersize=6)[0], tip, v)
    ax.set_xlim(x0, x1)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_yticks(range(len(rows)), [r["variant"] for r in reversed(rows)])
    ax.tick_params(axis="y", length=0)
    ax.grid(False, axis="y")
    ax.set_xlabel(f"Δ {m} (variant − baseline)")
    return fig


@_styled
def curve_figure(summary: Summary, metric: str) -> MarkedFigure:
    """Learning curves of one metric: mean over seeds per epoch, band ± one std."""
    label = dict(CURVES).get(metric, tables.metric_label(metric))
    fig, ax = _figure(WIDE)
    c = summary.curves[summary.curves["metric"] == metric] if len(summary.curves) else None
    drawn = False
    for variant, i in _index(summary).items():
        rows = c[c["variant"] == variant].sort_values("epoch") if c is not None else []
        rows = rows[rows["mean"].notna()] if len(rows) else rows
        if len(rows) == 0:
            continue
        drawn = True
        colour_, dashes = OKABE_ITO[i % len(OKABE_ITO)], _dashes(i)
        x = rows["epoch"].to_numpy(float)
        mean, std = rows["mean"].to_numpy(float), rows["std"].to_numpy(float)
        banded = np.isfinite(std)
        if banded.sum() >= 2:
            band = ax.fill_between(
                x[banded], (mean - std)[banded], (mean + std)[banded], color=colour_, alpha=0.14,
                linewidth=0,
            )  # fmt: skip
            fig.mark(band, "", variant, kind="band")
        if len(x) >= 2:
            (line,) = ax.plot(x, mean, color=colour_, linewidth=1.8, dashes=dashes or (None, None))
            fig.mark(line, variant, variant)
        elif banded.any():  # a single epoch: the band becomes an error bar
            ax.vlines(x, mean - std, mean + std, color=colour_, linewidth=2)
        for e, mu, s, n in zip(x, mean, std, rows["n"], strict=True):
            pm = tables.fmt_pm(mu, s, 3)
            tip = f"{variant}, epoch {int(e)}: {pm} (mean {tables.PM} std, n={n})"
            fig.mark(ax.plot([e], [mu], "o", color=colour_, markersize=3.5)[0], tip, variant)
    if not drawn:
        return _empty(fig, ax, "no finished trials with per-epoch history yet")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("Epoch")
    ax.set_ylabel(label)
    return fig


@_styled
def factor_figure(summary: Summary, factor: str) -> MarkedFigure:
    """Main effect of one factor: marginal mean per level with its 95% t-CI."""
    mm = summary.marginal_means
    rows = mm[mm["factor"] == factor].to_dict("records") if len(mm) else []
    fig, ax = _figure(SMALL)
    if not any(_finite(r["mean"]) for r in rows):
        return _empty(fig, ax, "no finished factorial trials")
    blue = VERDICT_COLOURS["better"]
    xs = [i for i, r in enumerate(rows) if _finite(r["mean"])]
    ax.plot(xs, [rows[i]["mean"] for i in xs], color=blue, linewidth=1.6)
    for i in xs:
        r = rows[i]
        tip = (
            f"{factor} = {r['level']}: {tables.fmt_pm(r['mean'], r['std'])}, "
            f"95% CI {tables.fmt_ci(r['ci_low'], r['ci_high'])}, n={r['n']}"
        )
        if _finite(r["ci_low"], r["ci_high"]):
            fig.mark(ax.vlines(i, r["ci_low"], r["ci_high"], color=blue, linewidth=2), tip)
        fig.mark(ax.plot([i], [r["mean"]], "o", color=blue, markersize=7)[0], tip)
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


@_styled
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
    fig, ax = _figure(SMALL)
    finite = [r["mean"] for r in values.values() if _finite(r["mean"])]
    if not finite:
        return _empty(fig, ax, "no finished trials in this factor pair")
    ax.grid(False)
    lo, hi = min(finite), max(finite)
    for i, a in enumerate(rows):
        for j, b in enumerate(cols):
            r = values.get((a, b))
            if r is None or not _finite(r["mean"]):
                ax.add_patch(
                    Rectangle((j, i), 0.97, 0.97, facecolor="#f3f3f3", edgecolor="#cccccc",
                              hatch="//", linewidth=0.8)
                )  # fmt: skip
                continue
            t = 0.5 if hi == lo else (r["mean"] - lo) / (hi - lo)
            t = 1 - t if summary.mode == "min" else t
            cell = ax.add_patch(Rectangle((j, i), 0.97, 0.97, facecolor=_blue(0.1 + 0.8 * t)))
            tip = (
                f"{factor_a} = {a}, {factor_b} = {b}: {tables.fmt_pm(r['mean'], r['std'])} "
                f"(n={int(r['n'])})"
            )
            fig.mark(cell, tip, kind="mark cell")
            ax.text(
                j + 0.485, i + 0.485, f"{r['mean']:.2f}", ha="center", va="center",
                fontweight="bold", color="#ffffff" if t > 0.55 else "#111111",
            )  # fmt: skip
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


@_styled
def cost_figure(summary: Summary, cost: str) -> MarkedFigure:
    """The metric against one cost, per variant (bars: the metric's 95% t-CI), Pareto front
    joined by a step line."""
    x_label, scale = {c: (lab, s) for c, lab, s in COSTS}.get(cost, (cost, 1.0))
    v, m = summary.variants, summary.metric
    m_label = tables.metric_label(m)
    fig, ax = _figure(SMALL)
    col = f"{cost}.mean"
    if col not in v or f"{m}.mean" not in v or not v[col].notna().any():
        return _empty(fig, ax, "no finished trials with this cost measured")
    xs = v[col].to_numpy(float) * scale
    ys = v[f"{m}.mean"].to_numpy(float)
    front = pareto_front(xs, ys, y_mode=summary.mode)
    ok = np.isfinite(xs) & np.isfinite(ys)
    on_front = sorted((x, y) for x, y, f, o in zip(xs, ys, front, ok, strict=True) if f and o)
    if len(on_front) >= 2:
        fx, fy = zip(*on_front, strict=True)
        (step,) = ax.step(fx, fy, where="post", color="#444444", linewidth=1.2, dashes=(5, 3))
        fig.mark(step, "Pareto front")
    index = _index(summary)
    x_mid = np.nanmean(xs[ok]) if ok.any() else 0.0
    labels: list[tuple[Any, Any, str]] = []
    for j, r in enumerate(v.to_dict("records")):
        if not ok[j]:
            continue
        name = r["variant"]
        c = OKABE_ITO[index[name] % len(OKABE_ITO)]
        lo, hi = r.get(f"{m}.ci_low", np.nan), r.get(f"{m}.ci_high", np.nan)
        if _finite(lo, hi):
            ci = ax.vlines(xs[j], lo, hi, color=c, linewidth=1.8)
            fig.mark(ci, "", name, kind="ci")
        tip = (
            f"{name}: {m_label} {tables.fmt_pm(r[f'{m}.mean'], r[f'{m}.std'])}, "
            f"{x_label} {tables.fmt(xs[j], 3)}" + (" (Pareto front)" if front[j] else "")
        )
        (dot,) = ax.plot(
            [xs[j]], [ys[j]], "o", color=c, markersize=8 if front[j] else 6,
            markeredgecolor="#111111" if front[j] else c, markeredgewidth=1.2,
        )  # fmt: skip
        fig.mark(dot, tip, name)
        right = xs[j] <= x_mid
        label = ax.annotate(
            name, (xs[j], ys[j]), xytext=(7 if right else -7, 6), textcoords="offset points",
            ha="left" if right else "right", fontsize=7.5, color="#222222",
        )  # fmt: skip
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
            [dot for _, dot, _ in labels], [name for _, _, name in labels],
            loc="outside lower center", ncols=ncols, fontsize=7.5, frameon=False,
        )  # fmt: skip
        fig.draw_without_rendering()
        if ncols == 1 or legend.get_window_extent().width <= 0.98 * width:
            return
        legend.remove()


# --- all of them ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chart:
    """One figure of the summary with its name (the dashboard's element id and the file stem
    for papers), kind (effect | curve | factor | interaction | cost), title and caption."""

    name: str
    kind: str
    title: str
    caption: str
    figure: MarkedFigure = field(repr=False)


def charts(summary: Summary) -> list[Chart]:
    """Every figure of the summary, in the dashboard's reading order."""
    m = tables.metric_label(summary.metric)
    better = "left" if summary.mode == "min" else "right"
    out = [
        Chart(
            "forest",
            "effect",
            f"Effect against the baseline ({summary.baseline})",
            f"Δ {m}, paired by seed; thick bar: the paired t-interval at the level Holm's "
            "correction tested it at (it excludes 0 exactly when the verdict is better or "
            f"worse); thin line above it: BCa bootstrap 95% CI, from {BOOTSTRAP_MIN_N} pairs; "
            "shaded: "
            f"±min_effect when the study declares one. Better is to the {better}. Blue: "
            "better, vermillion: worse, grey: neither.",
            effect_figure(summary),
        )
    ]
    for metric, label in CURVES:
        out.append(
            Chart(
                f"curve-{metric}",
                "curve",
                f"Learning curves: {label.lower()}",
                f"Mean over finished seeds, band {tables.PM} one std.",
                curve_figure(summary, metric),
            )
        )
    mm, me = summary.marginal_means, summary.main_effects
    for i, factor in enumerate(summary.factors):
        if len(mm) == 0 or (mm["factor"] == factor).sum() < 2:
            continue
        effects = me[me["factor"] == factor] if len(me) else me
        caption = "; ".join(
            f"{r['level']} vs {r['reference']}: {tables.fmt_signed(r['estimate'])} "
            f"{tables.fmt_ci(r['ci_low'], r['ci_high'])}, p {tables.fmt_p(r['p'])}"
            for r in effects.to_dict("records")
        )
        out.append(
            Chart(
                f"effect-{i}",
                "factor",
                f"Main effect: {factor}",
                (caption or "no estimate") + " (marginal means, 95% t-CI).",
                factor_figure(summary, factor),
            )
        )
    cells, inter = summary.interaction_cells, summary.interactions
    pairs = (
        [] if cells is None or cells.empty else cells.groupby(["factor_a", "factor_b"], sort=False)
    )
    for i, ((a, b), _) in enumerate(pairs):
        terms = inter[(inter["factor_a"] == a) & (inter["factor_b"] == b)] if len(inter) else inter
        caption = "; ".join(
            f"interaction {r['level_a']} × {r['level_b']}: {tables.fmt_signed(r['estimate'])} "
            f"{tables.fmt_ci(r['ci_low'], r['ci_high'])}, p {tables.fmt_p(r['p'])}"
            for r in terms.to_dict("records")
        )
        out.append(
            Chart(
                f"heatmap-{i}",
                "interaction",
                f"Interaction: {a} × {b}",
                (caption or "interaction not estimable with these trials") + f". Cells: mean {m}.",
                interaction_figure(summary, a, b),
            )
        )
    v = summary.variants
    for cost, x_label, _ in COSTS:
        col = f"{cost}.mean"
        if col not in v or f"{summary.metric}.mean" not in v or not v[col].notna().any():
            continue
        out.append(
            Chart(
                f"pareto-{cost}",
                "cost",
                f"{m} against {x_label}",
                "Per-variant means (bars: 95% t-CI over seeds); big dots joined by the step line "
                "form the Pareto front.",
                cost_figure(summary, cost),
            )
        )
    return out


# --- output -----------------------------------------------------------------------------------


def _inline_svg(fig: Figure, salt: str, fonttype: str) -> str:
    buf = io.StringIO()
    with _style({"svg.fonttype": fonttype, "svg.hashsalt": salt}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    return buf.getvalue()


def svg_text(fig: Figure, name: str | None = None, label: str = "") -> str:
    """The figure as one ``<svg>`` element to inline into HTML.

    No XML prolog or DOCTYPE; every id prefixed with ``name`` (default: the figure's label), so
    several figures on one page never clash; text kept as text (the page's font, selectable);
    each mark of a `MarkedFigure` gets its class, ``data-variant`` and ``<title>``.
    """
    prefix = re.sub(r"[^A-Za-z0-9_-]+", "-", name or fig.get_label() or "figure")
    text = _inline_svg(fig, prefix, "none")
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>\s*", "", text, flags=re.S)
    # matplotlib's one style rule is for "*": scoped to the chart, it cannot reach the page.
    text = text.replace("*{stroke-linejoin", "svg.chart *{stroke-linejoin", 1)
    ids = set(re.findall(r'\bid="([^"]+)"', text))
    text = re.sub(r'\bid="([^"]+)"', lambda mt: f'id="{prefix}-{mt.group(1)}"', text)
    text = re.sub(
        r"(url\(#|href=\"#)([^\")]+)",
        lambda mt: mt.group(1) + (f"{prefix}-{mt.group(2)}" if mt.group(2) in ids else mt.group(2)),
        text,
    )
    for gid, mark in getattr(fig, "marks", {}).items():
        attrs = f' class="{mark.kind}"'
        if mark.variant is not None:
            attrs += f' data-variant="{html.escape(mark.variant)}"'
        title = f"<title>{html.escape(mark.tip)}</title>" if mark.tip else ""
        text = text.replace(f'<g id="{prefix}-{gid}">', f'<g id="{prefix}-{gid}"{attrs}>{title}', 1)
    # The page sizes the chart (CSS: width 100%); the viewBox keeps its proportions.
    root = re.match(r"<svg[^>]*>", text).group(0)
    new_root = re.sub(r'\s(width|height)="[^"]*"', "", root).replace(
        "<svg", f'<svg class="chart" role="img" aria-label="{html.escape(label or prefix)}"', 1
    )
    return new_root + text[len(root) :].rstrip() + "\n"


def write_figures(summary: Summary, runs: Any, out_dir: str | Path) -> list[Path]:
    """``<name>.pdf`` and ``<name>.svg`` of every figure (`charts`) into ``out_dir``.

    The files carry the study and, where ``runs`` (a `StudyRuns`) is given, the MLflow parent
    run id in their metadata, and no date, so the same summary writes the same files.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    parent = getattr(runs, "parent", None)
    run_id = parent.run_id if parent else None
    subject = f"MLflow run {run_id}" if run_id else summary.study
    paths = []
    for chart in charts(summary):
        title = f"{summary.study}: {chart.title}"
        pdf = out / f"{chart.name}.pdf"
        with _style():
            chart.figure.savefig(
                pdf,
                format="pdf",
                metadata={"Title": title, "Subject": subject, "CreationDate": None},
            )
        svg = out / f"{chart.name}.svg"
        with _style({"svg.hashsalt": chart.name}):
            chart.figure.savefig(svg, format="svg", metadata={"Title": title, "Date": None})
        paths += [pdf, svg]
    return paths

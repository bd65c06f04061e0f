"""Small server-side SVG charts for the dashboard: no plotting library, no JavaScript needed.

Each function takes plain numbers and returns one ``<svg>`` string whose data marks carry
``class="mark"``, a ``data-variant`` (for cross-highlighting by the page's script) and a
``<title>`` (the browser's own tooltip, so the numbers show even where scripts are blocked).
Colours are Okabe-Ito (colour-blind safe); the heat map uses a single-hue blue ramp.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

# Okabe & Ito (2008); black first for the baseline, yellow last (weak on white).
OKABE_ITO = ("#000000", "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#56B4E9", "#E69F00", "#F0E442")
DASHES = ("", "6 3", "2 2", "8 3 2 3")

W, H = 640, 360
MARGIN = {"left": 64, "right": 16, "top": 16, "bottom": 48}


def colour(i: int) -> tuple[str, str]:
    """(stroke colour, dash pattern) of the i-th variant: colours first, then dashes."""
    return OKABE_ITO[i % len(OKABE_ITO)], DASHES[(i // len(OKABE_ITO)) % len(DASHES)]


def _finite(*xs: float | None) -> bool:
    return all(x is not None and isinstance(x, int | float) and math.isfinite(x) for x in xs)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round tick values covering [lo, hi]."""
    if not _finite(lo, hi):
        return []
    if hi == lo:
        return [lo]
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step - 1e-9) * step
    ticks, t = [], start
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    return ticks


def tick_label(x: float) -> str:
    if x == 0:
        return "0"
    if abs(x) >= 1000 or abs(x) < 0.01:
        return f"{x:.3g}"
    return f"{x:.4g}"


@dataclass
class Scale:
    d0: float
    d1: float
    r0: float
    r1: float

    def __call__(self, x: float) -> float:
        if self.d1 == self.d0:
            return (self.r0 + self.r1) / 2
        return self.r0 + (x - self.d0) / (self.d1 - self.d0) * (self.r1 - self.r0)


def padded(
    values: Sequence[float], pad: float = 0.06, include: Sequence[float] = ()
) -> tuple[float, float]:
    xs = [v for v in list(values) + list(include) if _finite(v)]
    if not xs:
        return (0.0, 1.0)
    lo, hi = min(xs), max(xs)
    span = hi - lo or abs(hi) * 0.1 or 1.0
    return lo - span * pad, hi + span * pad


def _svg_open(label: str, width: int = W, height: int = H, kind: str = "") -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(label)}" class="chart {kind}">'
    )


def _axes(
    x: Scale,
    y: Scale,
    x_ticks,
    y_ticks,
    x_label: str,
    y_label: str,
    *,
    x_fmt=tick_label,
    height: int = H,
    width: int = W,
) -> list[str]:
    left, bottom = MARGIN["left"], height - MARGIN["bottom"]
    out = ['<g class="axes">']
    for t in y_ticks:
        py = y(t)
        out.append(
            f'<line class="grid" x1="{left}" x2="{width - MARGIN["right"]}" y1="{py:.1f}" '
            f'y2="{py:.1f}"/><text class="tick" x="{left - 6}" y="{py:.1f}" '
            f'text-anchor="end" dominant-baseline="middle">{tick_label(t)}</text>'
        )
    for t in x_ticks:
        px = x(t)
        out.append(
            f'<line class="tickmark" x1="{px:.1f}" x2="{px:.1f}" y1="{bottom}" y2="{bottom + 4}"/>'
            f'<text class="tick" x="{px:.1f}" y="{bottom + 17}" text-anchor="middle">'
            f"{escape(x_fmt(t))}</text>"
        )
    out.append(
        f'<line class="axis" x1="{left}" x2="{width - MARGIN["right"]}" y1="{bottom}" '
        f'y2="{bottom}"/>'
        f'<line class="axis" x1="{left}" x2="{left}" y1="{MARGIN["top"]}" y2="{bottom}"/>'
        f'<text class="axis-label" x="{(left + width - MARGIN["right"]) / 2}" y="{height - 8}" '
        f'text-anchor="middle">{escape(x_label)}</text>'
        f'<text class="axis-label" transform="translate(14,{(MARGIN["top"] + bottom) / 2}) '
        f'rotate(-90)" text-anchor="middle">{escape(y_label)}</text></g>'
    )
    return out


def _empty(label: str, message: str) -> str:
    return (
        _svg_open(label)
        + f'<text class="empty" x="{W / 2}" y="{H / 2}" text-anchor="middle">'
        + f"{escape(message)}</text>"
        + "</svg>"
    )


# --- line chart with bands --------------------------------------------------------------------


@dataclass
class Series:
    name: str
    xs: list[float]
    mean: list[float]
    low: list[float]  # band bottom (NaN: no band at that x)
    high: list[float]
    index: int  # colour index
    tips: list[str]


def line_chart(series: Sequence[Series], *, x_label: str, y_label: str, label: str) -> str:
    """Mean lines with a shaded band per series (e.g. ± one std over seeds)."""
    pts = [(x, m) for s in series for x, m in zip(s.xs, s.mean, strict=True) if _finite(x, m)]
    if not pts:
        return _empty(label, "no finished trials with per-epoch history yet")
    band = [v for s in series for v in s.low + s.high if _finite(v)]
    xs = [p[0] for p in pts]
    y0, y1 = padded([p[1] for p in pts] + band)
    x = Scale(min(xs) - 0.3, max(xs) + 0.3, MARGIN["left"], W - MARGIN["right"])
    y = Scale(y0, y1, H - MARGIN["bottom"], MARGIN["top"])
    x_ticks = [t for t in nice_ticks(min(xs), max(xs), 8) if float(t).is_integer()] or xs[:1]
    out = [_svg_open(label), *_axes(x, y, x_ticks, nice_ticks(y0, y1), x_label, y_label)]
    for s in series:
        stroke, dash = colour(s.index)
        v = escape(s.name)
        ok = [i for i, (a, m) in enumerate(zip(s.xs, s.mean, strict=True)) if _finite(a, m)]
        banded = [i for i in ok if _finite(s.low[i], s.high[i])]
        out.append(f'<g class="series" data-variant="{v}">')
        if len(banded) >= 2:
            upper = [f"{x(s.xs[i]):.1f},{y(s.high[i]):.1f}" for i in banded]
            lower = [f"{x(s.xs[i]):.1f},{y(s.low[i]):.1f}" for i in reversed(banded)]
            out.append(
                f'<polygon class="band" points="{" ".join(upper + lower)}" fill="{stroke}"/>'
            )
        path = " ".join(f"{x(s.xs[i]):.1f},{y(s.mean[i]):.1f}" for i in ok)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        if len(ok) >= 2:
            out.append(
                f'<polyline class="mark line" points="{path}" stroke="{stroke}"{dash_attr}>'
                f"<title>{v}</title></polyline>"
            )
        if len(ok) < 2:  # a single epoch: the band becomes an error bar
            for i in banded:
                out.append(
                    f'<line class="ci" x1="{x(s.xs[i]):.1f}" x2="{x(s.xs[i]):.1f}" '
                    f'y1="{y(s.low[i]):.1f}" y2="{y(s.high[i]):.1f}" stroke="{stroke}"/>'
                )
        for i in ok:
            out.append(
                f'<circle class="mark point" cx="{x(s.xs[i]):.1f}" cy="{y(s.mean[i]):.1f}" r="3" '
                f'fill="{stroke}"><title>{escape(s.tips[i])}</title></circle>'
            )
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


# --- forest plot ------------------------------------------------------------------------------


@dataclass
class ForestRow:
    label: str
    estimate: float
    low: float
    high: float
    klass: str  # better | worse | none | unknown
    tip: str
    index: int
    t_low: float = float("nan")  # a second, wider interval drawn as a thin whisker
    t_high: float = float("nan")


def forest_plot(rows: Sequence[ForestRow], *, x_label: str, label: str) -> str:
    """Effects against the baseline: a point and its CI per variant, a line at zero."""
    ok = [r for r in rows if _finite(r.estimate)]
    if not ok:
        return _empty(label, "no comparison with the baseline yet")
    row_h = 30
    height = MARGIN["top"] + MARGIN["bottom"] + row_h * len(rows)
    left = 170
    core = [v for r in ok for v in (r.estimate, r.low, r.high) if _finite(v)] + [0.0]
    span = max(core) - min(core) or 1.0
    # The wider (t) intervals may stretch the axis to 2x the core span; beyond that they are
    # clipped with an arrowhead, so one 2-seed variant cannot squash every other row.
    lo_cap, hi_cap = min(core) - span, max(core) + span
    wide = [min(max(v, lo_cap), hi_cap) for r in ok for v in (r.t_low, r.t_high) if _finite(v)]
    x0, x1 = padded(core + wide)
    x = Scale(x0, x1, left, W - MARGIN["right"])
    bottom = height - MARGIN["bottom"]
    out = [_svg_open(label, height=height, kind="forest"), '<g class="axes">']
    for t in nice_ticks(x0, x1, 6):
        px = x(t)
        out.append(
            f'<line class="grid" x1="{px:.1f}" x2="{px:.1f}" y1="{MARGIN["top"]}" y2="{bottom}"/>'
            f'<text class="tick" x="{px:.1f}" y="{bottom + 17}" text-anchor="middle">'
            f"{tick_label(t)}</text>"
        )
    out.append(
        f'<line class="zero" x1="{x(0):.1f}" x2="{x(0):.1f}" y1="{MARGIN["top"] - 6}" '
        f'y2="{bottom}"/><line class="axis" x1="{left}" x2="{W - MARGIN["right"]}" '
        f'y1="{bottom}" y2="{bottom}"/><text class="axis-label" '
        f'x="{(left + W - MARGIN["right"]) / 2}" y="{height - 8}" text-anchor="middle">'
        f"{escape(x_label)}</text></g>"
    )
    for i, r in enumerate(rows):
        cy = MARGIN["top"] + row_h * (i + 0.5)
        v = escape(r.label)
        out.append(
            f'<g class="row" data-variant="{v}"><text class="row-label" x="{left - 10}" '
            f'y="{cy:.1f}" text-anchor="end" dominant-baseline="middle">{v}</text>'
        )
        if _finite(r.t_low, r.t_high):
            a, b = max(r.t_low, x0), min(r.t_high, x1)
            out.append(
                f'<line class="whisker {r.klass}" x1="{x(a):.1f}" x2="{x(b):.1f}" '
                f'y1="{cy:.1f}" y2="{cy:.1f}"><title>{escape(r.tip)}</title></line>'
            )
            for end, clipped, sign in ((a, r.t_low < x0, -1), (b, r.t_high > x1, 1)):
                if clipped:
                    px = x(end)
                    out.append(
                        f'<path class="clip {r.klass}" d="M{px:.1f},{cy - 4:.1f} '
                        f'L{px + 6 * sign:.1f},{cy:.1f} L{px:.1f},{cy + 4:.1f} Z"/>'
                    )
        if _finite(r.low, r.high):
            out.append(
                f'<line class="mark ci {r.klass}" x1="{x(r.low):.1f}" x2="{x(r.high):.1f}" '
                f'y1="{cy:.1f}" y2="{cy:.1f}"><title>{escape(r.tip)}</title></line>'
            )
        if _finite(r.estimate):
            out.append(
                f'<rect class="mark est {r.klass}" x="{x(r.estimate) - 5:.1f}" y="{cy - 5:.1f}" '
                f'width="10" height="10"><title>{escape(r.tip)}</title></rect>'
            )
        out.append("</g>")
    out.append("</svg>")
    return "".join(out)


# --- main-effect panels -----------------------------------------------------------------------


@dataclass
class LevelPoint:
    level: str
    mean: float
    low: float
    high: float
    tip: str


def effect_panel(points: Sequence[LevelPoint], *, y_label: str, label: str, x_label: str) -> str:
    """Marginal means per level of one factor with t-CIs, joined by a line."""
    ok = [p for p in points if _finite(p.mean)]
    if not ok:
        return _empty(label, "no finished factorial trials")
    width, height = 420, 300
    y0, y1 = padded([v for p in ok for v in (p.mean, p.low, p.high) if _finite(v)])
    x = Scale(-0.5, len(points) - 0.5, MARGIN["left"], width - MARGIN["right"])
    y = Scale(y0, y1, height - MARGIN["bottom"], MARGIN["top"])
    out = [
        _svg_open(label, width, height),
        *_axes(x, y, [], nice_ticks(y0, y1), x_label, y_label, height=height, width=width),
    ]
    bottom = height - MARGIN["bottom"]
    for i, p in enumerate(points):
        out.append(
            f'<text class="tick" x="{x(i):.1f}" y="{bottom + 17}" text-anchor="middle">'
            f"{escape(p.level)}</text>"
        )
    path = " ".join(f"{x(i):.1f},{y(p.mean):.1f}" for i, p in enumerate(points) if _finite(p.mean))
    out.append(f'<polyline class="mark line effect" points="{path}"/>')
    for i, p in enumerate(points):
        if not _finite(p.mean):
            continue
        if _finite(p.low, p.high):
            out.append(
                f'<line class="mark ci" x1="{x(i):.1f}" x2="{x(i):.1f}" y1="{y(p.low):.1f}" '
                f'y2="{y(p.high):.1f}"><title>{escape(p.tip)}</title></line>'
            )
        out.append(
            f'<circle class="mark point effect" cx="{x(i):.1f}" cy="{y(p.mean):.1f}" r="5">'
            f"<title>{escape(p.tip)}</title></circle>"
        )
    out.append("</svg>")
    return "".join(out)


# --- heat map ---------------------------------------------------------------------------------


def _blue(t: float) -> str:
    """A single-hue ramp from pale to dark blue (readable for every colour vision)."""
    a, b = (0xF7, 0xFB, 0xFF), (0x08, 0x30, 0x6B)
    t = min(max(t, 0.0), 1.0)
    return "#" + "".join(f"{round(a[i] + (b[i] - a[i]) * t):02x}" for i in range(3))


def heatmap(
    rows: Sequence[str],
    cols: Sequence[str],
    values: dict[tuple[str, str], float],
    tips: dict[tuple[str, str], str],
    *,
    row_label: str,
    col_label: str,
    label: str,
    better_low: bool = True,
) -> str:
    """Cell means of a factor pair; darker = better, the value written in each cell."""
    finite = [v for v in values.values() if _finite(v)]
    if not finite:
        return _empty(label, "no finished trials in this factor pair")
    lo, hi = min(finite), max(finite)
    width, height = 420, 300
    left, top = 110, 40
    cw = (width - left - 10) / max(len(cols), 1)
    ch = (height - top - 40) / max(len(rows), 1)
    out = [
        _svg_open(label, width, height),
        f'<text class="axis-label" x="{left + (width - left - 10) / 2}" y="14" '
        f'text-anchor="middle">{escape(col_label)}</text>',
    ]
    for j, c in enumerate(cols):
        out.append(
            f'<text class="tick" x="{left + cw * (j + 0.5):.1f}" y="{top - 8}" '
            f'text-anchor="middle">{escape(c)}</text>'
        )
    for i, r in enumerate(rows):
        cy = top + ch * (i + 0.5)
        out.append(
            f'<text class="tick" x="{left - 8}" y="{cy:.1f}" text-anchor="end" '
            f'dominant-baseline="middle">{escape(r)}</text>'
        )
        for j, c in enumerate(cols):
            v = values.get((r, c))
            cx = left + cw * j
            if not _finite(v):
                out.append(
                    f'<rect class="cell missing" x="{cx:.1f}" y="{top + ch * i:.1f}" '
                    f'width="{cw - 2:.1f}" height="{ch - 2:.1f}"><title>not run</title></rect>'
                )
                continue
            t = 0.5 if hi == lo else (v - lo) / (hi - lo)
            t = 1 - t if better_low else t
            text_colour = "#ffffff" if t > 0.55 else "#111111"
            out.append(
                f'<rect class="mark cell" x="{cx:.1f}" y="{top + ch * i:.1f}" '
                f'width="{cw - 2:.1f}" height="{ch - 2:.1f}" fill="{_blue(0.1 + 0.8 * t)}">'
                f"<title>{escape(tips.get((r, c), ''))}</title></rect>"
                f'<text class="cell-value" x="{cx + cw / 2 - 1:.1f}" '
                f'y="{top + ch * (i + 0.5):.1f}" '
                f'text-anchor="middle" dominant-baseline="middle" fill="{text_colour}">'
                f"{v:.2f}</text>"
            )
    out.append(
        f'<text class="axis-label" transform="translate(14,{top + (height - top - 40) / 2}) '
        f'rotate(-90)" text-anchor="middle">{escape(row_label)}</text>'
        f'<text class="note" x="{left}" y="{height - 14}">darker = better; '
        f"range {lo:.2f} – {hi:.2f}</text></svg>"
    )
    return "".join(out)


# --- scatter with a Pareto front --------------------------------------------------------------


@dataclass
class Point:
    name: str
    x: float
    y: float
    y_low: float
    y_high: float
    front: bool
    index: int
    tip: str


def pareto_scatter(points: Sequence[Point], *, x_label: str, y_label: str, label: str) -> str:
    """Metric against a cost, per variant (error bars: the metric's CI), the front joined."""
    ok = [p for p in points if _finite(p.x, p.y)]
    if not ok:
        return _empty(label, "no finished trials with this cost measured")
    width, height = 440, 320
    x0, x1 = padded([p.x for p in ok], pad=0.12)
    y0, y1 = padded([v for p in ok for v in (p.y, p.y_low, p.y_high) if _finite(v)])
    x = Scale(x0, x1, MARGIN["left"], width - MARGIN["right"] - 30)
    y = Scale(y0, y1, height - MARGIN["bottom"], MARGIN["top"])
    out = [
        _svg_open(label, width, height),
        *_axes(
            x,
            y,
            nice_ticks(x0, x1, 4),
            nice_ticks(y0, y1),
            x_label,
            y_label,
            height=height,
            width=width,
        ),  # fmt: skip
    ]
    front = sorted((p for p in ok if p.front), key=lambda p: p.x)
    if len(front) >= 2:
        # A step line: the best metric reachable at each cost.
        pts = [f"{x(front[0].x):.1f},{y(front[0].y):.1f}"]
        for a, b in zip(front, front[1:], strict=False):
            pts += [f"{x(b.x):.1f},{y(a.y):.1f}", f"{x(b.x):.1f},{y(b.y):.1f}"]
        out.append(
            f'<polyline class="mark front" points="{" ".join(pts)}"><title>Pareto front</title>'
            "</polyline>"
        )
    for p in ok:
        stroke, _ = colour(p.index)
        v = escape(p.name)
        out.append(f'<g class="series" data-variant="{v}">')
        if _finite(p.y_low, p.y_high):
            out.append(
                f'<line class="ci" x1="{x(p.x):.1f}" x2="{x(p.x):.1f}" y1="{y(p.y_low):.1f}" '
                f'y2="{y(p.y_high):.1f}" stroke="{stroke}"/>'
            )
        shape = "front-point" if p.front else "point"
        out.append(
            f'<circle class="mark {shape}" cx="{x(p.x):.1f}" cy="{y(p.y):.1f}" '
            f'r="{7 if p.front else 5}" fill="{stroke}"><title>{escape(p.tip)}</title></circle>'
            + (
                f'<text class="point-label" x="{x(p.x) + 9:.1f}" y="{y(p.y) - 8:.1f}">'
                f"{v}</text></g>"
                if x(p.x) < width * 0.6
                else f'<text class="point-label" x="{x(p.x) - 9:.1f}" y="{y(p.y) - 8:.1f}" '
                f'text-anchor="end">{v}</text></g>'
            )
        )
    out.append("</svg>")
    return "".join(out)

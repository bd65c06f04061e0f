"""The figures as files and as inline SVG: PDF/SVG for papers, ``<svg>`` for the dashboard."""

from __future__ import annotations

import html
import io
import re
from pathlib import Path

from matplotlib.figure import Figure

from ablation.report.figures.catalogue import charts
from ablation.report.figures.style import style
from ablation.report.runs import StudyRuns
from ablation.report.summary import Summary


def _inline_svg(fig: Figure, salt: str, fonttype: str) -> str:
    buf = io.StringIO()
    with style({"svg.fonttype": fonttype, "svg.hashsalt": salt}):
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
        for key, value in mark.data:
            attrs += f' data-{key}="{html.escape(value)}"'
        title = f"<title>{html.escape(mark.tip)}</title>" if mark.tip else ""
        text = text.replace(f'<g id="{prefix}-{gid}">', f'<g id="{prefix}-{gid}"{attrs}>{title}', 1)
    # The page sizes the chart (CSS: width 100%); the viewBox keeps its proportions.
    root = re.match(r"<svg[^>]*>", text).group(0)
    new_root = re.sub(r'\s(width|height)="[^"]*"', "", root).replace(
        "<svg", f'<svg class="chart" role="img" aria-label="{html.escape(label or prefix)}"', 1
    )
    return new_root + text[len(root) :].rstrip() + "\n"


def write_figures(summary: Summary, runs: StudyRuns | None, out_dir: str | Path) -> list[Path]:
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
        with style():
            chart.figure.savefig(
                pdf,
                format="pdf",
                metadata={"Title": title, "Subject": subject, "CreationDate": None},
            )
        svg = out / f"{chart.name}.svg"
        with style({"svg.hashsalt": chart.name}):
            chart.figure.savefig(svg, format="svg", metadata={"Title": title, "Date": None})
        paths += [pdf, svg]
    return paths

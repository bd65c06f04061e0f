"""The summary's figures: written as PDF (rasterised by a real `pdftoppm`) and SVG (parsed),
and inlined into HTML with distinct ids and the dashboard's hover hooks."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import pytest
from matplotlib.figure import Figure
from pooling_study import pooling_summary

from ablation.report import figures, tables
from ablation.report.summary import summarize

SVG_NS = "{http://www.w3.org/2000/svg}"
PDFTOPPM = shutil.which("pdftoppm")


@pytest.fixture(scope="module")
def summary(synthetic_study_frames):
    return pooling_summary(synthetic_study_frames, study="fig_study", n_resamples=199)


EXPECTED = {
    "forest": "effect",
    "curve-val_top1_error": "curve",
    "curve-train_loss": "curve",
    "effect-0": "factor",
    "effect-1": "factor",
    "heatmap-0": "interaction",
    "pareto-params": "cost",
    "pareto-gflops": "cost",
    "pareto-latency_ms": "cost",
}


def test_every_figure_is_a_matplotlib_figure_with_marks(summary):
    charts = figures.charts(summary)
    assert {c.name: c.kind for c in charts} == EXPECTED
    for c in charts:
        assert isinstance(c.figure, Figure), c.name
        assert c.figure.marks, c.name
    forest = next(c for c in charts if c.name == "forest").figure
    tips = [m.tip for m in forest.marks.values()]
    # The tooltip is the verdict line, word for word.
    lines = tables.verdict_lines(summary)
    assert any(t.startswith("cbam_k7&max vs no_attention: ") and "p_holm" in t for t in tips)
    assert {t for t in tips if " vs " in t} <= set(lines)
    variants = {m.variant for m in forest.marks.values() if m.variant is not None}
    assert variants == set(summary.comparisons.variant)


def test_svg_text_inlines_with_distinct_ids_and_hover_hooks(summary):
    charts = figures.charts(summary)
    texts = {c.name: figures.svg_text(c.figure, c.name, label=c.title) for c in charts}
    seen: set[str] = set()
    for name, text in texts.items():
        assert text.startswith('<svg class="chart" role="img"'), name
        assert "<?xml" not in text and "<!DOCTYPE" not in text
        root = ET.fromstring(text)  # well-formed XML on its own
        ids = [el.get("id") for el in root.iter() if el.get("id")]
        assert len(ids) == len(set(ids)), name
        assert all(i.startswith(f"{name}-") for i in ids), name
        assert not seen & set(ids), name  # no id shared with another figure on the page
        seen |= set(ids)
        # Every reference points at an id of the same figure.
        refs = re.findall(r'(?:url\(#|href="#)([^")]+)', text)
        assert refs and set(refs) <= set(ids), name
        marks = [el for el in root.iter(f"{SVG_NS}g") if "mark" in (el.get("class") or "")]
        assert marks, name
        for el in marks:
            assert el.find(f"{SVG_NS}title") is not None or el.get("class") != "mark"
    forest = ET.fromstring(texts["forest"])
    hooked = {el.get("data-variant") for el in forest.iter() if el.get("data-variant")}
    assert hooked == set(summary.comparisons.variant)  # '&' came through escaped and back
    titles = [el.text for el in forest.iter(f"{SVG_NS}title")]
    r = summary.comparisons.set_index("variant").loc["cbam_k7&max"]
    assert any(f"{r['mean_diff']:+.2f}" in t for t in titles)


@pytest.mark.skipif(PDFTOPPM is None, reason="needs poppler-utils' pdftoppm (make system-deps)")
def test_write_figures_pdf_rasterises_and_svg_parses(summary, tmp_path):
    runs = SimpleNamespace(parent=SimpleNamespace(run_id="0123abcd"))
    paths = figures.write_figures(summary, runs, tmp_path / "figs")
    assert sorted(p.name for p in paths) == sorted(
        f"{name}.{ext}" for name in EXPECTED for ext in ("pdf", "svg")
    )
    for path in paths:
        if path.suffix == ".svg":
            root = ET.parse(path).getroot()
            assert root.tag == f"{SVG_NS}svg"
            assert any(el.get("id", "").startswith("mark-") for el in root.iter()), path.name
            continue
        data = path.read_bytes()
        assert data.startswith(b"%PDF-") and b"0123abcd" in data
        run = subprocess.run(
            [PDFTOPPM, "-png", "-r", "50", "-singlefile", str(path), str(path.with_suffix(""))],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode == 0, run.stderr
        png = path.with_suffix(".png").read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 2000, path.name
    # The same summary writes the same files (no dates, salted ids).
    again = figures.write_figures(summary, runs, tmp_path / "again")
    for a, b in zip(paths, again, strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_empty_summary_still_draws_every_figure(synthetic_study_frames):
    trials, history = synthetic_study_frames(
        [{"name": "only", "effect": 0.0}], [0], statuses={("only", 0): "FAILED"}
    )
    summary = summarize(trials, history, study="empty", baseline="only", n_resamples=99)
    charts = figures.charts(summary)
    assert {c.kind for c in charts} >= {"effect", "curve"}
    for c in charts:
        text = figures.svg_text(c.figure, c.name)
        ET.fromstring(text)


def test_titles_and_axes_take_the_metrics_labels(summary):
    charts = {c.name: c for c in figures.charts(summary)}
    assert charts["pareto-params"].title == "Top-1 err (%) against Params (M)"
    assert charts["curve-val_top1_error"].title == "Learning curves: val top-1 error (%)"
    assert charts["curve-train_loss"].title == "Learning curves: train loss"
    ax = charts["pareto-params"].figure.axes[0]
    assert ax.get_xlabel() == "Params (M)" and ax.get_ylabel() == "Top-1 err (%)"
    assert max(ax.get_xlim()) < 1  # drawn in millions of parameters
    assert "better is to the left" in charts["forest"].caption.lower()

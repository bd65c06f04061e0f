"""The dashboard's effect plot, laid out by a real headless Chromium: each comparison's bar
agrees with its verdict and with the +-min_effect band (issue 22). A study with a better, an
equivalent and an undecided comparison; the page is read back from Chromium's own layout."""

from __future__ import annotations

import dataclasses
import html
import json
import re
from pathlib import Path

import pytest
from helpers import CHROMIUM, chromium
from matplotlib.colors import to_rgb
from verdict_study import MIN_EFFECT, verdict_summary

from ablation.dashboard import DASHBOARD_FILE, render_dashboard
from ablation.report import figures, tables
from ablation.vocabulary.verdicts import BETTER, EQUIVALENT, UNDECIDED, WORSE

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium package (make system-deps)"
)

# Run in the page once Chromium has laid it out: for the forest plot, the band, the zero line
# and every interval bar with its data attributes, pixel extent and computed stroke colour;
# the legend's texts; and each verdict cell of the comparisons table with its colour.
BAR_PROBE = """<script>
(() => {
  const fig = document.querySelector('figure#forest');
  const box = el => { const r = el.getBoundingClientRect(); return [r.left, r.right]; };
  const band = fig.querySelector('g.band');
  const zero = fig.querySelector('g.zero');
  const bars = [...fig.querySelectorAll('g.interval')].map(g => {
    const path = g.querySelector('path');
    return {variant: g.dataset.variant, verdict: g.dataset.verdict,
            low: +g.dataset.ciLow, high: +g.dataset.ciHigh, method: g.dataset.ciMethod,
            px: box(path), stroke: getComputedStyle(path).stroke,
            tip: g.querySelector('title').textContent};
  });
  const legend = [...fig.querySelectorAll('svg text')].map(t => t.textContent.trim());
  const cells = [...document.querySelectorAll('td.verdict')].map(td => ({
    variant: td.parentElement.firstElementChild.textContent.trim(),
    verdict: td.textContent.trim(), colour: getComputedStyle(td).color}));
  document.documentElement.setAttribute('data-bar-report', JSON.stringify({
    band: band && {px: box(band.querySelector('path')), low: +band.dataset.low,
                   high: +band.dataset.high},
    zero: box(zero.querySelector('path')), bars, legend, cells}));
})();
</script>"""

# The page's text tints of the plot's colours (dashboard.css), as Chromium computes them.
CELL_COLOURS = {
    BETTER: "rgb(0, 114, 178)",
    WORSE: "rgb(213, 94, 0)",
    EQUIVALENT: "rgb(0, 122, 90)",
    UNDECIDED: "rgb(140, 90, 0)",
}


def _rgb(hex_colour: str) -> str:
    r, g, b = (round(255 * c) for c in to_rgb(hex_colour))
    return f"rgb({r}, {g}, {b})"


def _laid_out(tmp_path: Path, page: str) -> dict:
    path = tmp_path / DASHBOARD_FILE
    path.write_text(page.replace("</body>", BAR_PROBE + "</body>"))
    run = chromium(
        path.resolve().as_uri(), tmp_path / "profile", "--window-size=1366,2400", "--dump-dom"
    )
    assert run.returncode == 0, run.stderr[-2000:]
    found = re.search(r'data-bar-report="([^"]*)"', run.stdout)
    assert found, "the probe did not run"
    return json.loads(html.unescape(found.group(1)))


def test_every_bar_agrees_with_its_verdict_and_the_band(tmp_path):
    summary = verdict_summary()
    rows = {r["variant"]: r for r in summary.comparisons.to_dict("records")}
    seen = _laid_out(tmp_path, render_dashboard(summary))

    band, zero = seen["band"], seen["zero"]
    assert (band["low"], band["high"]) == (-MIN_EFFECT, MIN_EFFECT)
    # Pixels per unit of the axis, from the band's own extent on screen.
    scale = (band["px"][1] - band["px"][0]) / (2 * MIN_EFFECT)
    centre = (band["px"][0] + band["px"][1]) / 2
    assert abs(centre - zero[0]) < 1.0  # the zero line in the middle of the band
    bars = {b["variant"]: b for b in seen["bars"]}
    assert set(bars) == set(rows)
    for v, bar in bars.items():
        r = rows[v]
        # The bar is the row's interval, drawn where the axis puts it, in its verdict's colour.
        assert bar["verdict"] == r["verdict"]
        assert (bar["low"], bar["high"]) == pytest.approx((r["ci_low"], r["ci_high"]))
        assert bar["method"] == r["ci_method"]
        assert bar["px"][0] == pytest.approx(centre + scale * r["ci_low"], abs=1.5)
        assert bar["px"][1] == pytest.approx(centre + scale * r["ci_high"], abs=1.5)
        assert bar["stroke"] == _rgb(figures.verdict_colour(r["verdict"]))
        assert bar["tip"] == tables.verdict_line(summary, r)
        left, right = bar["px"]
        if r["verdict"] == EQUIVALENT:  # inside the band
            assert band["px"][0] - 0.5 <= left <= right <= band["px"][1] + 0.5, v
        elif r["verdict"] in (BETTER, WORSE):  # clear of zero, on the verdict's side
            assert right < zero[0] if r["mean_diff"] < 0 else left > zero[0], v
        elif r["verdict"] == UNDECIDED:  # neither: across zero and out of the band
            assert left < zero[0] < right, v
            assert left < band["px"][0] or right > band["px"][1], v
    assert len({b["stroke"] for b in bars.values()}) == 3
    assert "equivalent: 90% TOST interval (equivalence)" in seen["legend"]
    assert "better: 98.3% CI (paired t at Holm's level)" in seen["legend"]
    assert "undecided: 97.5% CI (paired t at Holm's level)" in seen["legend"]
    # The comparisons table says the same verdict, in the same family of colour.
    cells = {c["variant"]: c for c in seen["cells"]}
    for v, r in rows.items():
        assert cells[v]["verdict"] == r["verdict"]
        assert cells[v]["colour"] == CELL_COLOURS[r["verdict"]]


def test_the_probe_sees_a_bar_outside_the_band(tmp_path):
    """The check above can fail: an equivalent row whose interval reaches past the band (what
    the pages showed before issue 22) is seen crossing it."""
    summary = verdict_summary()
    c = summary.comparisons.copy()
    same = c["variant"] == "same"
    c.loc[same, "ci_low"], c.loc[same, "ci_high"] = -0.4, 1.6
    seen = _laid_out(tmp_path, render_dashboard(dataclasses.replace(summary, comparisons=c)))
    bar = next(b for b in seen["bars"] if b["variant"] == "same")
    assert bar["verdict"] == EQUIVALENT
    assert bar["px"][1] > seen["band"]["px"][1] + 5

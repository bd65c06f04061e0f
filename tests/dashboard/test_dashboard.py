"""The study dashboard: rendered from a real tiny study and from synthetic runs, opened in a real
headless Chromium, and served back through a real `mlflow server`."""

from __future__ import annotations

import io
import os
import re
import secrets
import subprocess
import urllib.parse
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import CHROMIUM, chromium, write_study
from pooling_study import pooling_summary

from ablation.cli import build_parser
from ablation.commands.dashboard import main as dashboard_command
from ablation.dashboard import DASHBOARD_FILE, render_dashboard
from ablation.dashboard.publish import publish_study_report
from ablation.report import tables
from ablation.report.factorial import DESCRIPTIVE
from ablation.report.summary import Summary, summarize

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium package (make system-deps)"
)


@pytest.fixture(scope="module")
def synthetic_summary(synthetic_study_frames):
    names = ("no-attention", "k3-avg", "k7-avg", "k3-avg+max", "k7-avg+max")
    return pooling_summary(synthetic_study_frames, names, study="synthetic-pooling")


# --- what the page holds ----------------------------------------------------------------------


class _Dom(HTMLParser):
    """The figures of the page: id -> counts of <svg> and of elements with class "mark"."""

    def __init__(self) -> None:
        super().__init__()
        self.figures: dict[str, dict[str, int]] = {}
        self.stack: list[str | None] = []
        self.root_attrs: dict[str, str | None] = {}
        self.script_count = 0
        self.external: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html":
            self.root_attrs = a
        if tag == "script":
            self.script_count += 1
            if a.get("src"):
                self.external.append(a["src"])
        if tag == "link" and a.get("href"):
            self.external.append(a["href"])
        fig = a.get("id") if tag == "figure" and "plot" in (a.get("class") or "") else None
        if tag not in ("circle", "line", "rect", "path", "polyline", "polygon", "br", "meta"):
            self.stack.append(fig)
        current = next((f for f in reversed(self.stack) if f), fig)
        if current:
            counts = self.figures.setdefault(current, {"svg": 0, "marks": 0})
            counts["svg"] += tag == "svg"
            counts["marks"] += "mark" in (a.get("class") or "").split()

    def handle_endtag(self, tag):
        void = ("circle", "line", "rect", "path", "polyline", "polygon", "br", "meta")
        if tag not in void and self.stack:
            self.stack.pop()


def _expected_plots(summary: Summary) -> set[str]:
    ids = {"forest", "curve-val_top1_error", "curve-train_loss"}
    ids |= {f"effect-{i}" for i in range(len(summary.factors))}
    cells = summary.interaction_cells
    pairs = 0 if cells.empty else cells.groupby(["factor_a", "factor_b"]).ngroups
    ids |= {f"heatmap-{i}" for i in range(pairs)}
    ids |= {f"pareto-{c}" for c in ("params", "gflops", "latency_ms")}
    return ids


def _check_plots(dom: _Dom, summary: Summary) -> None:
    expected = _expected_plots(summary)
    assert set(dom.figures) == expected
    for fig, counts in dom.figures.items():
        assert counts["svg"] == 1, fig
        assert counts["marks"] >= 1, fig


def test_page_is_self_contained_and_shows_the_report_numbers(synthetic_summary):
    page = render_dashboard(synthetic_summary)
    dom = _Dom()
    dom.feed(page)
    assert dom.external == []  # nothing fetched: no src=, no stylesheet links
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    _check_plots(dom, synthetic_summary)
    # Traceable: the paper table, every comparison and every main effect as the report shows it.
    for row in tables.paper_table(synthetic_summary).to_numpy():
        for cell in row:
            assert str(cell).replace("+", "&#43;") in page or str(cell) in page
    for r in synthetic_summary.comparisons.to_dict("records"):
        assert tables.fmt_signed(r["mean_diff"]) in page
        assert tables.fmt_ci(r["ci_low"], r["ci_high"]) in page
        assert r["verdict"] in page
    for r in synthetic_summary.main_effects.to_dict("records"):
        estimate = tables.fmt_signed(r["estimate"])
        assert estimate in page or estimate.replace("+", "&#43;") in page
    # The factor section says what it is: estimates only, beside the verdicts.
    assert f"Everything in this section is {DESCRIPTIVE}" in page
    # Failed and stopped trials are listed with their status and error.
    assert page.count('data-status="FAILED"') == 2  # the filter box and the one failed trial
    assert "loss is nan" in page


# --- in a real browser ------------------------------------------------------------------------


def _chromium(page: Path, profile: Path, *extra: str) -> subprocess.CompletedProcess:
    return chromium(page.resolve().as_uri(), profile, "--enable-logging=stderr", "--v=0", *extra)


def _open_in_chromium(html_path: Path, summary: Summary, tmp: Path, shot: str) -> None:
    run = _chromium(html_path, tmp / "profile", "--dump-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console
    dom = _Dom()
    dom.feed(run.stdout)
    assert dom.root_attrs.get("data-dashboard-ready") == "1", "the page's script did not run"
    _check_plots(dom, summary)

    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / shot
    run = _chromium(
        html_path,
        tmp / "profile",
        "--hide-scrollbars",
        "--window-size=1366,2400",
        f"--screenshot={target}",
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert target.stat().st_size > 20_000


@needs_chromium
def test_synthetic_dashboard_in_headless_chromium(synthetic_summary, tmp_path):
    page = tmp_path / DASHBOARD_FILE
    page.write_text(render_dashboard(synthetic_summary))
    _open_in_chromium(page, synthetic_summary, tmp_path, "dashboard-synthetic.png")


@pytest.fixture
def mlflow_server(start_mlflow_server, fresh_mlflow_uri):
    """A real `mlflow server` on a fresh SQLite store with proxied artifacts in tmp_path."""
    return start_mlflow_server(fresh_mlflow_uri, timeout=120)


@needs_chromium
def test_real_tiny_study_dashboard_through_mlflow_server(mlflow_server, tmp_path, monkeypatch):
    """`run_study` (2 variants x 2 seeds of digits, 1 epoch) tracked by a real `mlflow server`,
    then what `ablation run` does at its end (report + dashboard on the parent run); the
    dashboard comes back byte for byte through the server's artifact endpoint and opens in
    headless Chromium with every plot and no console message."""
    from mlflow.tracking import MlflowClient

    from ablation.report import load_runs, summary_of_runs
    from ablation.run.driver import run_study
    from ablation.study import load_study

    if not os.environ.get("RAY_AUTH_TOKEN"):
        monkeypatch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
    monkeypatch.chdir(tmp_path)  # Ray results of a server-tracked study go to ./ray_results
    study_file = write_study(
        tmp_path,
        "dash-tiny",
        train={"epochs": 1, "batch_size": 64, "optimizer": {"name": "sgd", "lr": 0.05}},
        factors={"model.attention": ["none", "cbam"]},
        baseline="attention=none",
    )
    try:
        result = run_study(
            load_study(study_file),
            tracking_uri=mlflow_server,
            optuna_storage=f"sqlite:///{tmp_path / 'optuna.db'}",
            out=io.StringIO(),
        )
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    printed = publish_study_report(mlflow_server, "dash-tiny")
    assert printed.startswith("| Description | Params | GFLOPs | Top-1 err | Top-5 err |")
    assert "attention=cbam vs attention=none:" in printed

    client = MlflowClient(mlflow_server)
    logged = {a.path for a in client.list_artifacts(result.parent_run_id)}
    assert {DASHBOARD_FILE, "report"} <= logged
    reports = {a.path for a in client.list_artifacts(result.parent_run_id, "report")}
    assert reports == {
        f"report/report.{e}" for e in ("md", "csv", "tex", "html", "json", "parquet")
    }

    # `ablation dashboard` writes the page and logs it again; the server hands back those bytes.
    out = tmp_path / "out"
    # Parsed as the command line parses it, so the arguments stay the command's own.
    args = build_parser().parse_args(
        ["dashboard", "dash-tiny", "-o", str(out), "--tracking-uri", mlflow_server]
    )
    assert dashboard_command(args) == 0
    written = (out / DASHBOARD_FILE).read_bytes()
    query = urllib.parse.urlencode({"path": DASHBOARD_FILE, "run_uuid": result.parent_run_id})
    with urllib.request.urlopen(f"{mlflow_server}/get-artifact?{query}", timeout=30) as r:
        served = r.read()
    assert served == written

    summary = summary_of_runs(load_runs(mlflow_server, "dash-tiny"), importance=False)
    assert summary.variants["n_finished"].tolist() == [2, 2]
    page = tmp_path / "served.html"
    page.write_bytes(served)
    _open_in_chromium(page, summary, tmp_path, "dashboard-tiny-study.png")


# --- eight close-valued variants: the cost charts stay readable ------------------------------

# Run in the page after it is laid out: every pair of variant-name texts inside one cost chart
# whose boxes overlap (as Chromium lays them out), and the names each chart shows.
OVERLAP_PROBE = """<script>
(() => {
  const report = {};
  for (const fig of document.querySelectorAll('figure.plot[id^="pareto-"]')) {
    const texts = [...fig.querySelectorAll('svg text')]
      .map(t => [t.textContent.trim(), t.getBoundingClientRect()])
      .filter(([s, r]) => s.startsWith('cbam-variant-') && r.width > 0);
    const overlaps = [];
    for (let i = 0; i < texts.length; i++)
      for (let j = i + 1; j < texts.length; j++) {
        const [a, r] = texts[i], [b, q] = texts[j];
        if (r.left < q.right - 0.5 && q.left < r.right - 0.5 &&
            r.top < q.bottom - 0.5 && q.top < r.bottom - 0.5) overlaps.push(a + ' / ' + b);
      }
    // A name cut off by the chart's edge is no better than one overlapped.
    const box = fig.querySelector('svg').getBoundingClientRect();
    const clipped = texts.filter(([, r]) => r.left < box.left - 0.5 || r.right > box.right + 0.5)
      .map(([s]) => s);
    report[fig.id] = {names: texts.map(([s]) => s).sort(), overlaps, clipped};
  }
  document.documentElement.setAttribute('data-label-report', JSON.stringify(report));
})();
</script>"""


@needs_chromium
def test_eight_close_variants_dashboard_labels_never_overlap(synthetic_study_frames, tmp_path):
    """The usual CBAM case: eight variants within a fraction of a point and a few hundred
    parameters of each other. Laid out by Chromium, no two names overlap in any cost chart,
    and every chart still names all eight (in its legend); screenshot in test-artifacts/."""
    import json

    variants = [
        {
            "name": f"cbam-variant-{i}",
            "effect": -0.05 * i,
            "params": 270_000 + 60 * i,
            "latency_ms": 1.90 + 0.01 * i,
        }
        for i in range(8)
    ]
    trials, history = synthetic_study_frames(variants, [0, 1, 2], noise=0.05, seed_sd=0.05)
    summary = summarize(trials, history, study="eight-close", baseline="cbam-variant-0")
    page = tmp_path / DASHBOARD_FILE
    page.write_text(render_dashboard(summary).replace("</body>", OVERLAP_PROBE + "</body>"))
    _open_in_chromium(page, summary, tmp_path, "dashboard-eight-close.png")

    run = _chromium(page, tmp_path / "probe-profile", "--dump-dom")
    found = re.search(r'data-label-report="([^"]*)"', run.stdout)
    assert found, "the probe did not run"
    report = json.loads(found.group(1).replace("&quot;", '"'))
    assert set(report) == {"pareto-params", "pareto-gflops", "pareto-latency_ms"}
    for chart, seen in report.items():
        assert seen["overlaps"] == [], chart
        assert seen["clipped"] == [], chart
        assert seen["names"] == sorted(v["name"] for v in variants), chart


@needs_chromium
def test_the_overlap_probe_sees_two_names_on_top_of_each_other(tmp_path):
    import json

    svg = (
        '<svg width="300" height="100"><text x="10" y="50">cbam-variant-1</text>'
        '<text x="14" y="52">cbam-variant-2</text></svg>'
    )
    page = tmp_path / "probe.html"
    page.write_text(
        f'<html><body><figure class="plot" id="pareto-params">{svg}</figure>'
        f"{OVERLAP_PROBE}</body></html>"
    )
    run = _chromium(page, tmp_path / "profile", "--dump-dom")
    report = json.loads(
        re.search(r'data-label-report="([^"]*)"', run.stdout).group(1).replace("&quot;", '"')
    )
    assert report["pareto-params"]["overlaps"] == ["cbam-variant-1 / cbam-variant-2"]
    assert report["pareto-params"]["clipped"] == []

"""The study dashboard: one self-contained HTML file, also logged on the study's parent run.

The page is rendered with Jinja2 from the package's ``templates/study.html.j2`` (also reachable
as ``dashboards/`` at the top of the checkout); its CSS and small script (``dashboard.css``,
``dashboard.js``) are inlined, and every chart is a matplotlib figure of
`ablation.report.figures` inlined as SVG, so the file needs no network, no CDN and no plotting
bundle, and still shows every chart where scripts are blocked. All numbers come from the same
`ablation.report.summary.Summary` the report prints, formatted by the same functions.
"""

from __future__ import annotations

import tempfile
from importlib import resources
from pathlib import Path

import jinja2

from ablation.report import figures, tables
from ablation.report.export import html_table
from ablation.report.factorial import DESCRIPTIVE
from ablation.report.runs import StudyRuns
from ablation.report.summary import Summary
from ablation.track import names

DASHBOARD_FILE = names.DASHBOARD_ARTIFACT
TEMPLATE = "study.html.j2"
ASSETS = ("dashboard.css", "dashboard.js")
TEMPLATES = "templates"  # package data of ablation.dashboard (pyproject.toml)


def chart_context(summary: Summary) -> dict[str, list[dict]]:
    """The figures of the summary as the template shows them: id, title, caption, inline SVG,
    grouped by kind."""
    kinds = ("effect", "curve", "factor", "interaction", "cost")
    groups: dict[str, list[dict]] = {k: [] for k in kinds}
    for chart in figures.charts(summary):
        svg = figures.svg_text(chart.figure, chart.name, label=chart.title)
        groups[chart.kind].append(
            {"id": chart.name, "title": chart.title, "caption": chart.caption, "svg": svg}
        )
    return groups


# --- the page ---------------------------------------------------------------------------------


def _trial_rows(summary: Summary) -> list[dict]:
    m = summary.metric
    rows = []
    for r in summary.values.to_dict("records"):
        error = r.get("error") if isinstance(r.get("error"), str) else ""
        rows.append(
            {
                "variant": r["variant"],
                "seed": r["seed"],
                "status": r["status"],
                "epochs": tables.fmt(r.get("epochs_completed"), 0),
                "metric": tables.fmt(r.get(m)),
                "params": tables.fmt_params(r.get("params")),
                "run_id": r.get("run_id") or "",
                "error_line": (error.strip().splitlines() or [""])[-1][:200],
                "error": error,
            }
        )
    return rows


def dashboard_context(summary: Summary, runs: StudyRuns | None = None) -> dict:
    """Everything the template shows, as plain values."""
    v = summary.variants
    counts = {
        "trials": int(v["n_trials"].sum()) if len(v) else 0,
        "finished": int(v["n_finished"].sum()) if len(v) else 0,
        "stopped": int(v["n_stopped"].sum()) if len(v) else 0,
        "failed": int(v["n_failed"].sum()) if len(v) else 0,
        "other": int(v["n_other"].sum()) if len(v) else 0,
    }
    parent = getattr(runs, "parent", None)
    index = {v: i for i, v in enumerate(summary.variants["variant"])}
    legend = [
        {"name": name, "colour": figures.colour(i)[0], "dash": figures.colour(i)[1]}
        for name, i in index.items()
    ]
    sections = {s.key: s for s in tables.sections(summary)}
    charts = chart_context(summary)

    def table(key: str) -> str:
        s = sections.get(key)
        return html_table(s.table, s.caption) if s else ""

    return {
        "study": summary.study,
        "metric": summary.metric,
        "metric_label": tables.metric_label(summary.metric),
        "params_label": tables.metric_label("params"),
        "direction": summary.mode.phrase,
        "baseline": summary.baseline,
        "design": (parent.design if parent else None) or "",
        "parent_run_id": parent.run_id if parent else "",
        "epoch": summary.epoch,
        "counts": counts,
        "legend": legend,
        "paper_table": html_table(tables.paper_table(summary), tables.paper_caption(summary)),
        "comparisons_table": table("comparisons"),
        "looks_table": table("looks"),
        "plan_table": table("plan"),
        "variants_table": table("variants"),
        "main_effects_table": table("main_effects"),
        "interactions_table": table("interactions"),
        "importance_table": table("importance"),
        "descriptive": DESCRIPTIVE,
        "verdicts": tables.verdict_lines(summary),
        "notes": summary.notes,
        "partial": summary.partial,
        "curves": charts["curve"],
        "forest": charts["effect"][0],
        "effects": charts["factor"],
        "heatmaps": charts["interaction"],
        "paretos": charts["cost"],
        "trials": _trial_rows(summary),
    }


def render_dashboard(summary: Summary, runs: StudyRuns | None = None) -> str:
    """The dashboard page as one self-contained HTML string."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("ablation.dashboard", TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    folder = resources.files("ablation.dashboard") / TEMPLATES
    assets = {
        name.replace(".", "_"): (folder / name).read_text(encoding="utf-8") for name in ASSETS
    }
    # Inline script text must not close its own <script> element.
    assets["dashboard_js"] = assets["dashboard_js"].replace("</", "<\\/")
    context = dashboard_context(summary, runs)
    return env.get_template(TEMPLATE).render(**context, **assets)


def write_dashboard(summary: Summary, runs: StudyRuns | None, output_dir: str | Path) -> Path:
    path = Path(output_dir) / DASHBOARD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_dashboard(summary, runs), encoding="utf-8")
    return path


def log_dashboard(tracking_uri: str, run_id: str, page: str) -> None:
    """Log the page as ``dashboard.html`` on a run (MLflow's UI renders HTML artifacts)."""
    from mlflow.tracking import MlflowClient

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / DASHBOARD_FILE
        path.write_text(page, encoding="utf-8")
        MlflowClient(tracking_uri).log_artifact(run_id, str(path))

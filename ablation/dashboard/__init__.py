"""The study dashboard: one self-contained HTML file, also logged on the study's parent run.

The page is rendered with Jinja2 from ``dashboards/study.html.j2``; its CSS and small script
(``dashboards/dashboard.css``, ``dashboards/dashboard.js``) are inlined, and every chart is an
SVG drawn here (`ablation.dashboard.svg`), so the file needs no network, no CDN and no plotting
bundle, and still shows every chart where scripts are blocked. All numbers come from the same
`ablation.report.stats.Summary` the report prints, formatted by the same functions.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import pandas as pd

from ablation.dashboard import svg
from ablation.report import tables
from ablation.report.export import html_table
from ablation.report.stats import Summary, pareto_front

DASHBOARD_FILE = "dashboard.html"
TEMPLATE = "study.html.j2"
ASSETS = ("dashboard.css", "dashboard.js")
COSTS = (
    ("params", "Params (M)", 1e-6),
    ("gflops", "GFLOPs", 1.0),
    ("latency_ms", "Latency (ms)", 1.0),
)
CURVES = (("val_top1_error", "Val top-1 error (%)"), ("train_loss", "Train loss"))


def template_dir() -> Path:
    """``dashboards/`` of the checkout (or ABLATION_DASHBOARD_TEMPLATES)."""
    env = os.environ.get("ABLATION_DASHBOARD_TEMPLATES")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "dashboards"


def _ok(x: Any) -> bool:
    return x is not None and not pd.isna(x)


def _colour_index(summary: Summary) -> dict[str, int]:
    return {v: i for i, v in enumerate(summary.variants["variant"])}


# --- the charts -------------------------------------------------------------------------------


def curve_charts(summary: Summary) -> list[dict]:
    index = _colour_index(summary)
    charts = []
    for metric, y_label in CURVES:
        c = summary.curves[summary.curves["metric"] == metric] if len(summary.curves) else None
        series = []
        for variant, i in index.items():
            rows = c[c["variant"] == variant].sort_values("epoch") if c is not None else []
            if len(rows) == 0:
                continue
            mean, std = rows["mean"].to_numpy(float), rows["std"].to_numpy(float)
            tips = [
                f"{variant}, epoch {int(e)}: {tables.fmt_pm(m, s, 3)} (mean {tables.PM} std, n={n})"
                for e, m, s, n in zip(rows["epoch"], mean, std, rows["n"], strict=True)
            ]
            series.append(
                svg.Series(
                    variant,
                    rows["epoch"].astype(float).tolist(),
                    mean.tolist(),
                    (mean - std).tolist(),
                    (mean + std).tolist(),
                    i,
                    tips,
                )  # fmt: skip
            )
        charts.append(
            {
                "id": f"curve-{metric}",
                "title": f"Learning curves: {y_label.lower()}",
                "caption": f"Mean over finished seeds, band {tables.PM} one std.",
                "svg": svg.line_chart(series, x_label="Epoch", y_label=y_label, label=y_label),
            }
        )
    return charts


def forest_chart(summary: Summary) -> dict:
    index = _colour_index(summary)
    rows = []
    for r in summary.comparisons.to_dict("records"):
        klass = {"better": "better", "worse": "worse"}.get(r["verdict"], "none")
        tip = (
            f"{r['variant']} − {r['baseline']}: {tables.fmt_signed(r['mean_diff'])}, "
            f"bootstrap 95% CI {tables.fmt_ci(r['ci_low'], r['ci_high'])}, "
            f"t 95% CI {tables.fmt_ci(r['t_ci_low'], r['t_ci_high'])}, "
            f"p_holm {tables.fmt_p(r['p_holm'])}, n={r['n_pairs']}: {r['verdict']}"
        )
        rows.append(
            svg.ForestRow(
                r["variant"],
                r["mean_diff"],
                r["ci_low"],
                r["ci_high"],
                klass,
                tip,
                index.get(r["variant"], 0),
                r["t_ci_low"],
                r["t_ci_high"],
            )  # fmt: skip
        )
    m = tables.metric_label(summary.metric)
    better = "left" if summary.mode == "min" else "right"
    return {
        "id": "forest",
        "title": f"Effect against the baseline ({summary.baseline})",
        "caption": f"Δ {m}, paired by seed; thick bar: bootstrap 95% CI, thin line: t 95% CI; "
        f"better is to the {better}. Blue: better, vermillion: worse, grey: no detectable "
        "difference (Holm-corrected).",
        "svg": svg.forest_plot(rows, x_label=f"Δ {m} (variant − baseline)", label="forest plot"),
    }


def effect_charts(summary: Summary) -> list[dict]:
    charts = []
    mm, me = summary.marginal_means, summary.main_effects
    m = tables.metric_label(summary.metric)
    for i, factor in enumerate(summary.factors):
        rows = mm[mm["factor"] == factor] if len(mm) else mm
        if len(rows) < 2:
            continue
        points = [
            svg.LevelPoint(
                str(r["level"]),
                r["mean"],
                r["ci_low"],
                r["ci_high"],
                f"{factor} = {r['level']}: {tables.fmt_pm(r['mean'], r['std'])}, "
                f"95% CI {tables.fmt_ci(r['ci_low'], r['ci_high'])}, n={r['n']}",
            )  # fmt: skip
            for r in rows.to_dict("records")
        ]
        effects = me[me["factor"] == factor] if len(me) else me
        caption = "; ".join(
            f"{r['level']} vs {r['reference']}: {tables.fmt_signed(r['estimate'])} "
            f"{tables.fmt_ci(r['ci_low'], r['ci_high'])}, p {tables.fmt_p(r['p'])}"
            for r in effects.to_dict("records")
        )
        charts.append(
            {
                "id": f"effect-{i}",
                "title": f"Main effect: {factor}",
                "caption": (caption or "no estimate") + " (marginal means, 95% t-CI).",
                "svg": svg.effect_panel(points, y_label=m, label=factor, x_label=factor),
            }
        )
    return charts


def heatmap_charts(summary: Summary) -> list[dict]:
    cells = summary.interaction_cells
    if cells is None or cells.empty:
        return []
    charts = []
    inter = summary.interactions
    mm = summary.marginal_means
    levels = {f: mm.loc[mm["factor"] == f, "level"].astype(str).tolist() for f in summary.factors}
    for i, ((a, b), group) in enumerate(cells.groupby(["factor_a", "factor_b"], sort=False)):
        values = {
            (str(r["level_a"]), str(r["level_b"])): r["mean"] for r in group.to_dict("records")
        }
        tips = {
            (str(r["level_a"]), str(r["level_b"])): f"{a} = {r['level_a']}, {b} = {r['level_b']}: "
            f"{tables.fmt_pm(r['mean'], r['std'])} (n={int(r['n'])})"
            for r in group.to_dict("records")
        }
        terms = inter[(inter["factor_a"] == a) & (inter["factor_b"] == b)] if len(inter) else inter
        caption = "; ".join(
            f"interaction {r['level_a']} × {r['level_b']}: {tables.fmt_signed(r['estimate'])} "
            f"{tables.fmt_ci(r['ci_low'], r['ci_high'])}, p {tables.fmt_p(r['p'])}"
            for r in terms.to_dict("records")
        )
        charts.append(
            {
                "id": f"heatmap-{i}",
                "title": f"Interaction: {a} × {b}",
                "caption": (caption or "interaction not estimable with these trials")
                + f". Cells: mean {tables.metric_label(summary.metric)}.",
                "svg": svg.heatmap(
                    levels.get(a) or sorted({k[0] for k in values}),
                    levels.get(b) or sorted({k[1] for k in values}),
                    values,
                    tips,
                    row_label=a,
                    col_label=b,
                    label=f"{a} x {b}",
                    better_low=summary.mode == "min",
                ),
            }
        )
    return charts


def pareto_charts(summary: Summary) -> list[dict]:
    v = summary.variants
    m = summary.metric
    m_label = tables.metric_label(m)
    index = _colour_index(summary)
    charts = []
    for cost, x_label, scale in COSTS:
        col = f"{cost}.mean"
        if col not in v or f"{m}.mean" not in v or not v[col].notna().any():
            continue
        xs = v[col].to_numpy(float) * scale
        ys = v[f"{m}.mean"].to_numpy(float)
        front = pareto_front(xs, ys, y_mode=summary.mode)
        points = []
        for j, r in enumerate(v.to_dict("records")):
            tip = (
                f"{r['variant']}: {m_label} {tables.fmt_pm(r[f'{m}.mean'], r[f'{m}.std'])}, "
                f"{x_label} {tables.fmt(xs[j], 3)}" + (" (Pareto front)" if front[j] else "")
            )
            points.append(
                svg.Point(
                    r["variant"],
                    float(xs[j]),
                    float(ys[j]),
                    r.get(f"{m}.ci_low", np.nan),
                    r.get(f"{m}.ci_high", np.nan),
                    bool(front[j]),
                    index[r["variant"]],
                    tip,
                )  # fmt: skip
            )
        charts.append(
            {
                "id": f"pareto-{cost}",
                "title": f"{m_label} against {x_label}",
                "caption": "Per-variant means (bars: 95% t-CI over seeds); big dots joined by the "
                "step line form the Pareto front.",
                "svg": svg.pareto_scatter(points, x_label=x_label, y_label=m_label, label=cost),
            }
        )
    return charts


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


def dashboard_context(summary: Summary, runs: Any = None) -> dict:
    """Everything the template shows, as plain values."""
    v = summary.variants
    counts = {
        "trials": int(v["n_trials"].sum()) if len(v) else 0,
        "finished": int(v["n_finished"].sum()) if len(v) else 0,
        "stopped": int(v["n_stopped"].sum()) if len(v) else 0,
        "failed": int(v["n_failed"].sum()) if len(v) else 0,
        "other": int(v["n_other"].sum()) if len(v) else 0,
    }
    parent = getattr(runs, "parent", {}) or {}
    index = _colour_index(summary)
    legend = [
        {"name": name, "colour": svg.colour(i)[0], "dash": svg.colour(i)[1]}
        for name, i in index.items()
    ]
    sections = {s.key: s for s in tables.sections(summary)}

    def table(key: str) -> str:
        s = sections.get(key)
        return html_table(s.table, s.caption) if s else ""

    return {
        "study": summary.study,
        "metric": summary.metric,
        "metric_label": tables.metric_label(summary.metric),
        "mode": summary.mode,
        "baseline": summary.baseline,
        "design": parent.get("design") or "",
        "parent_run_id": parent.get("run_id") or "",
        "epoch": summary.epoch,
        "counts": counts,
        "legend": legend,
        "paper_table": html_table(tables.paper_table(summary), tables.paper_caption(summary)),
        "comparisons_table": table("comparisons"),
        "variants_table": table("variants"),
        "main_effects_table": table("main_effects"),
        "interactions_table": table("interactions"),
        "importance_table": table("importance"),
        "verdicts": tables.verdict_lines(summary),
        "notes": summary.notes,
        "curves": curve_charts(summary),
        "forest": forest_chart(summary),
        "effects": effect_charts(summary),
        "heatmaps": heatmap_charts(summary),
        "paretos": pareto_charts(summary),
        "trials": _trial_rows(summary),
    }


def render_dashboard(summary: Summary, runs: Any = None) -> str:
    """The dashboard page as one self-contained HTML string."""
    folder = template_dir()
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    assets = {
        name.replace(".", "_"): (folder / name).read_text(encoding="utf-8") for name in ASSETS
    }
    # Inline script text must not close its own <script> element.
    assets["dashboard_js"] = assets["dashboard_js"].replace("</", "<\\/")
    context = dashboard_context(summary, runs)
    return env.get_template(TEMPLATE).render(**context, **assets)


def write_dashboard(summary: Summary, runs: Any, output_dir: str | Path) -> Path:
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

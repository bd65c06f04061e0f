"""The summary written as md, csv, latex, html, json or parquet.

What each format holds:
- ``md``, ``html``: the whole report (the paper-style table, the comparisons with verdicts, the
  per-variant table, factor effects, interactions, Optuna importance, unfinished trials, notes);
  the HTML is one standalone page (inline CSS, no scripts, no network).
- ``latex``: a fragment of ``table`` environments using booktabs (the paper-style table, the
  comparisons, the main effects); ``\\input`` it from an ``article`` with
  ``\\usepackage{booktabs}``.
- ``csv``, ``parquet``: one table, one row per variant, raw numbers
  (`ablation.report.tables.variants_numeric`).
- ``json``: one object, numbers raw (NaN as null)::

    {"format": "ablation-report/1", "study", "metric", "mode", "baseline", "epoch", "alpha",
     "factors": [...], "notes": [...], "verdicts": [...lines...],
     "paper_table": [{"Description", "Params", "GFLOPs", "Top-1 err", "Top-5 err"}...],
     "variants": [...], "comparisons": [...], "marginal_means": [...], "main_effects": [...],
     "interactions": [...], "interaction_cells": [...], "importance": [...], "trials": [...],
     "decision": {"min_effect", "alpha", "power", "pilot_sd"} or null, "looks": [...],
     "plan": [...]}

  each list holding the records of the `Summary` frame of the same name (``trials`` is
  `Summary.values`: one row per trial at the analysed epoch, with status and error). In
  ``comparisons``, ``ci_low``/``ci_high`` is the one interval of the verdict, the one that
  decided it: ``ci_method`` names it (for ``equivalent`` the TOST interval, for better / worse
  the efficacy interval, for undecided the one it says) and ``ci_level`` is its confidence;
  ``reason`` and ``outlier_seeds`` (comma-separated) say why where the numbers alone do not
  ("" for none); ``decision`` better / worse / equivalent / undecided (null without a study
  ``decision``) and ``seeds_needed`` an integer for an undecided one (else null). The other
  interval columns (``tost_*``, ``boot_ci_*``) are raw ingredients, not the verdict's.
  ``marginal_means``, ``main_effects`` and ``interactions`` are estimates only, descriptive
  (`ablation.report.factorial.DESCRIPTIVE`): no interval, no p-value.
"""

from __future__ import annotations

import hashlib
import html
import io
import json
import math
import re
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
from pandas.io.formats.style import Styler
from pandas.io.formats.style_render import _escape_latex

from ablation.report import tables
from ablation.report.summary import Summary
from ablation.vocabulary.verdicts import DECISIONS

FORMATS = ("md", "csv", "latex", "html", "json", "parquet")
EXTENSIONS = {
    "md": "md",
    "csv": "csv",
    "latex": "tex",
    "html": "html",
    "json": "json",
    "parquet": "parquet",
}


def render(summary: Summary, fmt: str) -> str | bytes:
    """The report in one format: text, or bytes for parquet."""
    if fmt == "md":
        return to_markdown(summary)
    if fmt == "csv":
        return _counts_as_integers(tables.variants_numeric(summary)).to_csv(index=False)
    if fmt == "latex":
        return to_latex(summary)
    if fmt == "html":
        return to_html(summary)
    if fmt == "json":
        return json.dumps(to_json_data(summary), indent=2, allow_nan=False) + "\n"
    if fmt == "parquet":
        buf = io.BytesIO()
        _counts_as_integers(tables.variants_numeric(summary)).to_parquet(buf, index=False)
        return buf.getvalue()
    raise ValueError(f"unknown report format {fmt!r}; one of {', '.join(FORMATS)}")


# Counts that pandas holds as floats only because some rows have none (NaN): written as
# integers (null where absent), so a reader sees "6 seeds", never 6.0.
COUNT_COLUMNS = ("seeds_needed", "n_pairs", "n", "look")


def _is_count(column: str) -> bool:
    return column.rsplit(".", 1)[-1] in COUNT_COLUMNS


def _counts_as_integers(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with its whole-number count columns as nullable integers (``Int64``)."""
    out = frame.copy()
    for column in out.columns:
        if not _is_count(str(column)):
            continue
        try:  # a column of numbers (an object column of floats and None included)
            values = pd.to_numeric(out[column])
        except (TypeError, ValueError):
            continue  # text: left as it is
        whole = values.dropna()
        if (whole == whole.round()).all():
            out[column] = values.round().astype("Int64")
    return out


def write(summary: Summary, fmt: str, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = render(summary, fmt)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def write_all(summary: Summary, directory: str | Path, stem: str = "report") -> list[Path]:
    """Every format into ``directory`` as ``<stem>.<ext>``."""
    return [write(summary, f, Path(directory) / f"{stem}.{EXTENSIONS[f]}") for f in FORMATS]


# --- Markdown ---------------------------------------------------------------------------------


def to_markdown(summary: Summary) -> str:
    direction = summary.mode
    out = [
        f"# Ablation summary: {summary.study}",
        "",
        f"Metric: `{summary.metric}` ({direction}), baseline: `{summary.baseline}`.",
        "",
    ]
    if summary.partial:
        out += [f"> **{summary.partial}**", ""]
    for section in tables.sections(summary):
        out += [f"## {section.title}", "", tables.to_markdown(section.table), ""]
        if section.caption:
            out += [f"_{section.caption}_", ""]
    lines = tables.verdict_lines(summary)
    if lines:
        out += ["## Verdicts", ""] + [f"- {line}" for line in lines] + [""]
    if summary.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in summary.notes] + [""]
    return "\n".join(out)


def paper_markdown(summary: Summary) -> str:
    """Just the paper-style table and the verdicts: what `ablation run` prints at the end."""
    lines = [tables.to_markdown(tables.paper_table(summary)), "", tables.paper_caption(summary)]
    verdicts = tables.verdict_lines(summary)
    return "\n".join(lines + ([""] + verdicts if verdicts else []))


# --- LaTeX ------------------------------------------------------------------------------------

# Styler's escape="latex" handles & % $ # _ { } ~ ^ \; these are left to us: in body text with
# the default OT1 font encoding "<" would print as "¡" (p-values are "<0.001"), and the tables'
# few non-ASCII signs need math mode.
_LATEX_AFTER_ESCAPE = {
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
    tables.PM: r"$\pm$",
    "Δ": r"$\Delta$",
    "×": r"$\times$",
    "–": "--",
    "−": "-",
    "α": r"$\alpha$",
}


def _latex_signs(escaped: str) -> str:
    """What Styler's LaTeX escaping leaves: <, >, | and the non-ASCII signs of the tables."""
    out = "".join(_LATEX_AFTER_ESCAPE.get(ch, ch) for ch in str(escaped))
    # Anything else non-ASCII would need inputenc/fontenc luck: spell it out instead.
    return re.sub(r"[^\x00-\x7f]", "?", out)


def latex_escape(text: str) -> str:
    """Escape text for LaTeX body text (and map the few non-ASCII signs the tables use)."""
    return _latex_signs(_escape_latex(str(text)))


def latex_table(table: pd.DataFrame, caption: str, label: str) -> str:
    """One booktabs ``table`` environment through pandas' Styler, every cell escaped."""
    styler = (
        table.style.hide(axis="index")
        .format(escape="latex", formatter=_latex_signs)
        .format_index(escape="latex", formatter=_latex_signs, axis=1)
        .set_table_styles([{"selector": "small", "props": ":;"}])  # renders as \small
    )
    return styler.to_latex(
        column_format="l" + "r" * (len(table.columns) - 1),
        position="ht",
        position_float="centering",
        hrules=True,
        label=label,
        caption=latex_escape(caption),
        environment="table",
    ).rstrip("\n")


def to_latex(summary: Summary) -> str:
    """booktabs tables; the label prefix is the study name made label-safe."""
    prefix = "tab:" + re.sub(r"[^A-Za-z0-9]+", "-", summary.study or "study").strip("-")
    parts = [
        f"% Ablation summary of {latex_escape(summary.study)}: needs \\usepackage{{booktabs}}",
        latex_table(
            tables.paper_table(summary),
            f"{summary.study}: {tables.paper_caption(summary)}",
            f"{prefix}-summary",
        ),
    ]
    for section in tables.sections(summary):
        if section.key in ("comparisons", "main_effects", "interactions"):
            caption = f"{section.title}. {section.caption}"
            parts.append(latex_table(section.table, caption, f"{prefix}-{section.key}"))
    return "\n\n".join(parts) + "\n"


# --- HTML -------------------------------------------------------------------------------------

REPORT_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#222;
max-width:1200px;margin:1.5em auto;padding:0 1em}
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0;font-variant-numeric:tabular-nums}
th,td{padding:.3em .7em;text-align:right;border-bottom:1px solid #eee}
th{border-bottom:2px solid #444;background:#fafafa}
th:first-child,td:first-child{text-align:left}
caption{caption-side:bottom;text-align:left;color:#555;font-size:.9em;padding-top:.3em}
td.verdict{text-align:left}.verdict-better{color:#0072B2;font-weight:600}.verdict-worse{color:#D55E00;font-weight:600}
.verdict-equivalent{color:#007A5A;font-weight:600}.verdict-undecided{color:#8C5A00;font-weight:600}
td.text{text-align:left}
"""


# Columns of words, not numbers: left-aligned where numbers are right-aligned.
TEXT_COLUMNS = {"Interval is", "Reason", "Outlier seeds"}


def html_table(table: pd.DataFrame, caption: str = "") -> str:
    """An HTML table through pandas' Styler, cells escaped; verdict cells get a class so the
    dashboard can colour them."""
    classes = pd.DataFrame("", index=table.index, columns=table.columns)
    for column in TEXT_COLUMNS & set(table.columns):  # words read left to right
        classes[column] = "text"
    if "Verdict" in table.columns:
        classes["Verdict"] = [
            f"verdict verdict-{x}" if x in DECISIONS else "verdict" for x in table["Verdict"]
        ]
    # The table's id comes from its content, so a page with several tables has distinct ids and
    # the same summary renders to the same bytes.
    digest = hashlib.sha256(f"{caption}|{list(table.columns)}".encode()).hexdigest()[:8]
    styler = (
        Styler(table, uuid=digest, cell_ids=False)
        .hide(axis="index")
        .format(str, escape="html")
        .format_index(escape="html", axis=1)
        .set_td_classes(classes)
    )
    if caption:
        styler = styler.set_caption(html.escape(caption))
    # No cell is styled: drop the empty <style> block Styler writes before every table.
    return styler.to_html().replace('<style type="text/css">\n</style>\n', "")


def to_html(summary: Summary) -> str:
    title = f"Ablation summary: {summary.study}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{REPORT_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>Metric <code>{html.escape(summary.metric)}</code> ({summary.mode}), "
        f"baseline <code>{html.escape(str(summary.baseline))}</code>.</p>",
    ]
    for section in tables.sections(summary):
        parts.append(f"<h2>{html.escape(section.title)}</h2>")
        parts.append(html_table(section.table, section.caption))
    lines = tables.verdict_lines(summary)
    if lines:
        parts.append("<h2>Verdicts</h2><ul>")
        parts += [f"<li>{html.escape(line)}</li>" for line in lines]
        parts.append("</ul>")
    if summary.notes:
        parts.append("<h2>Notes</h2><ul>")
        parts += [f"<li>{html.escape(n)}</li>" for n in summary.notes]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


# --- JSON -------------------------------------------------------------------------------------


def _plain(x: object) -> object:
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if x is pd.NA or x is pd.NaT:
        return None
    return x


def _records(frame: pd.DataFrame | None) -> list[dict]:
    if frame is None or frame.empty:
        return []
    frame = _counts_as_integers(frame)
    frame = frame.astype(object).where(frame.notna(), None)
    return [_plain(r) for r in frame.to_dict("records")]


def to_json_data(summary: Summary) -> dict:
    return _plain(
        {
            "format": "ablation-report/1",
            "study": summary.study,
            "metric": summary.metric,
            "mode": summary.mode,
            "baseline": summary.baseline,
            "epoch": summary.epoch,
            "alpha": summary.alpha,
            "factors": list(summary.factors),
            "notes": list(summary.notes),
            "partial": summary.partial,
            "verdicts": tables.verdict_lines(summary),
            "paper_table": _records(tables.paper_table(summary)),
            "variants": _records(summary.variants),
            "comparisons": _records(summary.comparisons),
            "marginal_means": _records(summary.marginal_means),
            "main_effects": _records(summary.main_effects),
            "interactions": _records(summary.interactions),
            "interaction_cells": _records(summary.interaction_cells),
            "importance": _records(summary.importance),
            "trials": _records(summary.values),
            "decision": asdict(summary.decision) if summary.decision is not None else None,
            "looks": _records(summary.looks),
            "plan": _records(summary.plan),
        }
    )

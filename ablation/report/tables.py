"""The summary as tables: the paper-style table, the full tables, and the verdict lines.

Two kinds of table come out of a `Summary`: *numeric* frames (raw floats, machine-readable:
CSV, Parquet, JSON) and *display* frames (formatted strings: Markdown, LaTeX, HTML, the
dashboard). Both are built here so every format shows the same numbers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import pandas as pd

from ablation.report.factorial import DESCRIPTIVE
from ablation.report.summary import Summary
from ablation.vocabulary import metrics
from ablation.vocabulary.verdicts import BETTER, UNDECIDED, WORSE

PM = "±"  # the exporters swap this for their own notation (LaTeX: $\pm$)


def metric_label(metric: str) -> str:
    """How the report heads a metric (`ablation.vocabulary.metrics.Metric.label`)."""
    return metrics.label(metric)


# --- number formatting ------------------------------------------------------------------------


def _ok(x: object) -> bool:
    return x is not None and not (isinstance(x, float) and math.isnan(x)) and not pd.isna(x)


def fmt(x: object, digits: int = 2) -> str:
    return f"{float(x):.{digits}f}" if _ok(x) else "–"


def fmt_pm(mean: object, std: object, digits: int = 2) -> str:
    """``mean ± std``; just the mean when there is no spread to show (n < 2)."""
    if not _ok(mean):
        return "–"
    return (
        f"{float(mean):.{digits}f} {PM} {float(std):.{digits}f}" if _ok(std) else fmt(mean, digits)
    )


def fmt_ci(low: object, high: object, digits: int = 2) -> str:
    return f"[{float(low):.{digits}f}, {float(high):.{digits}f}]" if _ok(low) and _ok(high) else "–"


def fmt_p(p: object) -> str:
    if not _ok(p):
        return "–"
    p = float(p)
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def fmt_params(x: object) -> str:
    """Parameter count in millions, two decimals: ``25.56M``."""
    return f"{float(x) / 1e6:.2f}M" if _ok(x) else "–"


def fmt_signed(x: object, digits: int = 2) -> str:
    return f"{float(x):+.{digits}f}" if _ok(x) else "–"


def fmt_level(level: object) -> str:
    """A confidence as a percentage, one decimal only where it needs one: ``95%``, ``98.7%``."""
    if not _ok(level):
        return "–"
    pct = float(level) * 100
    return f"{pct:.0f}%" if abs(pct - round(pct)) < 0.05 else f"{pct:.1f}%"


# --- the tables -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """One titled table of the report, in display form, with an optional caption."""

    key: str
    title: str
    table: pd.DataFrame
    caption: str = ""


def paper_table(summary: Summary) -> pd.DataFrame:
    """Description | Params | GFLOPs | Top-1 err | Top-5 err, mean ± std over finished seeds."""
    rows = []
    for r in summary.variants.to_dict("records"):
        name = r["variant"] + (" (baseline)" if r["variant"] == summary.baseline else "")
        rows.append(
            {
                "Description": name,
                "Params": fmt_params(r.get("params.mean")),
                "GFLOPs": fmt(r.get("gflops.mean"), 3),
                "Top-1 err": fmt_pm(r.get("val_top1_error.mean"), r.get("val_top1_error.std")),
                "Top-5 err": fmt_pm(r.get("val_top5_error.mean"), r.get("val_top5_error.std")),
            }
        )
    return pd.DataFrame(rows, columns=["Description", "Params", "GFLOPs", "Top-1 err", "Top-5 err"])


def paper_caption(summary: Summary) -> str:
    v = summary.variants
    seeds = sorted(set(v["n_finished"])) if len(v) else [0]
    n = str(seeds[0]) if len(seeds) == 1 else f"{min(seeds)}–{max(seeds)}"
    epoch = f"epoch {summary.epoch}" if summary.epoch else "final epoch"
    return (
        f"Mean {PM} std over {n} finished seeds per variant ({epoch}); errors in percent; "
        "params in millions; GFLOPs count one multiply-add as one FLOP."
    )


def variants_numeric(summary: Summary) -> pd.DataFrame:
    """One row per variant: status counts, metric statistics and the comparison with the baseline.

    The table CSV and Parquet hold (raw numbers; columns ``<metric>.<n|mean|std|ci_low|ci_high>``
    and ``vs_baseline.<column of the comparisons table>``).
    """
    comp = summary.comparisons.drop(columns=["baseline", "metric"], errors="ignore")
    comp = comp.rename(columns={c: f"vs_baseline.{c}" for c in comp.columns if c != "variant"})
    out = summary.variants.merge(comp, on="variant", how="left")
    out.insert(1, "is_baseline", out["variant"] == summary.baseline)
    return out


def ci_label(level: object, method: object = "t") -> str:
    """What an interval is, at its level: ``98.7% CI (paired t at Holm's level)``, or, for a
    method that names itself an interval, ``90% TOST interval (equivalence)``."""
    name = str(method) if _ok(method) and str(method) else "t"
    head = f"{fmt_level(level)} " if _ok(level) else ""
    return f"{head}{name}" if "interval" in name.lower() else f"{head}CI ({name})"


def interval_of(row: Mapping[str, object]) -> str:
    """A comparison row's one interval, named: ``90% TOST interval (equivalence) [-0.8, 0.6]``.

    Always the row's own ``ci_low``/``ci_high``, ``ci_level`` and ``ci_method``: the interval
    that decided its verdict (`ablation.report.comparisons`); a page never recomputes one.
    """
    label = ci_label(row.get("ci_level"), row.get("ci_method"))
    return f"{label} {fmt_ci(row['ci_low'], row['ci_high'])}"


def plain_text(x: object) -> str:
    """A text cell of a frame (``reason``, ``outlier_seeds``): "" where it is missing."""
    return str(x) if _ok(x) else ""


def _sequential(summary: Summary) -> bool:
    return summary.looks is not None and not summary.looks.empty


def comparisons_display(summary: Summary) -> pd.DataFrame:
    """Display form of the comparisons: each verdict with the one interval that decided it.

    No second interval and no p-value the verdict was not read from: with sequential seeds the
    looks table holds each look's p; without, Holm's p is the one the test was decided at.
    """
    m = metric_label(summary.metric)
    decided = summary.decision is not None
    sequential = _sequential(summary)
    rows = []
    for r in summary.comparisons.to_dict("records"):
        row = {
            "Variant": r["variant"],
            "Pairs": int(r["n_pairs"]),
            f"Δ {m}": fmt_signed(r["mean_diff"]),
            "Interval": fmt_ci(r["ci_low"], r["ci_high"]),
            "Level": fmt_level(r["ci_level"]),
            "Interval is": plain_text(r.get("ci_method")) or "–",
        }
        if not sequential:
            row["p (Holm)"] = fmt_p(r["p_holm"])
        row["d_z"] = fmt(r["effect_dz"])
        row["Verdict"] = r["verdict"]
        row["Reason"] = plain_text(r.get("reason"))
        row["Outlier seeds"] = plain_text(r.get("outlier_seeds"))
        if decided:
            row["Seeds needed"] = fmt(r["seeds_needed"], 0)
        rows.append(row)
    out = pd.DataFrame(rows)
    comp = summary.comparisons
    for column in ("Reason", "Outlier seeds"):  # shown where some comparison has one
        if len(out) and (out[column] == "").all():
            out = out.drop(columns=column)
    if len(out) and "Seeds needed" in out and comp["seeds_needed"].isna().all():
        out = out.drop(columns="Seeds needed")
    return out


def looks_display(summary: Summary) -> pd.DataFrame:
    """How the sequential decisions were reached: one row per (look, comparison), each with
    the interval its decision was read from (`ablation.stats.sequential`: the TOST's where the
    look decided equivalent, else the efficacy interval), named and at the confidence it keeps
    over the repeated looks, so no row shows an interval its decision contradicts."""
    return pd.DataFrame(
        [
            {
                "Look": int(r["look"]),
                "Seeds": int(r["n"]),
                "Variant": r["variant"],
                "Δ": fmt_signed(r["mean_diff"]),
                "Interval": fmt_ci(r["ci_low"], r["ci_high"]),
                "Interval is": ci_label(r.get("ci_level"), r.get("ci_method")),
                "p (paired t)": fmt_p(r["p"]),
                "Tested at": tested_at(r.get("level")),
                "Decision": r["decision"],
            }
            for r in summary.looks.to_dict("records")
        ]
    )


def tested_at(level: object) -> str:
    """The nominal level a look's p was compared with ("p < 0.0123"); a p is read against
    it, not against alpha. "–" where the look had none (the comparison was not tested)."""
    if not _ok(level):
        return "–"
    if float(level) <= 0:
        return "not tested (no alpha spent)"
    return f"p < {float(level):.3g}"


def plan_display(summary: Summary) -> pd.DataFrame:
    """The seeds each comparison would need (the report's `plan` section)."""
    plan = summary.plan
    if plan is None or plan.empty:
        return pd.DataFrame()
    return pd.DataFrame(
        [
            {
                "Variant": r["variant"],
                "Paired sd": fmt(r["sd"]),
                "Seeds needed": fmt(r["seeds_needed"], 0),
                "Seeds now": fmt(r["n_pairs"], 0),
            }
            for r in plan.to_dict("records")
        ]
    )


def variants_display(summary: Summary) -> pd.DataFrame:
    m = summary.metric
    rows = []
    for r in summary.variants.to_dict("records"):
        rows.append(
            {
                "Variant": r["variant"],
                "Trials": r["n_trials"],
                "Finished": r["n_finished"],
                "Stopped": r["n_stopped"],
                "Failed": r["n_failed"],
                "Other": r["n_other"],
                f"{metric_label(m)}": fmt_pm(r.get(f"{m}.mean"), r.get(f"{m}.std")),
                "95% CI (t)": fmt_ci(r.get(f"{m}.ci_low"), r.get(f"{m}.ci_high")),
                metric_label("params"): fmt_params(r.get("params.mean")),
                metric_label("gflops"): fmt(r.get("gflops.mean"), 3),
                metric_label("latency_ms"): fmt_pm(
                    r.get("latency_ms.mean"), r.get("latency_ms.std")
                ),
                # Did it learn? (report/variants.py; the notes say why not)
                "Learned": {True: "yes", False: "NO"}.get(r.get("learned"), "–"),
            }
        )
    return pd.DataFrame(rows)


# The factor tables are estimates only (`ablation.report.factorial.DESCRIPTIVE`): the
# verdicts above answer "is it better"; these say by about how much, and carry no interval or
# p-value that could answer it a second time.


def main_effects_display(summary: Summary) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Factor": r["factor"],
                "Level (vs reference)": f"{r['level']} (vs {r['reference']})",
                "Effect (estimate)": fmt_signed(r["estimate"]),
                "Trials": r["n"],
            }
            for r in summary.main_effects.to_dict("records")
        ]
    )


def marginal_means_display(summary: Summary) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Factor": r["factor"],
                "Level": r["level"],
                "Trials": r["n"],
                f"Mean {PM} std": fmt_pm(r["mean"], r["std"]),
            }
            for r in summary.marginal_means.to_dict("records")
        ]
    )


def interactions_display(summary: Summary) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Factors": f"{r['factor_a']} × {r['factor_b']}",
                "Levels": f"{r['level_a']} × {r['level_b']}",
                "Interaction (estimate)": fmt_signed(r["estimate"]),
                "Trials": r["n"],
            }
            for r in summary.interactions.to_dict("records")
        ]
    )


def importance_display(summary: Summary) -> pd.DataFrame:
    imp = summary.importance
    if imp is None or imp.empty:
        return pd.DataFrame()
    return pd.DataFrame(
        {"Parameter": imp["param"], "Importance": [fmt(x, 3) for x in imp["importance"]]}
    )


def trials_display(summary: Summary, *, only_unfinished: bool = False) -> pd.DataFrame:
    v = summary.values
    if only_unfinished:
        v = v[v["status"] != "FINISHED"]
    m = summary.metric
    rows = []
    for r in v.to_dict("records"):
        error = r.get("error")
        rows.append(
            {
                "Variant": r["variant"],
                "Seed": r["seed"],
                "Status": r["status"],
                "Epochs": fmt(r.get("epochs_completed"), 0),
                metric_label(m): fmt(r.get(m)),
                "Error": (error.strip().splitlines() or [""])[-1][:160]
                if isinstance(error, str)
                else "",
            }
        )
    return pd.DataFrame(rows)


def sections(summary: Summary) -> list[Section]:
    """The report's tables in reading order (empty ones left out)."""
    m = metric_label(summary.metric)
    direction = summary.mode.phrase
    out = [
        Section("paper", "Summary", paper_table(summary), paper_caption(summary)),
        Section(
            "comparisons",
            f"Against the baseline ({summary.baseline})",
            comparisons_display(summary),
            comparisons_caption(summary, m, direction),
        ),
        Section(
            "looks",
            "How the decisions were reached (sequential seeds)",
            looks_display(summary),
            "Each look tests the comparisons still open at its group-sequential level (alpha "
            "spent over the planned looks, Holm's share passed on when one is decided); a "
            "decided comparison takes no more seeds. A look's interval is its paired "
            "t-interval at the look's level; the look that decided a comparison equivalent "
            "shows the interval that decided it.",
        ),
        Section(
            "plan",
            "Plan: seeds each comparison needs",
            plan_display(summary),
            plan_caption(summary),
        ),
        Section(
            "variants",
            "Per variant",
            variants_display(summary),
            "Statistics over FINISHED trials only; stopped, failed and other trials counted. "
            "The 95% CI is each variant's own mean's; whether a variant differs from the "
            "baseline is its paired verdict above, not whether these overlap.",
        ),
        Section(
            "main_effects",
            "Main effects per factor (descriptive)",
            main_effects_display(summary),
            f"{DESCRIPTIVE[0].upper()}{DESCRIPTIVE[1:]}. Estimates of OLS {summary.metric} ~ "
            "factors + seed (block): each level against the factor's reference level, pooled "
            "over the other factors; no interval or p-value. Whether a variant is better is "
            "its verdict against the baseline.",
        ),
        Section(
            "marginal_means",
            "Marginal means per factor level (descriptive)",
            marginal_means_display(summary),
            f"{DESCRIPTIVE[0].upper()}{DESCRIPTIVE[1:]}. Mean {PM} std of the finished trials "
            "at each level, whatever the other factors were.",
        ),
        Section(
            "interactions",
            "Two-factor interactions (descriptive)",
            interactions_display(summary),
            f"{DESCRIPTIVE[0].upper()}{DESCRIPTIVE[1:]}. Estimates of OLS with a × b + other "
            "factors + seed: difference-in-differences against both reference levels; no "
            "interval or p-value.",
        ),
        Section(
            "importance",
            "Optuna parameter importance (secondary view)",
            importance_display(summary),
        ),
        Section(
            "unfinished",
            "Trials not finished",
            trials_display(summary, only_unfinished=True),
            "Not in any statistic above.",
        ),
    ]
    return [s for s in out if not s.table.empty]


def comparisons_caption(summary: Summary, m: str, direction: str) -> str:
    n = len(summary.comparisons)
    text = (
        f"Δ = variant − baseline in {m} ({direction}), paired by seed. One interval per "
        "verdict, the one that decided it (Interval is: its method, at Level): better or "
        f"worse, the paired t-interval at the level the test was decided at (Holm across {n} "
        f"comparisons, α = {summary.alpha}), which excludes 0."
    )
    d = summary.decision
    if d is not None:
        text += (
            f" Verdicts against min_effect = {d.min_effect:g}: equivalent when the TOST "
            f"interval lies inside ±{d.min_effect:g} (α = {d.alpha}), and that interval is "
            f"shown; undecided shows the interval its method names, with the seeds a power of "
            f"{d.power:g} at min_effect needs."
        )
    if _sequential(summary):
        text += " Sequential seeds: intervals and verdicts are those of the deciding look."
    return text


def plan_caption(summary: Summary) -> str:
    d = summary.decision
    if d is None:
        return ""
    return (
        f"Seeds per variant for power {d.power:g} to detect min_effect = {d.min_effect:g} with "
        f"the two-sided paired t-test at α / m (Holm's first step), from each comparison's "
        "observed paired sd."
    )


def verdict_notes(r: Mapping[str, object]) -> str:
    """The verdict's reason and outlier seeds, where the row has them."""
    out = ""
    if plain_text(r.get("reason")):
        out += f" ({r['reason']})"
    if plain_text(r.get("outlier_seeds")):
        out += f"; outlier seeds: {r['outlier_seeds']}"
    return out


def verdict_line(summary: Summary, r: Mapping[str, object]) -> str:
    """One comparison's line: its verdict with the one interval that decided it, named and at
    its level, and its reason and outlier seeds. The effect plot's tooltip says the same."""
    if r["n_pairs"] < 2:
        return (
            f"{r['variant']} vs {r['baseline']}: {r['verdict']} ({r['n_pairs']} pair)"
            f"{verdict_notes(r)}"
        )
    needs = ""
    if r.get("decision") == UNDECIDED and _ok(r.get("seeds_needed")):
        needs = f"; needs about {int(r['seeds_needed'])} seeds (the fixed-n plan at its paired sd)"
    d = summary.decision
    if (
        d is not None
        and r.get("decision") in (BETTER, WORSE)
        and -d.min_effect < r["ci_low"] <= r["ci_high"] < d.min_effect
    ):  # real, but smaller than what the researcher said matters
        m = f"{d.min_effect:g}"
        needs = f", by less than min_effect {m} (the interval lies inside ±{m})"
    # Holm's p decides a fixed-n comparison; a sequential one is decided at its look's level
    # (the looks table), where the fixed-n p would be a second, contradicting answer.
    p = "" if _sequential(summary) else f"p_holm {fmt_p(r['p_holm'])}, "
    return (
        f"{r['variant']} vs {r['baseline']}: Δ {summary.metric} {fmt_signed(r['mean_diff'])} "
        f"({interval_of(r)}; {p}d_z {fmt(r['effect_dz'])}, n={r['n_pairs']}): "
        f"{r['verdict']}{needs}{verdict_notes(r)}"
    )


def verdict_lines(summary: Summary) -> list[str]:
    """One plain line per comparison (`verdict_line`), as `ablation run` prints at the end,
    then the trials left out of the statistics."""
    lines = [verdict_line(summary, r) for r in summary.comparisons.to_dict("records")]
    _mark_unlearned(summary, lines)
    counts = summary.variants[["n_stopped", "n_failed", "n_other"]].sum()
    if counts.sum():
        lines.append(
            f"not in the statistics: {int(counts['n_failed'])} failed, "
            f"{int(counts['n_stopped'])} stopped, {int(counts['n_other'])} other trials"
        )
    return lines


def _mark_unlearned(summary: Summary, lines: list[str]) -> None:
    """Mark each comparison's line (one per comparison, in order) whose variant or baseline
    did not learn (report/variants.py `did_it_learn`): its verdict says nothing about the
    architecture."""
    v = summary.variants
    unlearned = set(v.loc[v["learned"].eq(False), "variant"]) if "learned" in v else set()
    for i, r in enumerate(summary.comparisons.to_dict("records")):
        stuck = [x for x in (r["variant"], r["baseline"]) if x in unlearned]
        if stuck:
            lines[i] += (
                f" [did not learn: {' and '.join(stuck)}; this comparison says nothing about "
                "the architecture]"
            )


def to_markdown(table: pd.DataFrame, escape: Callable[[str], str] = lambda s: s) -> str:
    """A GitHub-flavoured Markdown table (no tabulate dependency)."""
    cols = [escape(str(c)) for c in table.columns]
    cells = [[escape(str(x)).replace("|", "\\|") for x in row] for row in table.to_numpy()]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)

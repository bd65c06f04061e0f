"""One interval per verdict on every page (issue 22): the terminal line, md, html, LaTeX, JSON,
CSV, Parquet and the effect plot show each comparison's own interval (the one that decided its
verdict, named with its method and level), its reason and outlier seeds; the factor tables are
descriptive, with no interval or p-value that could answer the question a second time."""

from __future__ import annotations

import html
import io
import json
import re

import pandas as pd
import pytest
from matplotlib.colors import to_hex
from pooling_study import pooling_summary
from verdict_study import MIN_EFFECT, as_decided, verdict_frames, verdict_summary

from ablation.report import export, figures, tables
from ablation.report.comparisons import CI_TOST
from ablation.report.factorial import DESCRIPTIVE
from ablation.report.summary import Summary, summarize
from ablation.vocabulary.verdicts import BETTER, EQUIVALENT, UNDECIDED

INTERVAL = re.compile(r"\[-?\d+\.\d+, -?\d+\.\d+\]")


@pytest.fixture(scope="module")
def decided() -> Summary:
    return verdict_summary()


@pytest.fixture(scope="module")
def rows(decided) -> dict[str, dict]:
    return {r["variant"]: r for r in decided.comparisons.to_dict("records")}


def test_the_planted_study_has_one_comparison_of_each_kind(rows):
    assert {v: r["verdict"] for v, r in rows.items()} == {
        "big": BETTER,
        "same": EQUIVALENT,
        "noisy": UNDECIDED,
    }
    assert rows["same"]["ci_method"] == CI_TOST
    # The case the issue reports: the undecided row's efficacy interval reaches past the band.
    assert rows["noisy"]["ci_high"] > MIN_EFFECT


def test_verdict_line_names_the_one_interval_and_its_reason(decided, rows):
    lines = {x.split(" vs ")[0]: x for x in tables.verdict_lines(decided)}
    assert set(lines) == set(rows)
    for v, r in rows.items():
        line = lines[v]
        assert tables.interval_of(r) in line
        assert INTERVAL.findall(line) == [tables.fmt_ci(r["ci_low"], r["ci_high"])]
        assert "bootstrap" not in line
    assert "90% TOST interval (equivalence) [" in lines["same"]
    assert lines["same"].endswith(": equivalent")
    assert "98.3% CI (paired t at Holm's level) [" in lines["big"]
    assert lines["noisy"].endswith(
        "undecided; needs about 76 seeds (the fixed-n plan at its paired sd) "
        "(planted reason: seed 4 diverged); outlier seeds: 4"
    )


def _comparison_rows_md(md: str) -> dict[str, dict[str, str]]:
    """The comparisons table of the Markdown report: variant -> {column: cell}."""
    section = md.split("## Against the baseline")[1].split("\n## ")[0]
    table = [line for line in section.splitlines() if line.startswith("|")]
    head = [c.strip() for c in table[0].strip("|").split("|")]
    out = {}
    for line in table[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        out[cells[0]] = dict(zip(head, cells, strict=True))
    return out


def test_markdown_and_html_tables_show_the_verdicts_interval_only(decided, rows):
    md = export.render(decided, "md")
    table = _comparison_rows_md(md)
    for v, r in rows.items():
        cells = table[v]
        assert cells["Interval"] == tables.fmt_ci(r["ci_low"], r["ci_high"])
        assert cells["Level"] == tables.fmt_level(r["ci_level"])
        assert cells["Interval is"] == r["ci_method"]
        assert cells["Verdict"] == r["verdict"]
        # One interval in the row, and only the p-value the verdict was decided at.
        assert INTERVAL.findall("|".join(cells.values())) == [cells["Interval"]]
        assert [k for k in cells if k.startswith("p")] == ["p (Holm)"]
    assert table["noisy"]["Reason"] == "planted reason: seed 4 diverged"
    assert table["noisy"]["Outlier seeds"] == "4"
    assert table["big"]["Reason"] == table["big"]["Outlier seeds"] == ""

    page = export.render(decided, "html")
    for verdict in (BETTER, EQUIVALENT, UNDECIDED):
        assert re.search(rf'<td class="[^"]* verdict verdict-{verdict}" >{verdict}</td>', page)
    for r in rows.values():
        assert html.escape(tables.verdict_line(decided, r)) in page


def test_latex_comparisons_table_shows_method_and_level(decided, rows):
    tex = export.render(decided, "latex")
    block = next(t for t in tex.split(r"\begin{table}") if "tab:verdicts-comparisons" in t)
    assert "Interval is" in block and "TOST interval (equivalence)" in block
    assert "BCa" not in block and "p (paired t)" not in block
    for r in rows.values():
        assert tables.fmt_ci(r["ci_low"], r["ci_high"]).replace("–", "--") in block


def test_json_names_the_interval_and_counts_are_integers(decided, rows):
    data = json.loads(export.render(decided, "json"))
    for c in data["comparisons"]:
        r = rows[c["variant"]]
        assert (c["ci_low"], c["ci_high"]) == pytest.approx((r["ci_low"], r["ci_high"]))
        assert c["ci_method"] == r["ci_method"] and c["ci_level"] == pytest.approx(r["ci_level"])
        assert isinstance(c["n_pairs"], int)
    by = {c["variant"]: c for c in data["comparisons"]}
    assert by["noisy"]["seeds_needed"] == 76 and isinstance(by["noisy"]["seeds_needed"], int)
    assert by["big"]["seeds_needed"] is None
    assert by["same"]["ci_method"] == CI_TOST and by["same"]["ci_level"] == pytest.approx(0.9)
    assert (by["noisy"]["reason"], by["noisy"]["outlier_seeds"]) == (
        "planted reason: seed 4 diverged",
        "4",
    )
    assert all(isinstance(p["seeds_needed"], int) for p in data["plan"])
    assert '"seeds_needed": 76.0' not in export.render(decided, "json")


def test_csv_and_parquet_carry_the_interval_method_and_integer_seeds(decided, rows):
    text = {"vs_baseline.outlier_seeds": str, "vs_baseline.reason": str}
    csv = pd.read_csv(io.StringIO(export.render(decided, "csv")), dtype=text)
    parquet = pd.read_parquet(io.BytesIO(export.render(decided, "parquet")))
    for frame in (csv, parquet):
        by = frame.set_index("variant")
        for v, r in rows.items():
            assert by.loc[v, "vs_baseline.ci_method"] == r["ci_method"]
            assert by.loc[v, "vs_baseline.ci_low"] == pytest.approx(r["ci_low"])
            assert by.loc[v, "vs_baseline.ci_level"] == pytest.approx(r["ci_level"])
        assert by.loc["noisy", "vs_baseline.seeds_needed"] == 76
        assert by.loc["noisy", "vs_baseline.outlier_seeds"] == "4"
    assert str(parquet["vs_baseline.seeds_needed"].dtype) == "Int64"
    assert ",76," in export.render(decided, "csv")


def test_effect_plot_colours_each_verdict_and_keeps_equivalent_inside_the_band(decided, rows):
    fig = figures.effect_figure(decided)
    ax = fig.axes[0]
    bars = {m.variant: fig.marks[gid] for gid, m in fig.marks.items() if "interval" in m.kind}
    assert set(bars) == set(rows)
    colours = {}
    for coll in ax.collections:
        mark = fig.marks.get(coll.get_gid())
        if mark is None or "interval" not in mark.kind:
            continue
        r = rows[mark.variant]
        (a, _), (b, _) = coll.get_segments()[0]
        assert (a, b) == pytest.approx((r["ci_low"], r["ci_high"]))
        colours[r["verdict"]] = to_hex(coll.get_color()[0])
        if r["verdict"] == EQUIVALENT:
            assert -MIN_EFFECT < a <= b < MIN_EFFECT
        if r["verdict"] == BETTER:
            assert b < 0
    assert len(set(colours.values())) == 3  # better, equivalent, undecided: three colours
    assert colours[EQUIVALENT] == figures.verdict_colour(EQUIVALENT).lower()
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "equivalent: 90% TOST interval (equivalence)" in legend
    assert "better: 98.3% CI (paired t at Holm's level)" in legend
    assert "undecided: 97.5% CI (paired t at Holm's level)" in legend
    assert f"±min_effect {MIN_EFFECT:g} (equivalence band)" in legend


def test_the_look_that_decided_equivalence_shows_the_tost_interval(rows):
    seq = as_decided(
        summarize(
            verdict_frames(),
            baseline="base",
            study="seq",
            decision={"min_effect": MIN_EFFECT},
            sequential_seeds=(3, 6),
            n_resamples=99,
        )
    )
    looks = tables.looks_display(seq)
    same = looks[looks["Variant"] == "same"].iloc[-1]
    r = seq.comparisons.set_index("variant").loc["same"]
    assert same["Decision"] == EQUIVALENT
    assert same["Interval"] == tables.fmt_ci(r["ci_low"], r["ci_high"])
    assert same["Interval is"] == "90% TOST interval (equivalence)"
    # Sequential: the verdict was read at the look's level, so no fixed-n Holm p beside it.
    assert "p (Holm)" not in tables.comparisons_display(seq)
    assert all("p_holm" not in line for line in tables.verdict_lines(seq))


# --- the factor tables: descriptive, on every page ---------------------------------------------


@pytest.fixture(scope="module")
def factorial(synthetic_study_frames) -> Summary:
    return pooling_summary(synthetic_study_frames, study="factorial", n_resamples=99)


def test_factor_frames_hold_estimates_only(factorial):
    assert len(factorial.main_effects) and len(factorial.interactions)
    for frame in (factorial.main_effects, factorial.marginal_means, factorial.interactions):
        assert not {"ci_low", "ci_high", "p", "p_factor", "p_interaction"} & set(frame.columns)


def test_every_page_labels_the_factor_tables_descriptive(factorial):
    label = DESCRIPTIVE
    md = export.render(factorial, "md")
    page = export.render(factorial, "html")
    tex = export.render(factorial, "latex")
    for key in ("Main effects per factor", "Marginal means per factor level", "Two-factor"):
        section = md.split(f"## {key}")[1].split("\n## ")[0]
        assert label in section.lower()
        assert INTERVAL.findall(section) == [] and "| p" not in section
    assert page.lower().count(label) >= 3
    assert tex.lower().count(label) >= 2
    data = json.loads(export.render(factorial, "json"))
    assert all(
        set(r) == {"factor", "level", "reference", "estimate", "n"} for r in data["main_effects"]
    )
    captions = {c.name: c.caption for c in figures.charts(factorial)}
    assert all(label in captions[n] for n in captions if n.startswith(("effect-", "heatmap-")))
    assert all(not INTERVAL.search(captions[n]) for n in captions if n.startswith("effect-"))

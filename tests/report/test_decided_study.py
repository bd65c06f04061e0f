"""A study with a declared decision and sequential seeds, through the report's formats."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from helpers import paired_study
from matplotlib.colors import to_hex

from ablation.dashboard import render_dashboard
from ablation.report import export, figures, tables
from ablation.report.comparisons import CI_SEQUENTIAL, CI_TOST
from ablation.report.summary import Summary, summarize
from ablation.stats import Decision, looks
from ablation.stats.sequential import SequentialPlan


@pytest.fixture(scope="module")
def decided() -> Summary:
    return summarize(
        paired_study({"big": -4.0, "none": 0.0, "small": -0.4}, 12),
        baseline="base",
        study="decided",
        decision={"min_effect": 1.0, "alpha": 0.05, "power": 0.8},
        sequential_seeds=(3, 12),
        n_resamples=99,
    )


def test_sequential_report_is_the_replay_the_driver_decides_with(decided):
    c = decided.comparisons.set_index("variant")
    assert c.loc["big", "decision"] == "better"
    assert set(c.decision) <= {"better", "worse", "equivalent", "undecided"}
    # The interval that decided: the TOST's for equivalent, the look's efficacy one otherwise.
    assert (c.ci_method == np.where(c.decision == "equivalent", CI_TOST, CI_SEQUENTIAL)).all()
    # The same numbers as the pure function, from the same paired values.
    v = decided.values.pivot(index="seed", columns="variant", values="val_top1_error")
    diffs = {k: (v[k] - v["base"]).to_numpy() for k in ("big", "none", "small")}
    final = {}
    for look in looks(SequentialPlan(3, 12, Decision(1.0)), diffs):
        final.update(look.comparisons)
    for k, r in final.items():
        assert c.loc[k, "decision"] == r.decision
        assert c.loc[k, "ci_low"] == pytest.approx(r.ci_low)
    # "big" is decided early and takes no part in later looks; the looks start at `start`.
    big = decided.looks[decided.looks.variant == "big"]
    assert big.decision.tolist()[-1] == "better" and set(big.decision[:-1]) <= {"continue"}
    assert len(big) < (decided.looks.variant == "none").sum()
    assert decided.looks.n.min() == 3


def test_sequential_rows_carry_the_deciding_look_not_the_fixed_n_answer(decided):
    """n, means and d_z of the look that decided; no fixed-n p or significance beside it (the
    looks table holds each look's p with the level it was tested at)."""
    c = decided.comparisons.set_index("variant")
    last = decided.looks.groupby("variant").tail(1).set_index("variant")
    v = decided.values.pivot(index="seed", columns="variant", values="val_top1_error")
    for k in ("big", "none", "small"):
        n = int(last.loc[k, "n"])
        d = (v[k] - v["base"]).to_numpy()[:n]
        assert c.loc[k, "n_pairs"] == n and c.loc[k, "mean_diff"] == pytest.approx(d.mean())
        assert c.loc[k, "effect_dz"] == pytest.approx(d.mean() / d.std(ddof=1))
        assert c.loc[k, "mean_diff"] == pytest.approx(last.loc[k, "mean_diff"])
    assert int(last.loc["big", "n"]) < 12  # decided early: its row is not all 12 seeds'
    for column in ("t", "p_t", "p_wilcoxon", "p_holm", "tost_low", "boot_ci_low"):
        assert c[column].isna().all(), column
    assert c["significant"].isna().all()
    for r in json.loads(export.render(decided, "json"))["comparisons"]:
        assert r["p_holm"] is None and r["significant"] is None and r["p_t"] is None
    shown = tables.looks_display(decided)
    for row, (_, look) in zip(shown.to_dict("records"), decided.looks.iterrows(), strict=True):
        assert row["Tested at"] == (
            f"p < {look['level']:.3g}" if look["level"] > 0 else "not tested (no alpha spent)"
        )
    assert shown["Tested at"].str.startswith("p < ").any()


def test_json_names_the_headline_and_the_decision(decided):
    data = json.loads(export.render(decided, "json"))
    assert data["decision"]["min_effect"] == 1.0
    assert {r["decision"] for r in data["comparisons"]} <= {
        "better",
        "worse",
        "equivalent",
        "undecided",
    }
    assert all(
        r["ci_method"] == (CI_TOST if r["decision"] == "equivalent" else CI_SEQUENTIAL)
        for r in data["comparisons"]
    )
    assert data["looks"] and data["plan"]
    md = export.render(decided, "md")
    assert "How the decisions were reached" in md and "min_effect = 1" in md
    page = render_dashboard(decided)
    assert "How the decision was reached" in page


def test_verdict_headline_interval_and_plot_agree(decided):
    """The effect plot's thick bar is the headline interval, coloured by the verdict."""
    rows = decided.comparisons.to_dict("records")
    fig = figures.effect_figure(decided)
    bars = [c for c in fig.axes[0].collections if c.get_linewidth()[0] == 4.5]
    assert len(bars) == len(rows)
    for bar in bars:
        (a, y), (b, _) = bar.get_segments()[0]
        r = rows[len(rows) - 1 - round(y)]
        assert (a, b) == pytest.approx((r["ci_low"], r["ci_high"]))
        excludes_zero = a > 0 or b < 0
        assert excludes_zero == (r["verdict"] in ("better", "worse"))
        assert to_hex(bar.get_color()[0]) == figures.verdict_colour(r["verdict"]).lower()
    for line, r in zip(tables.verdict_lines(decided), rows, strict=False):
        assert tables.fmt_ci(r["ci_low"], r["ci_high"]) in line and r["verdict"] in line


def test_a_real_difference_smaller_than_min_effect_says_so():
    """Significant, but the whole interval inside +-min_effect: the verdict line says both;
    an effect beyond min_effect gets the plain verdict."""
    rng = np.random.default_rng(3)
    base = rng.normal(13, 1, 5)
    rows = [
        {
            "trial_id": f"{v}-{s}",
            "variant": v,
            "seed": s,
            "status": "FINISHED",
            "val_top1_error": base[s] + shift + rng.normal(0, 0.05),
        }
        for v, shift in (("base", 0.0), ("slight", 0.9), ("clear", 4.0))
        for s in range(5)
    ]
    summary = summarize(
        pd.DataFrame(rows),
        baseline="base",
        study="slight",
        decision={"min_effect": 2.0},
        n_resamples=99,
    )
    c = summary.comparisons.set_index("variant")
    assert c.loc["slight", "decision"] == c.loc["clear", "decision"] == "worse"
    lines = {x.split(" vs ")[0]: x for x in tables.verdict_lines(summary)}
    assert lines["slight"].endswith(
        "worse, by less than min_effect 2 (the interval lies inside ±2)"
    )
    assert lines["clear"].endswith(": worse")

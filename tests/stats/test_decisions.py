"""Three-way decisions and seeds for a power, by simulation (seeded, vectorised)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from helpers import paired_study
from scipy import stats as sps

from ablation.report.summary import summarize
from ablation.stats import Decision, seeds_for_power
from ablation.stats.decide import decide, power_paired_t, seeds_needed
from ablation.stats.sequential import SequentialPlan, looks
from ablation.vocabulary.direction import Direction
from ablation.vocabulary.verdicts import BETTER, EQUIVALENT, NO_DIFFERENCE, UNDECIDED, WORSE

STUDIES = 20000


def _tost(x: np.ndarray, margin: float, alpha: float) -> np.ndarray:
    n = x.shape[1]
    half = sps.t.ppf(1 - alpha, n - 1) * x.std(axis=1, ddof=1) / np.sqrt(n)
    m = x.mean(axis=1)
    return (m - half > -margin) & (m + half < margin)


@pytest.mark.parametrize("n", [3, 5, 10, 20])
def test_equivalence_never_declared_beyond_min_effect_more_than_alpha(n):
    rng = np.random.default_rng(n)
    for effect in (1.0, 1.5, -1.0):
        x = rng.normal(effect, 1.0, (STUDIES, n))
        assert _tost(x, 1.0, 0.05).mean() <= 0.05 + 0.005


def test_equivalence_declared_for_no_effect_at_the_planned_rate():
    # TOST power for a true 0 with sd 1, margin 1, n 10: about 0.8 (the stated rate).
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 1.0, (STUDIES, 10))
    rate = _tost(x, 1.0, 0.05).mean()
    assert 0.70 <= rate <= 0.90


def test_seeds_for_power_reaches_the_power():
    for sd, effect, alpha in ((1.0, 1.0, 0.05), (1.0, 2.0, 0.05 / 3), (2.5, 1.0, 0.05)):
        n = seeds_for_power(sd, effect, alpha=alpha, power=0.8)
        assert (
            power_paired_t(n, sd, effect, alpha) >= 0.8 > power_paired_t(n - 1, sd, effect, alpha)
        )
        rng = np.random.default_rng(n)
        x = rng.normal(effect, sd, (STUDIES, n))
        p = 2 * sps.t.sf(np.abs(x.mean(1) / (x.std(1, ddof=1) / np.sqrt(n))), n - 1)
        assert np.mean(p < alpha) == pytest.approx(
            float(power_paired_t(n, sd, effect, alpha)), abs=0.02
        )


def _study(effects: dict[str, float], n: int, seed: int) -> pd.DataFrame:
    return paired_study(effects, n, seed, metric="m")


def test_report_decisions_with_a_declared_min_effect():
    d = Decision(min_effect=1.0)
    trials = _study({"big": -4.0, "none": 0.0, "small": -0.3}, 30, 0)
    s = summarize(trials, metric="m", baseline="base", decision=d)
    c = s.comparisons.set_index("variant")
    assert c.loc["big", "decision"] == BETTER == c.loc["big", "verdict"]
    assert c.loc["none", "decision"] == EQUIVALENT
    assert c.decision.isin(["better", "worse", "equivalent", "undecided"]).all()
    assert not s.plan.empty and (s.plan.seeds_needed >= 2).all()
    # Too few seeds: undecided, with the seeds it would need.
    s = summarize(_study({"x": -0.5}, 3, 1), metric="m", baseline="base", decision=d)
    r = s.comparisons.iloc[0]
    assert r.decision == UNDECIDED and r.seeds_needed > 3
    # The seeds plan and an undecided comparison plan through the same function.
    assert s.plan.seeds_needed.iloc[0] == r.seeds_needed


def test_without_decision_verdicts_stay_as_today():
    trials = _study({"none": 0.0}, 5, 2)
    c = summarize(trials, metric="m", baseline="base").comparisons.iloc[0]
    assert c.decision is None and np.isnan(c.seeds_needed)
    assert c.verdict in (NO_DIFFERENCE, BETTER, WORSE)


def test_a_sequential_plan_reads_the_study_files_mode_as_a_direction():
    plan = SequentialPlan(2, 4, Decision(1.0), mode="max")
    assert plan.mode is Direction.MAX and plan.mode == "max"
    with pytest.raises(ValueError, match="metric mode"):
        SequentialPlan(2, 4, Decision(1.0), mode="lowest")


def test_an_undecided_comparison_never_needs_the_seeds_it_already_has():
    """The fixed-n plan at the observed sd can come out at or below the seeds run (a small
    observed sd, the mean between the bands): the answer is then n + 1, never <= n."""
    d = Decision(min_effect=1.0)
    rng = np.random.default_rng(6)
    hits = 0
    for x in rng.normal(0.8, 0.6, (400, 6)):
        word, needed = decide(x, significant=False, mode="min", decision=d)
        if word != UNDECIDED:
            continue
        plan = seeds_needed(float(x.std(ddof=1)), d)
        assert needed == max(plan, 7)
        hits += plan <= 6
    assert hits  # the case the rule is for occurred
    # Sequential: undecided only at the last look, and never asking for <= max seeds.
    plan = SequentialPlan(2, 4, d)
    x = rng.normal(0.8, 0.6, (200, 4))
    for row in x:
        for r in looks(plan, {"v": row})[-1].comparisons.values():
            assert r.decision != UNDECIDED or r.seeds_needed >= 5

"""Sequential seeds by simulation through the rule's own (vectorised) replay: error control
under the repeated looks, equivalence, and what it saves against the fixed-n design."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats as sps

from ablation.stats import Decision, SequentialPlan, looks, next_seeds, seeds_for_power
from ablation.stats.decide import power_paired_t
from ablation.stats.intervals import holm
from ablation.stats.sequential import _BETTER, _EQUIVALENT, _WORSE, forecast, replay

STUDIES = 4000
PLAN = SequentialPlan(3, 18, Decision(min_effect=1.0))


def test_family_wise_false_positives_under_the_looks():
    rng = np.random.default_rng(11)
    for m in (1, 3, 6):
        x = rng.normal(0, 1, (STUDIES, m, PLAN.max))
        rep, _ = replay(PLAN, x)
        fwer = np.mean(np.isin(rep.decision, (_BETTER, _WORSE)).any(axis=1))
        assert fwer <= 0.05, m


def test_the_fixed_n_test_rerun_at_each_look_would_not_control_it():
    """Why the spending boundaries exist: the naive rule inflates false positives."""
    rng = np.random.default_rng(12)
    x = rng.normal(0, 1, (STUDIES, PLAN.max))
    hit = np.zeros(STUDIES, dtype=bool)
    for n in PLAN.looks_at:
        d = x[:, :n]
        p = 2 * sps.t.sf(np.abs(d.mean(1) / (d.std(1, ddof=1) / np.sqrt(n))), n - 1)
        hit |= p < 0.05
    assert hit.mean() > 0.10


def test_equivalence_beyond_min_effect_at_most_alpha():
    rng = np.random.default_rng(13)
    for effect in (1.0, -1.0, 1.5):
        x = rng.normal(effect, 1, (STUDIES, 2, PLAN.max))
        rep, _ = replay(PLAN, x)
        assert np.mean(rep.decision == _EQUIVALENT) <= 0.05 + 0.006, effect


def test_equivalence_reached_for_no_effect():
    rng = np.random.default_rng(14)
    rep, _ = replay(PLAN, rng.normal(0, 1, (STUDIES, 2, PLAN.max)))
    assert np.mean(rep.decision == _EQUIVALENT) >= 0.85


@pytest.mark.parametrize(
    ("power", "max_seeds", "saving"),
    # Measured with the t statistic's own boundaries (benchmarks/sequential_savings.py): 18%
    # at the power-0.8 plan (14 seeds) with max 20, 29% at the power-0.9 plan (17 seeds) with
    # max 24. The saving grows with the power asked for.
    [(0.8, 20, 0.15), (0.9, 24, 0.26)],
)
def test_mixed_effects_fixed_n_power_with_fewer_trials(power, max_seeds, saving):
    """Effects 0, min_effect, 2 x min_effect (sd 1): against the fixed-n design the planner
    prescribes (`power` at min_effect, alpha / m), the sequential design detects at least as
    often with fewer trials (baseline counted: it runs as long as any comparison)."""
    plan = SequentialPlan(3, max_seeds, Decision(min_effect=1.0, power=power))
    effects = np.array([0.0, -1.0, -2.0])
    rng = np.random.default_rng(15)
    x = rng.normal(effects[None, :, None], 1, (STUDIES, 3, plan.max))
    rep, used = replay(plan, x)
    seq_power = np.mean(rep.decision[:, 1:] == _BETTER)
    seq_trials = (used.sum(axis=1) + used.max(axis=1)).mean()

    n = seeds_for_power(1.0, 1.0, alpha=0.05 / 3, power=power)
    f = rng.normal(effects[None, :, None], 1, (STUDIES, 3, n))
    mean, sd = f.mean(2), f.std(2, ddof=1)
    p = 2 * sps.t.sf(np.abs(mean / (sd / np.sqrt(n))), n - 1)
    reject = np.array([holm(row)[1] for row in p])
    fixed_power = np.mean(reject[:, 1:] & (mean[:, 1:] < 0))
    fixed_trials = 4 * n

    assert seq_power >= fixed_power - 0.005
    assert seq_trials <= (1 - saving) * fixed_trials


def test_forecast_is_the_simulated_rule_and_its_fixed_power_the_analytic_one():
    plan = SequentialPlan(3, 18, Decision(min_effect=1.0))
    one = forecast(plan, 1.0, 1, 14)
    # One comparison: the simulated fixed design's power is the noncentral t's.
    assert abs(one.fixed_power - power_paired_t(np.array([14]), 1.0, 1.0, 0.05)[0]) < 0.03
    assert one == forecast(plan, 1.0, 1, 14)  # seeded
    f = forecast(plan, 1.0, 3, 14)
    assert f.fixed_trials == 56
    assert f.trials["2 x min_effect"] < f.trials["min_effect"] < f.fixed_trials
    assert f.power >= f.fixed_power - 0.03 and f.equivalent >= 0.85
    # A noisier comparison (sd 2 at the same plan) loses power: the forecast says so.
    assert forecast(plan, 2.0, 3, 14).power < 0.5


def test_looks_replay_stops_decided_comparisons_and_asks_only_for_open_ones():
    plan = SequentialPlan(3, 8, Decision(min_effect=1.0))
    clear = [-3.1, -2.9, -3.0, -3.2]  # decided at the first look
    noisy = [0.5, -0.8, 1.2]
    n, open_ = next_seeds(plan, {"clear": clear[:3], "noisy": noisy})
    assert (n, open_) == (4, ["noisy"])
    history = looks(plan, {"clear": clear, "noisy": noisy})
    assert [look.n for look in history] == [3]
    assert history[0].comparisons["clear"].decision == "better"
    # The interval at the deciding look excludes zero; the record is plain JSON data.
    r = history[0].comparisons["clear"]
    assert r.ci_high < 0 and history[0].to_record()["n"] == 3
    # Fed the seeds up to max, every comparison ends decided or undecided: nothing left to run.
    rng = np.random.default_rng(0)
    more = noisy + list(rng.normal(0.3, 1.0, 5))
    n, open_ = next_seeds(plan, {"clear": clear[:3], "noisy": more})
    assert open_ == []
    final = looks(plan, {"clear": clear[:3], "noisy": more})[-1].comparisons["noisy"]
    assert final.decision in ("better", "worse", "equivalent", "undecided")


def test_replay_is_the_same_on_a_rerun():
    rng = np.random.default_rng(5)
    diffs = {"a": list(rng.normal(-0.5, 1, 10)), "b": list(rng.normal(0, 1, 10))}
    assert looks(PLAN, diffs) == looks(PLAN, diffs)


def test_plan_refuses_start_past_max():
    with pytest.raises(ValueError):
        SequentialPlan(5, 3, Decision(min_effect=1.0))


def test_boundaries_are_kept_on_disk_and_a_bad_file_is_recomputed(tmp_path, monkeypatch):
    import ablation.stats.sequential as seq

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    seq._nominal_levels.cache_clear()
    plan = SequentialPlan(3, 7, Decision(min_effect=1.0))
    first = plan.efficacy_levels(0.05)
    files = list((tmp_path / "ablation" / "boundaries").glob("*.json"))
    assert len(files) == 1
    seq._nominal_levels.cache_clear()
    assert np.array_equal(plan.efficacy_levels(0.05), first)  # read back, not simulated
    files[0].write_text("{not json", encoding="utf-8")
    seq._nominal_levels.cache_clear()
    assert np.array_equal(plan.efficacy_levels(0.05), first)
    assert json.loads(files[0].read_text(encoding="utf-8"))["levels"] == first.tolist()
    seq._nominal_levels.cache_clear()

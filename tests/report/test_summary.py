"""The ablation statistics on synthetic runs with effects planted by the test."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from ablation.report.comparisons import paired_differences
from ablation.report.summary import summarize
from ablation.report.variants import pareto_front, trial_values
from ablation.stats.intervals import t_interval
from ablation.vocabulary.verdicts import BETTER, NO_DIFFERENCE, NOT_ENOUGH_SEEDS, WORSE

SEEDS = list(range(10))


def test_planted_effect_recovered_with_ci_covering_truth(synthetic_study_frames):
    trials, history = synthetic_study_frames(
        [
            {"name": "base", "effect": 0.0},
            {"name": "cbam", "effect": -2.0},
            {"name": "null", "effect": 0.0},
        ],
        SEEDS,
        noise=0.5,
        seed_sd=2.0,
    )
    s = summarize(trials, history, metric="val_top1_error", mode="min", baseline="base")
    c = s.comparisons.set_index("variant")

    cbam = c.loc["cbam"]
    assert cbam.n_pairs == 10
    assert cbam.ci_low <= -2.0 <= cbam.ci_high
    assert cbam.ci_high < 0
    assert cbam.verdict == BETTER
    assert cbam.effect_dz < -1.0
    assert np.isfinite(cbam.p_wilcoxon) and cbam.p_wilcoxon < 0.05
    # The paired mean difference is exactly the difference of the per-seed values.
    b = s.values[s.values.variant == "base"].set_index("seed").val_top1_error
    v = s.values[s.values.variant == "cbam"].set_index("seed").val_top1_error
    assert cbam.mean_diff == pytest.approx((v - b).mean())
    # Pairing by seed removes the between-seed spread (sd 2.0) from the comparison.
    assert cbam.ci_high - cbam.ci_low < 2.0

    # The null variant is not flagged (the verdict is the Holm-corrected paired test; the
    # bootstrap CI beside it is per comparison and uncorrected).
    null = c.loc["null"]
    assert null.p_holm > 0.05
    assert null.verdict == NO_DIFFERENCE
    assert not null.significant


def test_max_mode_flips_the_verdict(synthetic_study_frames):
    trials, history = synthetic_study_frames(
        [{"name": "base", "effect": 0.0}, {"name": "up", "effect": 3.0}], SEEDS, noise=0.3
    )
    lower = summarize(trials, history, mode="min", baseline="base").comparisons
    higher = summarize(trials, history, mode="max", baseline="base").comparisons
    assert lower.verdict.tolist() == [WORSE]
    assert higher.verdict.tolist() == [BETTER]


def _variant_with_p(baseline: np.ndarray, p: float, sign: float = -1.0) -> np.ndarray:
    """Values whose paired differences to `baseline` give a two-sided paired t-test p-value p."""
    z = np.array([-1.5, -0.5, 0.0, 0.5, 1.5, 1.0, -1.0, 0.25])
    z = (z - z.mean()) / z.std(ddof=1)
    n = len(z)
    t = sps.t.isf(p / 2, n - 1)
    mean = t / np.sqrt(n)  # with unit sd of the differences
    return baseline + sign * mean + z


def _frame(values: dict[str, np.ndarray]) -> pd.DataFrame:
    rows = [
        {"trial_id": f"{v}-{s}", "variant": v, "seed": s, "status": "FINISHED", "m": x}
        for v, xs in values.items()
        for s, x in enumerate(xs)
    ]
    return pd.DataFrame(rows)


def test_holm_changes_verdicts_around_the_threshold():
    base = np.linspace(20, 24, 8)
    raw = {"a": 0.030, "b": 0.040}
    trials = _frame({"base": base, **{k: _variant_with_p(base, p) for k, p in raw.items()}})
    c = summarize(trials, metric="m", baseline="base").comparisons.set_index("variant")
    # The planted p-values come back from the paired t-test ...
    assert c.p_t.to_dict() == pytest.approx(raw, rel=1e-6)
    # ... each would pass alone at 0.05, but Holm (0.06, 0.06) keeps neither.
    assert c.p_holm.to_dict() == pytest.approx({"a": 0.06, "b": 0.06}, rel=1e-6)
    assert set(c.verdict) == {NO_DIFFERENCE}

    # Holm is step-down: with 0.001, 0.02, 0.04 it rejects all three, where Bonferroni
    # (0.003, 0.06, 0.12) would keep two.
    raw = {"a": 0.001, "b": 0.020, "c": 0.040}
    trials = _frame({"base": base, **{k: _variant_with_p(base, p) for k, p in raw.items()}})
    c = summarize(trials, metric="m", baseline="base").comparisons.set_index("variant")
    assert c.p_holm.to_dict() == pytest.approx({"a": 0.003, "b": 0.04, "c": 0.04}, rel=1e-6)
    assert set(c.verdict) == {BETTER}


def test_not_enough_seeds_is_said_not_guessed():
    trials = _frame({"base": np.array([30.0]), "x": np.array([10.0])})
    c = summarize(trials, metric="m", baseline="base").comparisons.iloc[0]
    assert c.n_pairs == 1
    assert c.verdict == NOT_ENOUGH_SEEDS
    assert np.isnan(c.ci_low) and np.isnan(c.p_t) and np.isnan(c.p_holm)
    v = summarize(trials, metric="m", baseline="base").variants
    assert v["m.n"].tolist() == [1, 1]
    assert v["m.std"].isna().all() and v["m.ci_low"].isna().all()


def test_equal_differences_up_to_rounding_are_no_variance_not_a_huge_effect():
    # Errors are multiples of 100/n_val: 22.6 - 20.0 and 23.2 - 20.6 are both 2.6 but differ
    # by ~3e-15 in floating point. A paired t-test on that is meaningless (d_z ~ 1e15).
    trials = _frame({"base": np.array([20.0, 20.6]), "x": np.array([22.6, 23.2])})
    c = summarize(trials, metric="m", baseline="base").comparisons.iloc[0]
    assert c.mean_diff == pytest.approx(2.6)
    assert np.isnan(c.p_t) and np.isnan(c.effect_dz)
    assert c.verdict != WORSE


def test_per_variant_t_interval():
    x = np.array([1.0, 2.0, 4.0, 7.0])
    r = t_interval(x)
    half = sps.t.ppf(0.975, 3) * x.std(ddof=1) / 2
    assert r["n"] == 4
    assert r["mean"] == pytest.approx(3.5)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((3.5 - half, 3.5 + half))


def test_failed_and_stopped_trials_counted_not_averaged(synthetic_study_frames):
    statuses = {("cbam", 0): "FAILED", ("cbam", 1): "STOPPED", ("base", 2): "FAILED"}
    trials, history = synthetic_study_frames(
        [{"name": "base", "effect": 0.0}, {"name": "cbam", "effect": -2.0}],
        [0, 1, 2, 3, 4],
        statuses=statuses,
    )
    # A failed trial's garbage must not leak in even if a final value was recorded.
    trials.loc[(trials.variant == "cbam") & (trials.seed == 0), "val_top1_error"] = 1e6
    s = summarize(trials, history, baseline="base")
    v = s.variants.set_index("variant")
    assert v.loc["cbam", ["n_trials", "n_finished", "n_stopped", "n_failed"]].tolist() == [
        5,
        3,
        1,
        1,
    ]
    assert v.loc["base", ["n_finished", "n_failed"]].tolist() == [4, 1]
    finished = s.values[(s.values.variant == "cbam") & (s.values.status == "FINISHED")]
    assert v.loc["cbam", "val_top1_error.mean"] == pytest.approx(finished.val_top1_error.mean())
    assert v.loc["cbam", "val_top1_error.n"] == 3
    assert v.loc["cbam", "seeds"] == "2,3,4"
    # Pairs only where both finished: seeds 3 and 4 (cbam lost 0, 1; base lost 2).
    assert s.comparisons.iloc[0].n_pairs == 2
    # Learning curves average finished trials only.
    curve = s.curves[(s.curves.variant == "cbam") & (s.curves.metric == "val_top1_error")]
    assert curve.n.tolist() == [3, 3, 3]


def test_metric_is_final_or_declared_epoch_never_best(synthetic_study_frames):
    trials, history = synthetic_study_frames([{"name": "base", "effect": 0.0}], [0, 1], epochs=3)
    # Make an earlier epoch the best one: the final epoch must still be used.
    history.loc[history.epoch == 2, "val_top1_error"] = 0.0
    trials["val_top1_error"] = -1.0  # MLflow's "latest" value may be stale: history wins
    values = trial_values(trials, history)
    final = history[history.epoch == 3].set_index("trial_id").val_top1_error
    assert values.set_index("trial_id").val_top1_error.to_dict() == final.to_dict()
    at2 = trial_values(trials, history, epoch=2)
    assert (at2.val_top1_error == 0.0).all()
    s = summarize(trials, history, baseline="base", epoch=2)
    assert s.variants.iloc[0]["val_top1_error.mean"] == 0.0


def _two_by_two(cells: dict[tuple[str, str], float], seeds=(0, 1, 2, 3)) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    rows = []
    for (a, b), mu in cells.items():
        for s in seeds:
            rows.append(
                {
                    "trial_id": f"{a}{b}{s}",
                    "variant": f"a={a},b={b}",
                    "seed": s,
                    "status": "FINISHED",
                    "factor.model.cbam.kernel_size": a,
                    "factor.model.cbam.channel_pool": b,
                    "m": mu + 0.5 * s + rng.normal(0, 0.2),
                }
            )
    return pd.DataFrame(rows)


def test_interaction_matches_hand_computed_two_by_two():
    trials = _two_by_two(
        {("3", "avg"): 30.0, ("3", "avg+max"): 29.0, ("7", "avg"): 28.0, ("7", "avg+max"): 25.0}
    )
    s = summarize(trials, metric="m", baseline=None)
    mean = trials.groupby(
        ["factor.model.cbam.kernel_size", "factor.model.cbam.channel_pool"]
    ).m.mean()
    hand = (mean["7", "avg+max"] - mean["7", "avg"]) - (mean["3", "avg+max"] - mean["3", "avg"])
    assert len(s.interactions) == 1
    row = s.interactions.iloc[0]
    assert row.estimate == pytest.approx(hand)
    assert row.estimate == pytest.approx(-2.0, abs=0.5)  # planted: (25 - 28) - (29 - 30) = -2
    # Descriptive (issue 22): estimates only, no interval or p-value beside the verdicts.
    for frame in (s.interactions, s.main_effects, s.marginal_means):
        assert not {"ci_low", "ci_high", "p", "p_factor", "p_interaction"} & set(frame.columns)
    # Cell means for the heat map are the same hand means.
    cells = s.interaction_cells.set_index(["level_a", "level_b"])["mean"]
    assert cells.to_dict() == pytest.approx(mean.to_dict())

    # Main effects: balanced 2x2, so the estimate is the difference of marginal means.
    me = s.main_effects.set_index("factor")
    mm = s.marginal_means.set_index(["factor", "level"])["mean"]
    k = "model.cbam.kernel_size"
    assert me.loc[k, "estimate"] == pytest.approx(mm[k, "7"] - mm[k, "3"])
    assert me.loc[k, "reference"] == "3"
    assert me.loc[k, "estimate"] < 0


def test_no_interaction_is_not_flagged():
    trials = _two_by_two(
        {("3", "avg"): 30.0, ("3", "avg+max"): 29.0, ("7", "avg"): 28.0, ("7", "avg+max"): 27.0}
    )
    row = summarize(trials, metric="m").interactions.iloc[0]
    assert row.estimate == pytest.approx(0.0, abs=0.5)


def test_uncrossed_factors_give_no_interaction():
    trials = _two_by_two({("3", "avg"): 30.0, ("7", "avg"): 28.0, ("3", "avg+max"): 29.0})
    s = summarize(trials, metric="m")
    assert s.interactions.empty
    assert any("not crossed" in n for n in s.notes)
    assert len(s.main_effects) == 2  # one-at-a-time from (3, avg): both main effects estimable


def test_pareto_front():
    cost = [1.0, 2.0, 3.0, 2.5, 1.0]
    err = [30.0, 25.0, 24.0, 26.0, 31.0]
    assert pareto_front(cost, err).tolist() == [True, True, True, False, False]
    acc = [70.0, 75.0, 76.0, 74.0, 69.0]
    assert pareto_front(cost, acc, y_mode="max").tolist() == [True, True, True, False, False]


def test_a_study_where_every_trial_failed_still_summarizes(synthetic_study_frames):
    statuses = {(v, s): "FAILED" for v in ("a", "b") for s in (0, 1)}
    trials, history = synthetic_study_frames(
        [{"name": "a", "effect": 0.0}, {"name": "b", "effect": 1.0}], [0, 1], statuses=statuses
    )
    trials = trials.drop(columns=["val_top1_error"], errors="ignore")
    s = summarize(trials, history.iloc[0:0], baseline="a")
    assert s.variants["n_failed"].tolist() == [2, 2]
    assert s.variants["val_top1_error.n"].tolist() == [0, 0]
    assert s.comparisons.verdict.tolist() == [NOT_ENOUGH_SEEDS]


def test_summary_is_frozen_and_a_live_refresh_replaces_it(synthetic_study_frames):
    trials, history = synthetic_study_frames([{"name": "base", "effect": 0.0}], [0, 1])
    s = summarize(trials, history, baseline="base")
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.partial = "partial: as of now"
    live = dataclasses.replace(s, partial="partial: as of now")
    assert live.partial == "partial: as of now" and s.partial is None
    assert live.variants is s.variants


def test_paired_differences_are_seed_by_seed_and_skip_unpaired_seeds():
    trials = _frame({"base": np.array([1.0, 2.0, 3.0]), "v": np.array([2.0, 2.5, np.nan])})
    pairs = paired_differences(trials, ["base", "v"], "base", "m")
    assert list(pairs) == ["v"]
    assert pairs["v"]["diff"].tolist() == [1.0, 0.5] and list(pairs["v"].index) == [0, 1]
    assert paired_differences(trials, ["base", "v"], None, "m") == {}

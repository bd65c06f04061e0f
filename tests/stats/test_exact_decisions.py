"""The decisions' error rates at the fewest seeds offered, by simulation through the service's
own rules (the sequential replay, the fixed-n `decide`), seeded and vectorised.

Each rate "<= 5%" is gated by an exact one-sided binomial test: it fails only where the
simulated count says the rate is above 5% with p < 0.001, so Monte Carlo noise can neither fail
a rule that holds nor hide one that overspends by half a point (16,000 studies: a true 5.5%
fails with probability ~0.4, 6% with ~0.97).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
from helpers import paired_study
from scipy import stats as sps

from ablation.report.comparisons import CI_TOST
from ablation.report.summary import summarize
from ablation.stats import Decision, SequentialPlan, looks
from ablation.stats import decide as decisions
from ablation.stats.checks import outliers
from ablation.stats.decide import power_paired_t, seeds_for_power
from ablation.stats.intervals import NO_SPREAD, holm, is_zero
from ablation.stats.sequential import _BETTER, _EQUIVALENT, _WORSE, SPENDING, replay
from ablation.vocabulary.verdicts import BETTER, CONTINUE, EQUIVALENT, UNDECIDED, WORSE

STUDIES = 16_000
DESIGNS = [(2, 10), (3, 6), (3, 12)]
ALPHA = 0.05


def at_most(count: int, n: int, rate: float = ALPHA) -> bool:
    """Whether `count` of `n` is compatible with a rate <= `rate` (one-sided exact test)."""
    return sps.binomtest(int(count), int(n), rate, alternative="greater").pvalue >= 0.001


def at_least(count: int, n: int, rate: float) -> bool:
    return sps.binomtest(int(count), int(n), rate, alternative="less").pvalue >= 0.001


def _false_positive(plan: SequentialPlan, x: np.ndarray) -> np.ndarray:
    rep, _ = replay(plan, x)
    return np.isin(rep.decision, (_BETTER, _WORSE)).any(axis=1)


@pytest.mark.parametrize("spending", SPENDING)
@pytest.mark.parametrize(("start", "max_seeds"), DESIGNS)
def test_one_null_and_four_nulls_at_most_alpha(start, max_seeds, spending):
    plan = SequentialPlan(start, max_seeds, Decision(min_effect=1.0), spending=spending)
    rng = np.random.default_rng(start * 100 + max_seeds)
    for sd in (1.0, 2.0):  # the noisier, the fewer equivalence stops: the harder case
        hit = _false_positive(plan, rng.normal(0, sd, (STUDIES, 1, max_seeds)))
        print(f"one null, sd {sd:g}: {hit.mean():.2%}")  # README's numbers: pytest -s
        assert at_most(hit.sum(), STUDIES), (sd, hit.mean())
    hit = _false_positive(plan, rng.normal(0, 2.0, (STUDIES // 2, 4, max_seeds)))
    print(f"four nulls, sd 2: {hit.mean():.2%}")
    assert at_most(hit.sum(), STUDIES // 2), hit.mean()


@pytest.mark.parametrize(("start", "max_seeds"), DESIGNS)
def test_family_wise_with_comparisons_tenfold_apart_in_noise(start, max_seeds):
    plan = SequentialPlan(start, max_seeds, Decision(min_effect=1.0))
    sds = np.array([0.3, 1.0, 3.0])
    rng = np.random.default_rng(7 + max_seeds)
    hit = _false_positive(plan, sds[None, :, None] * rng.standard_normal((STUDIES, 3, max_seeds)))
    assert at_most(hit.sum(), STUDIES), hit.mean()


@pytest.mark.parametrize("spending", SPENDING)
@pytest.mark.parametrize(("start", "max_seeds"), DESIGNS)
def test_equivalent_at_a_true_effect_of_min_effect_at_most_alpha(start, max_seeds, spending):
    plan = SequentialPlan(start, max_seeds, Decision(min_effect=1.0), spending=spending)
    rng = np.random.default_rng(31 + max_seeds)
    for effect, sd in ((1.0, 0.5), (-1.0, 1.0), (1.0, 2.0)):
        rep, _ = replay(plan, rng.normal(effect, sd, (STUDIES // 2, 1, max_seeds)))
        print(f"equivalent at {effect:+g}, sd {sd:g}: {np.mean(rep.decision == _EQUIVALENT):.2%}")
        assert at_most((rep.decision == _EQUIVALENT).sum(), STUDIES // 2), (effect, sd)


def _fixed_n(x: np.ndarray, min_effect: float) -> np.ndarray:
    """The fixed-n decisions of `decide` (Holm across a study's comparisons), vectorised over
    studies [study, comparison, seed]; `test_the_vectorised_fixed_n_rule_is_decide` holds it to
    `decide` itself."""
    d = Decision(min_effect=min_effect)
    n = x.shape[2]
    mean, sd = x.mean(axis=2), x.std(axis=2, ddof=1)
    spread = sd > NO_SPREAD * np.maximum(1.0, np.abs(mean))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean / (sd / np.sqrt(n))
    p = np.where(spread, 2 * sps.t.sf(np.abs(t), n - 1), np.where(is_zero(mean), 1.0, np.nan))
    reject = np.array([holm(row, d.alpha)[1] for row in p])
    half = sps.t.ppf(1 - d.alpha, n - 1) * sd / np.sqrt(n)
    inside = spread & (mean - half > -min_effect) & (mean + half < min_effect)
    word = np.full(mean.shape, UNDECIDED, dtype=object)
    word[inside | (~spread & is_zero(mean))] = EQUIVALENT
    word[reject] = np.where(mean[reject] < 0, BETTER, WORSE)  # mode min
    return word


def _decide_loop(x: np.ndarray, min_effect: float) -> np.ndarray:
    d = Decision(min_effect=min_effect)
    out = np.empty(x.shape[:2], dtype=object)
    for s, study in enumerate(x):
        p = [decisions.paired_t(row)[1] for row in study]
        _, reject = holm(p, d.alpha)
        for c, row in enumerate(study):
            out[s, c], _ = decisions.decide(
                row, significant=bool(reject[c]), mode="min", decision=d, n_comparisons=len(p)
            )
    return out


def test_the_vectorised_fixed_n_rule_is_decide():
    """Word for word on 300 studies per n, ties and constant differences included."""
    rng = np.random.default_rng(49)
    for n in (2, 3, 6):
        x = rng.normal(np.array([0.0, 1.0, 0.3])[:, None], 1.0, (300, 3, n))
        x[:20] = np.round(x[:20])  # constant differences and exact nulls
        assert (_fixed_n(x, 1.0) == _decide_loop(x, 1.0)).all(), n


def test_fixed_n_rates_hold_at_the_fewest_seeds():
    rng = np.random.default_rng(50)
    studies = 8000
    sds = np.array([0.3, 1.0, 3.0])
    for n in (2, 3, 6):
        word = _fixed_n(sds[None, :, None] * rng.standard_normal((studies, 3, n)), 1.0)
        assert at_most(np.isin(word, (BETTER, WORSE)).any(axis=1).sum(), studies), n
        word = _fixed_n(rng.normal(1.0, 1.0, (studies, 1, n)), 1.0)
        assert at_most((word == EQUIVALENT).sum(), studies), n


# An error rate on 360 validation images moves in steps of 1/360: differences are multiples of
# it, and at two or three seeds they tie by chance.
STEP = 1 / 360


def _discrete(rng: np.random.Generator, effect: float, sd: float, shape: tuple) -> np.ndarray:
    return np.round(rng.normal(effect, sd, shape) / STEP) * STEP


@pytest.mark.parametrize(("start", "max_seeds"), DESIGNS)
def test_equivalent_at_min_effect_at_most_alpha_on_a_discrete_metric(start, max_seeds):
    """min_effect 0.01 (3.6 steps), sd 0.5 x min_effect: chance ties at the first look made
    "equivalent" 7.9% at {2, 10} when a constant difference inside +-min_effect was decided
    equivalent; now only an exact null is."""
    min_effect = 0.01
    plan = SequentialPlan(start, max_seeds, Decision(min_effect=min_effect))
    rng = np.random.default_rng(360 + max_seeds)
    for effect in (min_effect, -min_effect):
        x = _discrete(rng, effect, 0.5 * min_effect, (STUDIES, 1, max_seeds))
        rep, _ = replay(plan, x)
        eq = (rep.decision == _EQUIVALENT).sum()
        print(f"discrete, equivalent at {effect:+g}: {eq / STUDIES:.2%}")
        assert at_most(eq, STUDIES), (effect, eq / STUDIES)
    for n in (2, 3):
        word = _fixed_n(_discrete(rng, min_effect, 0.5 * min_effect, (STUDIES, 1, n)), min_effect)
        assert at_most((word == EQUIVALENT).sum(), STUDIES), n


def test_an_exact_null_is_equivalent_at_the_first_look_and_a_constant_difference_is_not():
    plan = SequentialPlan(2, 3, Decision(min_effect=1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing divides by zero
        history = looks(plan, {"same": [0.0, 0.0], "up": [1.5, 1.5, 1.5], "small": [0.2, 0.2, 0.2]})
    assert [look.n for look in history] == [2, 3]
    same, up, small = (history[0].comparisons[c] for c in ("same", "up", "small"))
    assert same.decision == EQUIVALENT and "exact null" in same.reason
    assert (same.ci_low, same.ci_high) == (0.0, 0.0) and same.interval == "tost"
    for r in (up, small):  # nothing to test a constant difference against: the next look
        assert r.decision == CONTINUE and "no spread yet" in r.reason
    assert "+1.5" in up.reason
    last = history[1].comparisons
    assert set(last) == {"up", "small"}
    assert all(r.decision == UNDECIDED and "no spread yet" in r.reason for r in last.values())
    # The fixed-n path: an exact null equivalent at [0, 0]; a constant difference undecided.
    trials = paired_study({"same": 0.0, "up": 0.0}, 3, 0, metric="m")
    base = trials[trials.variant == "base"].set_index("seed")["m"]
    trials.loc[trials.variant == "same", "m"] = base.to_numpy()
    trials.loc[trials.variant == "up", "m"] = base.to_numpy() - 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        s = summarize(trials, metric="m", baseline="base", decision=Decision(1.0), n_resamples=9)
    c = s.comparisons.set_index("variant")
    assert c.loc["same", "decision"] == EQUIVALENT and c.loc["same", "ci_method"] == CI_TOST
    assert c.loc["same", "ci_low"] == pytest.approx(0.0, abs=1e-9)
    assert c.loc["up", "decision"] == UNDECIDED and "no spread yet" in c.loc["up", "reason"]
    assert "-2" in c.loc["up", "reason"] and np.isnan(c.loc["up", "ci_low"])
    assert not c.loc["up", "significant"]


def _final(rep) -> tuple[np.ndarray, ...]:
    """Per [study, comparison]: the printed interval and level at the last look it took."""
    k = rep.code.shape[0]
    last = np.where(rep.code >= 0, np.arange(k)[:, None, None], -1).max(axis=0)
    s, c = np.indices(last.shape)
    return tuple(a[last, s, c] for a in (rep.ci_low, rep.ci_high, rep.ci_level, rep.code))


@pytest.mark.parametrize(("start", "max_seeds"), DESIGNS)
def test_printed_interval_covers_at_its_printed_level(start, max_seeds):
    """Over a mix of true effects (0, +-0.5, 2 x min_effect, and min_effect itself), the
    interval each comparison ends with covers the truth at least at the mean printed level
    minus one point; the TOST interval, computed for every comparison at its last look, keeps
    its 1 - 2 alpha as a repeated confidence interval."""
    plan = SequentialPlan(start, max_seeds, Decision(min_effect=1.0))
    effects = np.array([0.0, 0.5, -0.5, 2.0, 1.0])
    rng = np.random.default_rng(41 + max_seeds)
    x = rng.normal(effects[None, :, None], 1.0, (STUDIES // 4, len(effects), max_seeds))
    rep, _ = replay(plan, x)
    low, high, level, code = _final(rep)
    covered = (low <= effects) & (effects <= high)
    n = covered.size
    assert at_least(covered.sum(), n, float(level.mean()) - 0.01), (covered.mean(), level.mean())
    eq = code == _EQUIVALENT
    assert (low[eq] > -1.0).all() and (high[eq] < 1.0).all()  # its bar lies inside the band


def test_fixed_n_printed_interval_covers_at_its_printed_level():
    effects = {"a": 0.0, "b": 0.5, "c": -2.0, "d": 1.0}
    covered, levels = [], []
    for seed in range(100):
        trials = paired_study(effects, 4, seed, metric="m")
        c = summarize(trials, metric="m", baseline="base", decision=Decision(1.0), n_resamples=9)
        for r in c.comparisons.itertuples():
            covered.append(r.ci_low <= effects[r.variant] <= r.ci_high)
            levels.append(r.ci_level)
            if r.decision == EQUIVALENT:
                assert r.ci_method == CI_TOST and r.ci_low > -1 and r.ci_high < 1
    assert at_least(sum(covered), len(covered), float(np.mean(levels)) - 0.01)


SD_GRID = [0.05, 0.1, 0.3, 0.5, 1.0, 2.0, 5.0]  # x min_effect


@pytest.mark.parametrize("alpha", [0.05, 0.01])
def test_power_is_finite_monotone_and_the_simulated_t_tests(alpha):
    n = np.arange(2, 60)
    rng = np.random.default_rng(int(alpha * 1000))
    for sd in SD_GRID:
        power = power_paired_t(n, sd * 2.0, 2.0, alpha)
        assert np.isfinite(power).all() and (np.diff(power) >= -1e-12).all(), sd
        for m in (2, 3, 5):
            x = rng.normal(2.0, sd * 2.0, (4000, m))
            p = 2 * sps.t.sf(np.abs(x.mean(1) / (x.std(1, ddof=1) / np.sqrt(m))), m - 1)
            expected = float(power_paired_t(m, sd * 2.0, 2.0, alpha))
            hits = int((p < alpha).sum())
            assert sps.binomtest(hits, 4000, min(max(expected, 1e-9), 1 - 1e-9)).pvalue >= 1e-3
        # The plan asks fewer (or as many) seeds of a quieter comparison.
    needed = [seeds_for_power(sd, 1.0, alpha=alpha, power=0.8) for sd in SD_GRID]
    assert needed == sorted(needed) and needed[0] <= 3


def test_an_outlier_seed_is_named_and_normal_noise_rarely_is():
    rng = np.random.default_rng(3)
    x = rng.normal(0, 1, (4000, 8))
    flagged = sum(bool(outliers(row)) for row in x)
    assert at_most(flagged, 4000, 0.01)
    plan = SequentialPlan(6, 10, Decision(min_effect=1.0))
    d = [-0.1, 0.2, 0.0, 0.1, -0.2, 9.0, 0.1, 0.0, 0.1, -0.1]
    final = {}
    for look in looks(plan, {"v": d}):
        final.update(look.comparisons)
    assert "seed 5" in final["v"].reason and final["v"].outlier_seeds == "5"


def test_a_diverged_seed_is_named_in_the_verdict():
    trials = paired_study({"v": -3.0}, 6, 2, metric="m")
    trials.loc[(trials.variant == "v") & (trials.seed == 4), "m"] = np.nan
    s = summarize(trials, metric="m", baseline="base", decision=Decision(1.0), n_resamples=9)
    r = s.comparisons.iloc[0]
    assert r.n_pairs == 5 and "seed 4: non-finite metric" in r.reason


SKEWED = {
    "lognormal": lambda rng, shape: rng.lognormal(0, 1, shape) - np.exp(0.5),
    "exponential": lambda rng, shape: rng.exponential(1, shape) - 1,
}
# Measured (README, "Decision and sequential seeds"), with the band each must stay in:
# family-wise at {3, 12} with three null comparisons, and the fixed-n t-test at 5 seeds.
SKEWED_RATES = {
    "lognormal": ((0.33, 0.45), (0.13, 0.22)),
    "exponential": ((0.11, 0.19), (0.08, 0.16)),
}


@pytest.mark.parametrize("noise", SKEWED)
def test_false_positives_under_skewed_noise_are_as_documented(noise):
    """Measured, not controlled: skewed paired differences (centred, sd 2.2 and 1 against
    min_effect 1) break the t-test's normality at few seeds. The README states these rates;
    the test holds them to what it states."""
    rng = np.random.default_rng(77)
    plan = SequentialPlan(3, 12, Decision(min_effect=1.0))
    (low, high), (fixed_low, fixed_high) = SKEWED_RATES[noise]
    rate = _false_positive(plan, SKEWED[noise](rng, (STUDIES // 2, 3, plan.max))).mean()
    f = SKEWED[noise](rng, (STUDIES // 2, 5))
    p = 2 * sps.t.sf(np.abs(f.mean(1) / (f.std(1, ddof=1) / np.sqrt(5))), 4)
    print(f"{noise}: family-wise {rate:.1%} at {{3, 12}}, fixed n=5 {(p < ALPHA).mean():.1%}")
    assert low <= rate <= high, rate
    assert fixed_low <= (p < ALPHA).mean() <= fixed_high


# Measured on centred lognormal differences (README): the sign-flip test, 8 and 10 seeds, and
# the t-test beside it; the band each must stay in.
SIGN_FLIP_RATES = {"sign-flip": (0.13, 0.18), "t": (0.14, 0.19)}


def test_a_sign_flip_test_does_not_hold_the_rate_under_skew_either():
    """The README's claim: no test of the mean holds the rate under strong skew at these n;
    the exact sign-flip test assumes symmetric differences, and overspends as the t-test does."""
    rng = np.random.default_rng(78)
    studies = 8000
    for n in (8, 10):
        x = SKEWED["lognormal"](rng, (studies, n))
        signs = np.array(list(itertools.product((-1.0, 1.0), repeat=n)))  # all 2^n flips
        observed = np.abs(x.mean(axis=1))
        p_flip = (np.abs(x @ signs.T / n) >= observed[:, None] - 1e-12).mean(axis=1)
        t = x.mean(axis=1) / (x.std(axis=1, ddof=1) / np.sqrt(n))
        p_t = 2 * sps.t.sf(np.abs(t), n - 1)
        rates = {"sign-flip": (p_flip < ALPHA).mean(), "t": (p_t < ALPHA).mean()}
        print(f"lognormal, n={n}: " + ", ".join(f"{k} {v:.1%}" for k, v in rates.items()))
        for test, (low, high) in SIGN_FLIP_RATES.items():
            assert low <= rates[test] <= high, (n, test, rates[test])


def test_the_plan_never_gets_nan_at_low_noise():
    d = pd.Series([seeds_for_power(sd, 2.0, alpha=0.01, power=0.8) for sd in (0.3, 0.5)])
    assert d.is_monotonic_increasing and d.iloc[0] <= 4

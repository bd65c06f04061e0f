"""Sequential seeds: look after every seed from `start` to `max`, stop each comparison once
it is decided, with the error rates of a group-sequential design.

The looks are planned (n = start, start + 1, ..., max seeds per variant). Each comparison's
paired t-statistic is tested against Lan-DeMets alpha-spending boundaries over those looks
(linear spending alpha * n / max by default: in simulation it reached the fixed-n design's
power with fewer trials than the Pocock- or O'Brien-Fleming-type functions, which are offered
too). The boundaries are critical values of the paired t statistic itself at each planned look
(simulated once per plan: the joint law of the t statistics of normal paths does not depend on
the sd), read back as the t-test's nominal p-level at that look's degrees of freedom. Across
comparisons, Holm's correction is kept in its group-sequential form (Maurer & Bretz 2013): a
comparison decided better/worse passes its share of alpha on to those still open, whose
boundaries are then those of the larger level. Equivalence is two one-sided tests, each with
its own one-sided spending at alpha on the t statistic, so it is declared for an effect of
min_effect or beyond at most alpha of the time. Differences without seed-to-seed spread
(`ablation.stats.checks.spread_verdict`): an exact null (every difference 0) is equivalent at
the look that sees it; a constant non-zero difference continues ("no spread yet") to the next
look, undecided at the last. Re-running the fixed-n
test at every look is exactly what this is not: that inflates the false positives.

Everything is a pure function of the paired differences in seed order: a rerun after a kill
replays the same looks from the finished trials and reaches the same decisions.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats as sps

from ablation.stats.checks import describe, spread_verdict
from ablation.stats.decide import Decision, seeds_needed
from ablation.stats.intervals import NO_SPREAD, holm, is_zero
from ablation.vocabulary.direction import Direction
from ablation.vocabulary.verdicts import BETTER, CONTINUE, EQUIVALENT, UNDECIDED, WORSE

SPENDING = ("linear", "pocock", "obrien-fleming")

# The boundaries are computed by simulating the planned looks once (seeded: the same plan has
# the same boundaries on every machine and every rerun).
_PATHS = 200_000
_BOUNDARY_SEED = 20240512
_BOUNDARY_VERSION = 2  # part of the on-disk cache key: raise it when `_simulated_levels` changes


@dataclass(frozen=True)
class SequentialPlan:
    """`seeds: {start, max}` with the study's `decision`, the metric's mode and the spending.

    `mode` may be given as the study file's plain ``"min"``/``"max"``; it is kept a `Direction`.
    """

    start: int
    max: int
    decision: Decision
    mode: Direction = Direction.MIN
    spending: str = "linear"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", Direction.of(self.mode))
        if not 2 <= self.start <= self.max:
            raise ValueError(
                f"sequential seeds need 2 <= start <= max; got {self.start}, {self.max}"
            )
        if self.spending not in SPENDING:
            raise ValueError(f"spending must be one of {SPENDING}; got {self.spending!r}")

    @property
    def looks_at(self) -> list[int]:
        """The planned looks: seeds per variant at each."""
        return list(range(self.start, self.max + 1))

    def efficacy_levels(self, alpha: float) -> np.ndarray:
        """Nominal two-sided level of the paired t-test at each look, for total level alpha."""
        return _nominal_levels(tuple(self.looks_at), float(alpha), True, self.spending)

    def equivalence_levels(self) -> np.ndarray:
        """Nominal one-sided level of each one-sided test of the TOST at each look."""
        return _nominal_levels(tuple(self.looks_at), self.decision.alpha, False, self.spending)


def spent(t: np.ndarray, alpha: float, spending: str) -> np.ndarray:
    """Lan-DeMets spending functions: the error spent by information fraction t."""
    t = np.asarray(t, dtype=float)
    if spending == "linear":
        return alpha * t
    if spending == "pocock":
        return alpha * np.log1p((math.e - 1) * t)
    z = sps.norm.isf(alpha / 2)
    return 2 * sps.norm.sf(z / np.sqrt(t))


def _cache_file(key: str) -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    return Path(base) / "ablation" / "boundaries" / f"{digest}.json"


@functools.lru_cache(maxsize=256)
def _nominal_levels(
    looks: tuple[int, ...], alpha: float, two_sided: bool, spending: str
) -> np.ndarray:
    """The levels, simulated once per plan and kept on disk: the driver computes them at its
    first look, and `ablation report` (a fresh process, which should answer in a second or
    two) reads them back instead of simulating 200,000 paths again."""
    key = json.dumps(
        [_BOUNDARY_VERSION, list(looks), repr(alpha), two_sided, spending, _PATHS, _BOUNDARY_SEED]
    )
    path = _cache_file(key)
    try:
        stored = json.loads(path.read_text(encoding="utf-8"))
        if stored["key"] == key:
            levels = np.asarray(stored["levels"], dtype=float)
            levels.flags.writeable = False
            return levels
    except (OSError, ValueError, KeyError, TypeError):
        pass
    levels = _simulated_levels(looks, alpha, two_sided, spending)
    try:  # best effort: a read-only home only costs the next process the simulation
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False) as f:
            json.dump({"key": key, "levels": levels.tolist()}, f)
        os.replace(f.name, path)
    except OSError:
        pass
    return levels


def _simulated_levels(
    looks: tuple[int, ...], alpha: float, two_sided: bool, spending: str
) -> np.ndarray:
    """Each look's critical value of the paired t statistic itself, read back as the nominal
    p-level of the t-test at that look's degrees of freedom (so `p <= level` is `|t| >= c`).

    The t statistics of normal paths at the planned looks (their joint law does not depend on
    the sd); each look spends its share of alpha on the paths not yet stopped. Boundaries
    found for z and read through t's p-value overspend at few degrees of freedom (successive
    t statistics are less correlated than z ones): 5.2-6.3% for one null at {2, 10} - {3, 12}.
    """
    n = np.asarray(looks, dtype=int)
    stat = _t_paths(looks)
    stat = np.abs(stat) if two_sided else stat
    budget = np.diff(spent(n / n[-1], alpha, spending), prepend=0.0)
    alive = np.ones(stat.shape[0], dtype=bool)
    levels = np.zeros(len(n))
    for k in range(len(n)):
        cross = int(budget[k] * stat.shape[0])
        if cross < 1:
            continue  # a look with (almost) nothing to spend tests at level 0
        live = stat[alive, k]
        if cross >= len(live):
            continue
        # the (cross + 1)-th largest: exactly `cross` live paths lie above it
        c = float(-np.partition(-live, cross)[cross])
        p = sps.t.sf(c, n[k] - 1)
        levels[k] = 2 * p if two_sided else p
        alive &= stat[:, k] <= c
    levels.flags.writeable = False
    return levels


# One plan at a time: its Holm table asks for the same paths at several alphas in a row, and a
# `max` of 200 seeds makes them 160 MB.
@functools.lru_cache(maxsize=1)
def _t_paths(looks: tuple[int, ...]) -> np.ndarray:
    """[path, look]: the one-sample t statistic of `_PATHS` standard normal paths at each look
    (float32, built in chunks so a `max` of 200 seeds stays within memory)."""
    n = np.asarray(looks, dtype=int)
    rng = np.random.default_rng(_BOUNDARY_SEED)
    out = np.empty((_PATHS, len(n)), dtype=np.float32)
    chunk = 25_000
    for a in range(0, _PATHS, chunk):
        x = rng.standard_normal((min(chunk, _PATHS - a), int(n[-1])), dtype=np.float32)
        s1 = np.cumsum(x, axis=1, dtype=np.float64)[:, n - 1]
        s2 = np.cumsum(np.square(x, dtype=np.float64), axis=1)[:, n - 1]
        var = (s2 - s1**2 / n) / (n - 1)
        out[a : a + len(x)] = s1 / n / np.sqrt(var / n)
    out.flags.writeable = False
    return out


@dataclass(frozen=True)
class ComparisonLook:
    """One comparison at one look: its interval at the look's level and what was decided."""

    comparison: str
    n: int
    mean_diff: float
    # The interval that decided (`interval`): the efficacy t-interval at the look's nominal
    # `level` (it excludes 0 exactly when better/worse), or for an equivalent one the TOST's at
    # 1 - 2 x `equivalence_level` (inside +-min_effect). `ci_level` is the confidence it keeps
    # under the repeated looks: 1 - its Holm share of alpha, 1 - 2 alpha for the TOST's.
    ci_low: float
    ci_high: float
    level: float  # the nominal two-sided level of the paired t-test at this look
    p: float
    equivalence_level: float
    decision: str  # better, worse, equivalent, undecided (last look) or continue
    seeds_needed: float = math.nan
    ci_level: float = math.nan
    interval: str = "efficacy"  # or "tost"
    reason: str = ""  # why, where the numbers do not say: no spread, an outlier seed
    outlier_seeds: str = ""  # comma-separated seed values, "" for none


@dataclass(frozen=True)
class Look:
    """A look after `n` seeds per variant: every comparison still open, and its decision."""

    n: int
    comparisons: dict[str, ComparisonLook] = field(default_factory=dict)

    def to_record(self) -> dict:
        """Plain JSON-able data, as the driver records each look on the parent run."""

        def plain(x: object) -> object:
            return None if isinstance(x, float) and not math.isfinite(x) else x

        return {
            "n": self.n,
            "comparisons": [
                {k: plain(v) for k, v in asdict(c).items()} for c in self.comparisons.values()
            ],
        }


# Decision codes of the vectorised replay.
_OPEN, _BETTER, _WORSE, _EQUIVALENT, _UNDECIDED, _OUT = 0, 1, 2, 3, 4, -1
_WORDS = {_OPEN: CONTINUE, _BETTER: BETTER, _WORSE: WORSE, _EQUIVALENT: EQUIVALENT}
_WORDS[_UNDECIDED] = UNDECIDED


@dataclass(frozen=True)
class Replay:
    """The looks of many studies at once (arrays [look, study, comparison]); `code` is -1 where a
    comparison was no longer open or the look did not happen."""

    code: np.ndarray
    mean: np.ndarray
    sd: np.ndarray
    p: np.ndarray
    level: np.ndarray
    equivalence_level: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    ci_level: np.ndarray

    @property
    def decision(self) -> np.ndarray:
        """[study, comparison]: the final code (0 where the data ran out before a decision)."""
        final = np.where(self.code > _OPEN, self.code, 0).max(axis=0)
        return final


def replay(
    plan: SequentialPlan, values: np.ndarray, lengths: np.ndarray | None = None
) -> tuple[Replay, np.ndarray]:
    """The sequential rule over an array of paired differences [study, comparison, seed].

    Vectorised over studies so the simulation tests run thousands of planted studies in
    seconds through this same code. `lengths` [study, comparison] is how many leading values
    are finished (NaN-padded beyond); a study's replay stops at the first look an open
    comparison lacks seeds for. Returns the replay and the seeds each comparison used
    [study, comparison] (its stopping look, or the last look made).
    """
    x = np.asarray(values, dtype=float)
    S, C, _ = x.shape
    if lengths is None:
        lengths = np.full((S, C), x.shape[2])
    looks_at = plan.looks_at
    K = len(looks_at)
    # Holm's levels by how many comparisons were already rejected: alpha / (C - r).
    table = np.array([plan.efficacy_levels(plan.decision.alpha / (C - r)) for r in range(C)])
    eq = plan.equivalence_levels()
    shape = (K, S, C)
    out = {
        k: np.full(shape, np.nan)
        for k in ("mean", "sd", "p", "level", "equivalence_level", "ci_low", "ci_high", "ci_level")
    }
    code = np.full(shape, _OUT, dtype=int)
    state = np.zeros((S, C), dtype=int)  # _OPEN until decided
    rejected = np.zeros(S, dtype=int)
    alive = np.ones(S, dtype=bool)  # the study's looks are still happening
    used = np.zeros((S, C), dtype=int)
    for k, n in enumerate(looks_at):
        is_open = state == _OPEN
        alive &= ~np.any(is_open & (lengths < n), axis=1) & is_open.any(axis=1)
        active = is_open & alive[:, None]
        if not active.any():
            break
        mean, sd, spread, p = _paired_tests(x[:, :, :n])
        margin = plan.decision.min_effect
        # No seed-to-seed spread (see `spread_verdict`): an exact null is equivalent; a
        # constant non-zero difference has p NaN (never rejected) and no TOST: it continues.
        key = np.where(active & np.isfinite(p), p, np.inf)
        level, steps, rejected = _holm_step(
            state, key, mean, table[:, k], alive, rejected, plan.mode
        )
        g = float(eq[k])
        equiv = np.where(spread, _equivalent(mean, sd, n, g, margin), is_zero(mean))
        state[active & (state == _OPEN) & equiv] = _EQUIVALENT
        if k == K - 1:
            state[active & (state == _OPEN)] = _UNDECIDED
        # The interval shown is the one that decided: the TOST's (1 - 2 gamma) interval for an
        # equivalent comparison, the efficacy interval at the look's level otherwise.
        qe = np.where(level > 0, sps.t.ppf(1 - level / 2, n - 1), np.inf)
        qt = sps.t.ppf(1 - g, n - 1) if g > 0 else np.inf
        q = np.where(state == _EQUIVALENT, qt, qe)
        with np.errstate(invalid="ignore"):
            ci_half = np.where(spread, q * sd / math.sqrt(n), 0.0)
        # The confidence the interval keeps under the repeated looks (a repeated confidence
        # interval, Jennison & Turnbull): 1 - the alpha its boundaries spend over all looks, not
        # 1 - the look's nominal level (a stopped comparison is a selected one).
        a = plan.decision.alpha
        out["ci_level"][k] = np.where(
            active, np.where(state == _EQUIVALENT, 1 - 2 * a, 1 - a / (C - steps)), np.nan
        )
        for name, v in (
            ("mean", mean),
            ("sd", sd),
            ("p", p),
            ("level", level),
            ("ci_low", mean - ci_half),
            ("ci_high", mean + ci_half),
        ):
            out[name][k] = np.where(active, v, np.nan)
        out["equivalence_level"][k] = np.where(active, g, np.nan)
        code[k] = np.where(active, state, _OUT)
        used = np.where(active, n, used)
    return Replay(code=code, **out), used


def _paired_tests(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mean, sd, spread, p) over the last axis of `d` [study, comparison, seed]: the paired
    t-test's two-sided p, 1 for all-zero differences, NaN where a constant one has no spread."""
    n = d.shape[2]
    mean = d.mean(axis=2)
    sd = d.std(axis=2, ddof=1)
    spread = sd > NO_SPREAD * np.maximum(1.0, np.abs(mean))
    with np.errstate(divide="ignore", invalid="ignore"):
        t = mean / (sd / math.sqrt(n))
    p = np.where(spread, 2 * sps.t.sf(np.abs(t), n - 1), np.nan)
    p = np.where(~spread & is_zero(mean), 1.0, p)
    return mean, sd, spread, p


def _holm_step(
    state: np.ndarray,
    key: np.ndarray,
    mean: np.ndarray,
    levels: np.ndarray,
    alive: np.ndarray,
    rejected: np.ndarray,
    direction: Direction,
) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down among the open comparisons at one look, smallest p (`key`) first.

    `levels[r]` is the look's level once r comparisons of a study were rejected. Marks each
    rejection better/worse in `state`; returns every comparison's level and the studies' new
    rejection counts, and how many were rejected before each comparison's step (its level
    is that of alpha / (C - steps)).
    """
    S, C = key.shape
    rows = np.arange(S)
    order = np.argsort(key, axis=1, kind="stable")
    level = np.full((S, C), np.nan)
    steps = np.zeros((S, C), dtype=int)
    stepping = alive.copy()
    r = rejected.copy()
    for j in range(C):
        c = order[:, j]
        cur = levels[np.minimum(r, C - 1)]
        level[rows, c] = cur
        steps[rows, c] = np.minimum(r, C - 1)
        hit = stepping & (key[rows, c] <= cur)
        better = direction.sign * mean[rows, c] > 0
        state[rows[hit], c[hit]] = np.where(better[hit], _BETTER, _WORSE)
        r = r + hit
        stepping &= hit
    return level, steps, r


def _equivalent(
    mean: np.ndarray, sd: np.ndarray, n: int, gamma: float, margin: float
) -> np.ndarray:
    """The TOST at one look: the (1 - 2 gamma) t-interval lies inside +-margin."""
    q = sps.t.ppf(1 - gamma, n - 1) if gamma > 0 else np.inf
    half = q * sd / math.sqrt(n)
    return (mean - half > -margin) & (mean + half < margin)


def looks(
    plan: SequentialPlan,
    diffs: Mapping[str, Sequence[float]],
    seeds: Mapping[str, Sequence[int]] | None = None,
) -> list[Look]:
    """Every look the finished seeds allow, replayed from the start.

    `diffs` holds, per comparison (the variant's name), its paired differences variant -
    baseline in seed order (the study's seeds 0, 1, 2, ...: the n-th value is seed n - 1,
    unless `seeds` gives each value's seed, for the reasons). A comparison decided at a look
    takes no part in later ones (values past its stop are ignored). The replay stops at the
    first look some open comparison lacks seeds for. A look whose values show no spread or an
    outlier seed says so in its `reason`: the rule decides with every seed in (an outlier is
    not dropped after being seen), and the verdict names it.
    """
    names = list(diffs)
    if not names:
        return []
    width = max(plan.max, *(len(v) for v in diffs.values()))
    x = np.full((1, len(names), width), np.nan)
    lengths = np.zeros((1, len(names)), dtype=int)
    for i, c in enumerate(names):
        v = np.asarray(diffs[c], dtype=float)
        x[0, i, : len(v)] = v
        lengths[0, i] = len(v)
    rep, _ = replay(plan, x, lengths)
    m = len(names)
    out: list[Look] = []
    for k, n in enumerate(plan.looks_at):
        if not (rep.code[k, 0] >= 0).any():
            break
        look = Look(n=n)
        for i, c in enumerate(names):
            code = int(rep.code[k, 0, i])
            if code < 0:
                continue
            needed = math.nan
            sd = float(rep.sd[k, 0, i])
            sd = sd if sd > 0 else (plan.decision.pilot_sd or 0.0)
            if code == _UNDECIDED and sd > 0:
                needed = float(seeds_needed(sd, plan.decision, m, already=n))
            tost = code == _EQUIVALENT
            values = x[0, i, :n]
            reason, flagged = _look_reason(plan, values, list(seeds[c]) if seeds else None)
            look.comparisons[c] = ComparisonLook(
                comparison=c,
                n=n,
                mean_diff=float(rep.mean[k, 0, i]),
                ci_low=float(rep.ci_low[k, 0, i]),
                ci_high=float(rep.ci_high[k, 0, i]),
                level=float(rep.level[k, 0, i]),
                p=float(rep.p[k, 0, i]),
                equivalence_level=float(rep.equivalence_level[k, 0, i]),
                decision=_WORDS[code],
                seeds_needed=needed,
                ci_level=float(rep.ci_level[k, 0, i]),
                interval="tost" if tost else "efficacy",
                reason=reason,
                outlier_seeds=flagged,
            )
        out.append(look)
    return out


def _look_reason(
    plan: SequentialPlan, values: np.ndarray, seeds: list[int] | None
) -> tuple[str, str]:
    """(reason, outlier seeds) of a comparison's values at a look (`ablation.stats.checks`)."""
    named = seeds[: len(values)] if seeds else list(range(len(values)))
    reason, flagged = describe(values, named)
    constant = spread_verdict(values)
    if constant is not None:
        reason = "; ".join(r for r in (constant[1], reason) if r)
    return reason, flagged


def next_seeds(plan: SequentialPlan, diffs: Mapping[str, Sequence[float]]) -> tuple[int, list[str]]:
    """(n, comparisons): the comparisons that need seeds up to n per variant (the baseline too)
    before the next look; ``(n, [])`` once every comparison is decided or `max` was looked at.

    The driver calls it after each batch of trials with the finished paired values; seeds the
    comparisons already have are never asked for again.
    """
    done = looks(plan, diffs)
    decided = {c for look in done for c, r in look.comparisons.items() if r.decision != CONTINUE}
    open_ = [c for c in diffs if c not in decided]
    if not done:
        return plan.start, open_
    if done[-1].n >= plan.max or not open_:
        return done[-1].n, []
    return done[-1].n + 1, open_


def final_decisions(history: Sequence[Look]) -> dict[str, ComparisonLook]:
    """Each comparison's row at the look that decided it (or its latest look, if still open)."""
    out: dict[str, ComparisonLook] = {}
    for look in history:
        out.update(look.comparisons)
    return out


@dataclass(frozen=True)
class Forecast:
    """What a sequential plan is expected to do at a paired sd, simulated through `replay`.

    Scenarios: every comparison's true effect 0, min_effect or 2 x min_effect (in the better
    direction). `power` is the chance a comparison at min_effect ends better, `equivalent` the
    chance one at 0 ends equivalent, `trials` the study's mean trials in each scenario
    (baseline included: it runs as long as its longest comparison); `fixed_*` the same for the
    fixed-n design of `fixed_n` seeds (Holm's paired t-tests, the TOST at alpha), simulated on
    fresh seeds.
    """

    comparisons: int
    studies: int
    power: float
    equivalent: float
    trials: dict[str, float]
    fixed_n: int
    fixed_power: float
    fixed_equivalent: float

    @property
    def fixed_trials(self) -> int:
        return self.fixed_n * (self.comparisons + 1)


SCENARIOS = {"0": 0.0, "min_effect": 1.0, "2 x min_effect": 2.0}
_FORECAST_SEED = 20241201


def forecast(
    plan: SequentialPlan, sd: float, comparisons: int, fixed_n: int, studies: int = 2000
) -> Forecast:
    """Simulate `studies` planted studies of `comparisons` comparisons per scenario, through
    the rule the driver runs (seeded: the same numbers on every machine)."""
    rng = np.random.default_rng(_FORECAST_SEED)
    d = plan.decision
    m = comparisons
    sign = plan.mode.sign
    trials: dict[str, float] = {}
    rates: dict[str, float] = {}
    for name, k in SCENARIOS.items():
        effect = sign * k * d.min_effect
        x = effect + sd * rng.standard_normal((studies, m, plan.max))
        rep, used = replay(plan, x)
        trials[name] = float((used.sum(axis=1) + used.max(axis=1)).mean())
        f = effect + sd * rng.standard_normal((studies, m, fixed_n))
        mean, s = f.mean(axis=2), f.std(axis=2, ddof=1)
        p = 2 * sps.t.sf(np.abs(mean) / (s / math.sqrt(fixed_n)), fixed_n - 1)
        reject = np.array([holm(row, d.alpha)[1] for row in p])
        if name == "min_effect":
            rates["power"] = float(np.mean(rep.decision == _BETTER))
            rates["fixed_power"] = float(np.mean(reject & (np.sign(mean) == sign)))
        elif name == "0":
            rates["equivalent"] = float(np.mean(rep.decision == _EQUIVALENT))
            half = sps.t.ppf(1 - d.alpha, fixed_n - 1) * s / math.sqrt(fixed_n)
            inside = np.abs(mean) + half < d.min_effect
            rates["fixed_equivalent"] = float(np.mean(~reject & inside))
    return Forecast(comparisons=m, studies=studies, trials=trials, fixed_n=fixed_n, **rates)

"""What sequential seeds save against the fixed-n plan, design by design, in one run.

    .venv/bin/python benchmarks/sequential_savings.py [--studies 4000] [--seed 15]

A planted study has three comparisons with the baseline: effects 0, min_effect and
2 x min_effect (paired sd = min_effect = 1, the mix of issue 12). Each sequential design is
replayed through the service's own rule (`ablation.stats.sequential.replay`) on the same
planted seeds; the fixed-n plans are the ones `--dry-run` prescribes (power 0.8 and 0.9 at
min_effect, alpha / 3) with Holm's correction, on fresh seeds. Trials count the baseline (it
runs as long as its longest comparison). Printed per design: power at min_effect and
2 x min_effect, equivalence declared at effect 0, mean trials, the saving against each plan
(only where the design reaches that plan's power, within 0.005), and the saving against a
fixed n of the same power (interpolated between fixed n's). The last row is a
bound, not a design the service ships: the same looks with the sd known (z instead of t),
which is what the t-test's few degrees of freedom at the early looks cost.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy import stats as sps

from ablation.stats import Decision, SequentialPlan, seeds_for_power
from ablation.stats.intervals import holm
from ablation.stats.sequential import _BETTER, _EQUIVALENT, replay, spent

EFFECTS = np.array([0.0, -1.0, -2.0])  # metric "min": negative is better
DESIGNS = [  # (start, max, spending)
    (3, 14, "linear"),
    (3, 16, "linear"),
    (3, 18, "linear"),
    (3, 20, "linear"),
    (3, 22, "linear"),
    (3, 24, "linear"),
    (2, 18, "linear"),
    (4, 18, "linear"),
    (3, 18, "pocock"),
    (3, 24, "pocock"),
    (3, 18, "obrien-fleming"),
]
POWERS = (0.8, 0.9)  # the declared power of the fixed-n plans compared with


def fixed_design(rng: np.random.Generator, studies: int, n: int) -> tuple[float, float, float]:
    f = rng.normal(EFFECTS[None, :, None], 1, (studies, 3, n))
    mean, sd = f.mean(2), f.std(2, ddof=1)
    p = 2 * sps.t.sf(np.abs(mean / (sd / math.sqrt(n))), n - 1)
    reject = np.array([holm(row)[1] for row in p])
    better = reject & (mean < 0)
    half = sps.t.ppf(0.95, n - 1) * sd / math.sqrt(n)
    equivalent = (~reject[:, 0]) & (np.abs(mean[:, 0]) + half[:, 0] < 1.0)
    return better[:, 1].mean(), better[:, 2].mean(), equivalent.mean()


def z_levels(plan: SequentialPlan, alpha: float, two_sided: bool) -> np.ndarray:
    """The same spending's nominal levels for the z statistic (the sd known), simulated."""
    n = np.asarray(plan.looks_at)
    rng = np.random.default_rng(1)
    z = np.cumsum(rng.standard_normal((200_000, n[-1])), axis=1)[:, n - 1] / np.sqrt(n)
    z = np.abs(z) if two_sided else z
    budget = np.diff(spent(n / n[-1], alpha, plan.spending), prepend=0.0)
    alive, levels = np.ones(len(z), dtype=bool), np.zeros(len(n))
    for k in range(len(n)):
        cross = int(budget[k] * len(z))
        if cross >= 1:
            c = float(np.sort(z[alive, k])[::-1][cross])
            levels[k] = (2 if two_sided else 1) * sps.norm.sf(c)
            alive &= z[:, k] <= c
    return levels


def known_sd_replay(plan: SequentialPlan, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rule of `replay` with z for t (sd = 1 known): a bound, for the table's last row."""
    S, C, _ = x.shape
    alpha = plan.decision.alpha
    table = np.array([z_levels(plan, alpha / (C - r), True) for r in range(C)])
    eq = z_levels(plan, alpha, False)
    state = np.zeros((S, C), dtype=int)
    used = np.zeros((S, C), dtype=int)
    rows = np.arange(S)
    rejected = np.zeros(S, dtype=int)
    for k, n in enumerate(plan.looks_at):
        active = state == 0
        if not active.any():
            break
        mean = x[:, :, :n].mean(axis=2)
        p = 2 * sps.norm.sf(np.abs(mean) * math.sqrt(n))
        key = np.where(active, p, np.inf)
        order = np.argsort(key, axis=1, kind="stable")
        stepping = np.ones(S, dtype=bool)
        r = rejected.copy()
        for j in range(C):
            c = order[:, j]
            hit = stepping & (key[rows, c] <= table[np.minimum(r, C - 1), k])
            state[rows[hit], c[hit]] = np.where(mean[rows[hit], c[hit]] < 0, _BETTER, 2)
            r, stepping = r + hit, stepping & hit
        rejected = r
        g = float(eq[k])
        half = (sps.norm.isf(g) if g > 0 else np.inf) / math.sqrt(n)
        state[active & (state == 0) & (np.abs(mean) + half < 1.0)] = _EQUIVALENT
        used = np.where(active, n, used)
    return state, used


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=15)
    args = ap.parse_args()
    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    width = max(m for _, m, _ in DESIGNS)
    x = rng.normal(EFFECTS[None, :, None], 1, (args.studies, 3, width))

    fixed = {n: fixed_design(rng, args.studies, n) for n in range(8, 25)}
    plans = {pw: seeds_for_power(1.0, 1.0, alpha=0.05 / 3, power=pw) for pw in POWERS}

    def equal_power_trials(power: float) -> float:
        ns = np.array(sorted(fixed))
        pw = np.maximum.accumulate(np.array([fixed[n][0] for n in ns]))
        return 4 * float(np.interp(power, pw, ns))

    print(f"{args.studies} planted studies per design; effects 0, 1, 2 (sd 1, min_effect 1)")
    for pw, n in plans.items():
        p1, p2, eq = fixed[n]
        print(
            f"fixed-n plan at power {pw:g}: {n} seeds, {4 * n} trials; power {p1:.3f} at 1, "
            f"{p2:.3f} at 2, equivalent at 0 {eq:.3f}"
        )
    head = f"\n{'design':<28}{'power@1':>8}{'power@2':>8}{'equiv@0':>8}{'trials':>8}"
    print(head + "".join(f"{f'vs plan {pw:g}':>12}" for pw in plans) + f"{'vs equal-power n':>18}")

    def row(name: str, state: np.ndarray, used: np.ndarray) -> None:
        power1, power2 = (state[:, 1] == _BETTER).mean(), (state[:, 2] == _BETTER).mean()
        equiv = (state[:, 0] == _EQUIVALENT).mean()
        trials = (used.sum(axis=1) + used.max(axis=1)).mean()
        vs = ""
        for n in plans.values():
            reached = power1 >= fixed[n][0] - 0.005
            vs += f"{1 - trials / (4 * n):>12.1%}" if reached else f"{'-':>12}"
        same = equal_power_trials(power1)
        print(
            f"{name:<28}{power1:>8.3f}{power2:>8.3f}{equiv:>8.3f}{trials:>8.1f}{vs}"
            f"{1 - trials / same:>18.1%}"
        )

    for start, mx, spending in DESIGNS:
        plan = SequentialPlan(start, mx, Decision(min_effect=1.0), spending=spending)
        rep, used = replay(plan, x[:, :, :mx])
        row(f"{{{start}, {mx}}} {spending}", rep.decision, used)
    shipped = SequentialPlan(3, 20, Decision(min_effect=1.0))
    state, used = known_sd_replay(shipped, x[:, :, :20])
    row("{3, 20} linear, sd known", state, used)
    print(f"\n{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()

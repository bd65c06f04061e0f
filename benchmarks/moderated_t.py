"""Why the service keeps each comparison's own sd: the moderated t (Smyth 2004) at few seeds.

    PYTHONPATH=$PWD .venv/bin/python benchmarks/moderated_t.py [--studies 4000]

Three null comparisons (true effect 0) whose paired sds are 0.3, 1 and 3 (tenfold apart), n
seeds each, the fixed-n design: each comparison's variance is shrunk towards a prior fitted to
the study's three variances (limma's `fitFDist`: the prior's degrees of freedom d0 and scale
from the moments of the log variances), the moderated t has d0 + n - 1 degrees of freedom, and
Holm's correction runs over the three. Printed: the family-wise false-positive rate and each
comparison's rate at alpha / 3. Three variances cannot tell a prior's spread apart from
sampling noise, so d0 is often overestimated and the noisy comparison's variance shrunk.
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy import special
from scipy import stats as sps

from ablation.stats.intervals import holm

SDS = np.array([0.3, 1.0, 3.0])


def trigamma_inverse(y: float) -> float:
    """x with trigamma(x) = y (Smyth's Newton iteration)."""
    if y > 1e7:
        return 1 / np.sqrt(y)
    if y < 1e-6:
        return 1 / y
    x = 0.5 + 1 / y
    for _ in range(50):
        tri = special.polygamma(1, x)
        step = tri * (1 - tri / y) / special.polygamma(2, x)
        x += step
        if -step / x < 1e-8:
            break
    return float(x)


def prior(s2: np.ndarray, df: float) -> tuple[float, float]:
    """(d0, s0^2) fitted to the sample variances `s2` on `df` degrees of freedom each."""
    e = np.log(s2) - special.digamma(df / 2) + np.log(df / 2)
    excess = e.var(ddof=1) - special.polygamma(1, df / 2)
    if excess <= 0:
        return (np.inf, float(np.exp(e.mean())))
    d0 = 2 * trigamma_inverse(excess)
    return (d0, float(np.exp(e.mean() + special.digamma(d0 / 2) - np.log(d0 / 2))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=4000)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    for n in (3, 4, 6, 10):
        x = SDS[None, :, None] * rng.standard_normal((args.studies, 3, n))
        family, each = 0, np.zeros(3)
        for study in x:
            mean, s2 = study.mean(axis=1), study.var(axis=1, ddof=1)
            d0, s0 = prior(s2, n - 1)
            if np.isinf(d0):
                post, df = np.full(3, s0), np.inf
            else:
                post, df = (d0 * s0 + (n - 1) * s2) / (d0 + n - 1), d0 + n - 1
            p = 2 * sps.t.sf(np.abs(mean / np.sqrt(post / n)), df)
            family += holm(p, 0.05)[1].any()
            each += p < 0.05 / 3
        pairs = zip(SDS, each / args.studies, strict=True)
        rates = ", ".join(f"sd {s:g}: {r:.1%}" for s, r in pairs)
        print(f"n={n}: family-wise {family / args.studies:.1%}; at alpha/3 {rates}")


if __name__ == "__main__":
    main()

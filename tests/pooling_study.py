"""The synthetic CBAM pooling study that the report, figure and dashboard tests summarize.

A 2 x 2 factorial (spatial kernel 3 or 7 x channel pool avg or avg+max) beside a baseline
without attention, three seeds, four epochs; the first CBAM variant fails at seed 1 and the
second stops at seed 2, so every page has unfinished trials to leave out. Only the baseline's
latency is measured. Importable from any test (pytest puts ``tests/`` on the path for its
conftest).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ablation.report import Summary, summarize

# Each test names the variants itself: the names carry what it checks (escaping, say).
NAMES = ("no_attention", "cbam_k3", "cbam_k7", "cbam_k3&max", "cbam_k7&max")


def levels(kernel: str, pool: str) -> dict[str, str]:
    """A variant's factor levels: the CBAM spatial kernel size and channel pool."""
    return {"model.cbam.kernel_size": kernel, "model.cbam.channel_pool": pool}


def pooling_variants(names: Sequence[str] = NAMES) -> list[dict]:
    """The five variants for `synthetic_study_frames`: baseline, k3-avg, k7-avg, k3-max, k7-max."""
    baseline, k3, k7, k3_max, k7_max = names
    return [
        {"name": baseline, "effect": 0.0, "params": 272_474, "latency_ms": 1.9},
        {"name": k3, "effect": -1.5, "levels": levels("3", "avg"), "params": 279_000},
        {"name": k7, "effect": -2.0, "levels": levels("7", "avg"), "params": 281_000},
        {"name": k3_max, "effect": -1.0, "levels": levels("3", "avg+max"), "params": 279_500},
        {"name": k7_max, "effect": -3.5, "levels": levels("7", "avg+max"), "params": 281_500},
    ]


def pooling_summary(
    synthetic_study_frames: Callable,
    names: Sequence[str] = NAMES,
    *,
    study: str,
    n_resamples: int = 999,
) -> Summary:
    """The study's summary (conftest's ``synthetic_study_frames`` fixture builds its runs)."""
    trials, history = synthetic_study_frames(
        pooling_variants(names),
        [0, 1, 2],
        epochs=4,
        statuses={(names[1], 1): "FAILED", (names[2], 2): "STOPPED"},
    )
    return summarize(trials, history, study=study, baseline=names[0], n_resamples=n_resamples)

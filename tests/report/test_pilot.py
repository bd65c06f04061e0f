"""The power plan's paired sd, read from the studies of a real store."""

from __future__ import annotations

import numpy as np
import pytest

from ablation.report.pilot import earlier_paired_sd

VARIANTS = [
    {"name": "none", "effect": 0.0},
    {"name": "cbam", "effect": -1.0, "levels": {"model.attention": "cbam"}},
    {"name": "se", "effect": -0.5, "levels": {"model.attention": "se"}},
]


def _pooled(trials) -> float:
    v = trials.pivot(index="seed", columns="variant", values="val_top1_error")
    d = [v[c] - v["none"] for c in ("cbam", "se")]
    return float(np.sqrt(sum(((x - x.mean()) ** 2).sum() for x in d) / sum(len(x) - 1 for x in d)))


@pytest.fixture
def store(fresh_mlflow_uri, synthetic_study_frames, log_synthetic_study):
    old, old_h = synthetic_study_frames(VARIANTS, [0, 1, 2, 3], rng_seed=1)
    log_synthetic_study(fresh_mlflow_uri, "old", old, old_h, baseline="none")
    own, own_h = synthetic_study_frames(VARIANTS, [0, 1, 2], rng_seed=2)
    log_synthetic_study(fresh_mlflow_uri, "this", own, own_h, baseline="none")
    return fresh_mlflow_uri, old, own


def _ask(uri, study, ids):
    return earlier_paired_sd(
        uri,
        study=study,
        baseline_trial_ids=ids,
        dataset="cifar10",
        backbone="resnet20",
        metric="val_top1_error",
    )


def test_an_earlier_study_sharing_the_baselines_trials_comes_first(store):
    uri, old, _ = store
    ids = set(old.loc[old.variant == "none", "trial_id"])
    found = _ask(uri, "this", ids)
    assert found.source == "study old (shares the baseline's trial ids)"
    assert found.sd == pytest.approx(_pooled(old))


def test_else_the_studys_own_finished_trials_then_nothing(store):
    uri, _, own = store
    found = _ask(uri, "this", {"no-such-trial"})
    assert found.source.startswith("study this (this study's own finished trials")
    assert found.sd == pytest.approx(_pooled(own))
    assert _ask(uri, "new-study", {"no-such-trial"}) is None

"""The power plan's paired sd, read from the studies of a real store: the study's own finished
trials first; another study only when it shares the baseline's trials or its training setup."""

from __future__ import annotations

import numpy as np
import pytest

from ablation.report.pilot import (
    OWN,
    SAME_SETUP,
    SHARES_IDS,
    paired_sd_for_plan,
    setup_differences,
    training_setup,
)
from ablation.track.writer import flatten

VARIANTS = [
    {"name": "none", "effect": 0.0},
    {"name": "cbam", "effect": -1.0, "levels": {"model.attention": "cbam"}},
    {"name": "se", "effect": -0.5, "levels": {"model.attention": "se"}},
]

# A resolved trial config, as `resolve_config` gives it: what the setup is read from.
CONFIG = {
    "dataset": {"name": "digits", "root": None, "image_size": 16, "train_samples": 200},
    "model": {"backbone": "resnet20", "attention": "none", "cbam": {"kernel_size": 7}},
    "train": {"epochs": 2, "batch_size": 64, "optimizer": {"name": "adamw", "lr": 0.002}},
    "metric": {"name": "val_top1_error"},
}
SETUP = training_setup(CONFIG)


def _pooled(trials) -> float:
    v = trials.pivot(index="seed", columns="variant", values="val_top1_error")
    d = [v[c] - v["none"] for c in ("cbam", "se")]
    return float(np.sqrt(sum(((x - x.mean()) ** 2).sum() for x in d) / sum(len(x) - 1 for x in d)))


def _log(uri, make, log, name, seeds, rng_seed, config=CONFIG, **frames_kw):
    """A study in the store whose trials record `config` as their params, as the writer does."""
    trials, history = make(VARIANTS, seeds, rng_seed=rng_seed, **frames_kw)
    # Another study's trials have other ids (the synthetic ids hash variant/seed only).
    trials["trial_id"] = name + "-" + trials["trial_id"]
    history["trial_id"] = name + "-" + history["trial_id"]
    log(uri, name, trials, history, baseline="none", params=flatten(config) or None)
    return trials


def _ask(uri, study="this", ids=(), base_ids=(), setup=SETUP):
    return paired_sd_for_plan(
        uri,
        study=study,
        trial_ids=set(ids),
        baseline_trial_ids=set(base_ids),
        setup=setup,
        metric="val_top1_error",
    )


def test_training_setup_is_data_backbone_and_how_it_trains():
    assert SETUP["dataset.name"] == "digits" and SETUP["model.backbone"] == "resnet20"
    assert SETUP["train.epochs"] == "2" and SETUP["train.optimizer.name"] == "adamw"
    assert "model.attention" not in SETUP and "dataset.root" not in SETUP  # what studies vary
    other = training_setup({**CONFIG, "train": {**CONFIG["train"], "epochs": 5}})
    assert setup_differences(SETUP, other) == ["train.epochs 5 there, 2 here"]


def test_the_studys_own_finished_trials_come_first(
    fresh_mlflow_uri, synthetic_study_frames, log_synthetic_study
):
    uri, make, log = fresh_mlflow_uri, synthetic_study_frames, log_synthetic_study
    # Another study with the same setup and more pairs, and one sharing the baseline's trials:
    # the study's own finished trials still come first (their noise is the one to plan with).
    _log(uri, make, log, "same-setup", [0, 1, 2, 3, 4, 5], rng_seed=1, noise=3.0)
    own = _log(uri, make, log, "this", [0, 1, 2], rng_seed=2)
    found = _ask(uri, ids=own["trial_id"], base_ids=own.loc[own.variant == "none", "trial_id"])
    assert found.found.source == OWN
    assert found.found.sd == pytest.approx(_pooled(own))
    assert (found.found.pairs, found.found.comparisons) == (6, 2)
    assert str(found.found).endswith(f"from {OWN}, 6 pairs over 2 comparisons")
    # Trials that are not of the current definition (other trial ids) are not its own pairs.
    elsewhere = _ask(uri, ids={"an-earlier-definition"})
    assert elsewhere.found.source == f"study same-setup ({SAME_SETUP})"
    assert elsewhere.found.pairs == 12


def test_a_study_trained_otherwise_is_refused(
    fresh_mlflow_uri, synthetic_study_frames, log_synthetic_study
):
    # Issue 25: a study on the same data and backbone, but 5 epochs of SGD, gave the plan a
    # paired sd of 6.66 from 2 pairs for a 2-epoch AdamW study.
    uri, make, log = fresh_mlflow_uri, synthetic_study_frames, log_synthetic_study
    other = {
        **CONFIG,
        "train": {"epochs": 5, "batch_size": 64, "optimizer": {"name": "sgd", "lr": 0.002}},
    }
    _log(uri, make, log, "unrelated", [0, 1], rng_seed=3, config=other, noise=5.0)
    choice = _ask(uri)
    assert choice.found is None
    (why,) = choice.refused
    assert why.startswith("study unrelated: another training setup (")
    assert "train.epochs 5 there, 2 here" in why and "train.optimizer.name sgd there" in why
    # The same data and training: used, and the plan says from where and on how many pairs.
    same = _log(uri, make, log, "matching", [0, 1, 2, 3], rng_seed=4)
    choice = _ask(uri)
    assert choice.found.source == f"study matching ({SAME_SETUP})"
    assert choice.found.sd == pytest.approx(_pooled(same))
    assert choice.found.pairs == 8 and len(choice.refused) == 1


def test_a_study_sharing_the_baselines_trials_beats_one_with_the_same_setup(
    fresh_mlflow_uri, synthetic_study_frames, log_synthetic_study
):
    uri, make, log = fresh_mlflow_uri, synthetic_study_frames, log_synthetic_study
    _log(uri, make, log, "matching", [0, 1, 2, 3], rng_seed=4)
    shared = _log(uri, make, log, "pilot", [0, 1, 2], rng_seed=5, config={})
    ids = shared.loc[shared.variant == "none", "trial_id"]
    choice = _ask(uri, base_ids=ids)
    assert choice.found.source == f"study pilot ({SHARES_IDS})"
    assert choice.found.sd == pytest.approx(_pooled(shared))
    assert _ask(uri, study="new", setup={**SETUP, "dataset.name": "cifar10"}).found is None


def test_the_dry_run_names_the_study_it_refused(
    tmp_path, capsys, fresh_mlflow_uri, synthetic_study_frames, log_synthetic_study
):
    import helpers

    from ablation.cli import main

    uri = fresh_mlflow_uri
    other = {
        **CONFIG,
        "train": {"epochs": 5, "batch_size": 64, "optimizer": {"name": "sgd", "lr": 0.05}},
    }
    _log(uri, synthetic_study_frames, log_synthetic_study, "unrelated", [0, 1], 3, config=other)
    path = helpers.write_study(tmp_path, "planned", decision={"min_effect": 2.0})
    assert main(["run", str(path), "--dry-run", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert "no paired sd to plan with" in out
    assert "not planned from study unrelated: another training setup (" in out
    assert "train.epochs 5 there, 2 here" in out

"""The Optuna ledger and trial queue, on a real SQLite Optuna storage (no Ray, no training)."""

from __future__ import annotations

import optuna
import pytest
from helpers import write_study

from ablation.run.search import Ledger, TrialQueue, sampled_variants
from ablation.study import expand, factor_space, load_study, trials_for_variant, variant_from_levels


def _optuna_study(tmp_path, sampler: str):
    path = write_study(
        tmp_path,
        f"search-{sampler}",
        design="optuna",
        factors={"model.cbam.kernel_size": [3, 7], "model.cbam.reduction": [8, 16]},
        search={"sampler": sampler, "n_trials": 3, "seed": 0},
    )
    return load_study(path)


def _drain(study, tmp_path):
    space = factor_space(study)
    ledger = Ledger(f"sqlite:///{tmp_path}/optuna.db", study, space)

    def make_specs(levels):
        return trials_for_variant(study, variant_from_levels(study, levels))

    designed = expand(study)  # for design optuna: the baseline (the base configuration)
    queue = TrialQueue(
        ledger,
        designed,
        is_done=lambda _: False,
        sample=lambda: sampled_variants(
            study, ledger, space, budget=3, known=[designed[0].levels], make_specs=make_specs
        ),
    )
    started = []
    while (item := queue.next()) is not None:
        spec, number = item
        started.append(spec)
        # As the driver does when the trial ends: tell its objective (here: the seed).
        ledger.complete(number, [float(spec.seed)])
    return ledger, started


@pytest.mark.parametrize("sampler", ["tpe", "random", "grid"])
def test_sampler_chooses_distinct_variants_each_run_on_every_seed_once(tmp_path, sampler):
    study = _optuna_study(tmp_path, sampler)
    ledger, started = _drain(study, tmp_path)
    ids = [s.trial_id for s in started]
    assert len(ids) == len(set(ids)) == 4 * 2  # baseline + 3 chosen variants, 2 seeds, none twice
    by_variant: dict[str, set[int]] = {}
    for spec in started:
        by_variant.setdefault(spec.variant, set()).add(spec.seed)
    assert len(by_variant) == 4 and all(seeds == {0, 1} for seeds in by_variant.values())

    trials = optuna.load_study(study_name=study.study, storage=ledger.storage_url).get_trials()
    real = [t for t in trials if "duplicate_of" not in t.user_attrs]
    assert sorted(t.user_attrs["trial_id"] for t in real) == sorted(ids)
    assert all(t.state.name == "COMPLETE" for t in real)
    # The seeds of one variant share its point of the factor space.
    points = {}
    for t in real:
        points.setdefault(t.user_attrs["variant"], set()).add(tuple(sorted(t.params.items())))
    assert all(len(p) == 1 for p in points.values())
    if sampler == "grid":  # the space in order, each point once
        assert list(by_variant) == [
            "kernel_size=7,reduction=16",  # the baseline, then the space in order
            "kernel_size=3,reduction=8",
            "kernel_size=3,reduction=16",
            "kernel_size=7,reduction=8",
        ]


def test_a_second_driver_sees_the_first_ones_sampled_variants(tmp_path):
    study = _optuna_study(tmp_path, "random")
    ledger, started = _drain(study, tmp_path)
    again = Ledger(ledger.storage_url, study, factor_space(study))
    assert again.recover() == 0
    known = again.sampled_levels()
    assert len(known) == 4  # the baseline and the 3 chosen
    assert {variant_from_levels(study, lv).name for lv in known} == {s.variant for s in started}


def test_recover_fails_what_a_dead_driver_left_running_or_waiting(tmp_path):
    study = _optuna_study(tmp_path, "random")
    ledger = Ledger(f"sqlite:///{tmp_path}/optuna.db", study, factor_space(study))
    first = expand(study)[0]
    second, _ = trials_for_variant(
        study, variant_from_levels(study, {"model.cbam.kernel_size": 3, "model.cbam.reduction": 8})
    )
    ledger.complete(ledger.start(first), [1.0])
    ledger.start(second)  # left RUNNING
    ledger.study.enqueue_trial({}, user_attrs={"trial_id": "left-waiting"})  # never asked
    again = Ledger(ledger.storage_url, study, factor_space(study))
    assert again.recover() == 2
    states = {
        t.user_attrs["trial_id"]: t.state.name
        for t in optuna.load_study(study_name=study.study, storage=ledger.storage_url).trials
    }
    assert states == {first.trial_id: "COMPLETE", second.trial_id: "FAIL", "left-waiting": "FAIL"}
    assert again.recover() == 0

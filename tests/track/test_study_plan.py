"""The plan's definition keys and trial ids: what a rerun compares and what the report keeps."""

from __future__ import annotations

from types import SimpleNamespace

from ablation.track import names
from ablation.track.plan import StudyPlan, changed_keys, current_trials, definition_keys

BEFORE = {
    "study": "s",
    "train": {"epochs": 1, "optimizer": {"name": "sgd", "lr": 0.1}},
    "factors": {"model.cbam.kernel_size": [3, 7]},
    "seeds": [0, 1],
}


def test_changed_keys_name_each_edit_in_file_order():
    after = {
        "study": "s",
        "train": {"epochs": 2, "optimizer": {"name": "sgd"}, "schedule": "cosine"},
        "factors": {"model.cbam.kernel_size": [3, 7]},
        "seeds": [0, 1, 2],
    }
    assert changed_keys(definition_keys(BEFORE), definition_keys(after)) == [
        "train.epochs: 1 -> 2",
        "train.schedule: (not set) -> cosine",
        "seeds: [0, 1] -> [0, 1, 2]",
        "train.optimizer.lr: 0.1 -> (not set)",
    ]
    assert changed_keys(definition_keys(BEFORE), definition_keys(BEFORE)) == []


def _run(trial_id: str) -> SimpleNamespace:
    return SimpleNamespace(data=SimpleNamespace(tags={names.TRIAL_ID: trial_id}))


def test_only_the_plans_trials_are_current_and_the_rest_counted_apart():
    plan = StudyPlan("s", "0" * 16, "full-factorial", None, "m", "min", None, trial_ids=["a", "b"])
    runs = [_run("a"), _run("old"), _run("b"), _run("older")]
    current, aside = current_trials(runs, plan)
    assert [r.data.tags[names.TRIAL_ID] for r in current] == ["a", "b"] and aside == 2
    # A plan recorded before trial ids were (or none at all): every run, none set aside.
    legacy = StudyPlan("s", "0" * 16, "full-factorial", None, "m", "min", None)
    assert current_trials(runs, legacy) == (runs, 0) and current_trials(runs, None) == (runs, 0)
    assert StudyPlan.from_json(plan.to_json()) == plan

"""One count of trials: validate, the dry run and the run say it in the same words."""

from __future__ import annotations

import pytest
from helpers import write_study

from ablation.cli import main
from ablation.study import load_study, trial_count

SEQUENTIAL = {
    "seeds": {"start": 2, "max": 4},
    "decision": {"min_effect": 1.0, "pilot_sd": 1.0},
}


@pytest.mark.parametrize(
    ("changes", "count", "estimate"),
    [
        ({}, "2 variants x 2 seeds = 4 trials", "  4 trials: about"),
        (
            SEQUENTIAL,
            "2 variants x 2-4 (sequential) seeds = 4-8 trials",
            "  4 trials: about",  # the first look's, then its most
        ),
        (
            {
                "design": "optuna",
                "factors": {"model.cbam.kernel_size": [1, 3, 5, 7]},
                "search": {"n_trials": 5},
                "baseline": None,
                "seeds": [0],
            },
            "1 fixed + up to 3 sampled variants x 1 seed = up to 4 trials",
            "  up to 4 trials: about",  # the sampler's variants too, not the table's one row
        ),
    ],
    ids=["fixed", "sequential", "optuna"],
)
def test_validate_and_the_dry_run_count_the_same_trials(changes, count, estimate, tmp_path, capsys):
    path = write_study(tmp_path, "counted", **changes)
    assert trial_count(load_study(path)) == count
    assert main(["validate", str(path)]) == 0
    assert count in capsys.readouterr().out
    assert (
        main(["run", str(path), "--dry-run", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"]) == 0
    )
    said = capsys.readouterr().out
    assert count in said
    assert estimate in said, said  # the time estimate counts the same trials

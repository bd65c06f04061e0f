"""Did it learn? A variant whose top-1 error stays near chance, or whose training loss did not
fall, is flagged in the per-variant frame, the verdict lines, the report and the dashboard."""

from __future__ import annotations

import pandas as pd

from ablation.report.variants import NEAR_CHANCE, did_it_learn

# Issue 25: a 2-epoch study whose variants sat at about 85% top-1 error on 10 classes.
VARIANTS = [
    {"name": "none", "effect": 0.0},
    {"name": "cbam", "effect": -2.0, "levels": {"model.attention": "cbam"}},
    {"name": "se", "effect": 57.0, "levels": {"model.attention": "se"}},  # ~87% error
    {"name": "eca", "effect": -1.0, "levels": {"model.attention": "eca"}},  # loss stays flat
]


def _planted(make):
    trials, history = make(VARIANTS, [0, 1, 2, 3], rng_seed=7)
    flat = history["variant"] == "eca"
    history.loc[flat, "train_loss"] = 2.31 + 0.001 * history.loc[flat, "epoch"]  # ln 10 = 2.30
    return trials, history


def test_a_variant_near_chance_or_with_a_flat_loss_is_flagged_from_a_real_store(
    fresh_mlflow_uri, synthetic_study_frames, log_synthetic_study
):
    from ablation.dashboard import render_dashboard
    from ablation.report import study_summary
    from ablation.report.export import render
    from ablation.report.tables import verdict_lines

    trials, history = _planted(synthetic_study_frames)
    log_synthetic_study(
        fresh_mlflow_uri,
        "stuck",
        trials,
        history,
        baseline="none",
        params={"dataset.name": "digits", "model.backbone": "resnet20", "train.epochs": "3"},
    )
    summary, runs = study_summary(fresh_mlflow_uri, "stuck")
    v = summary.variants.set_index("variant")
    assert v.loc["none", "learned"] and v.loc["cbam", "learned"]
    assert v.loc["se", "learned"] == False  # noqa: E712 (numpy and Python bools alike)
    assert "near chance (90.0% for 10 classes)" in v.loc["se", "learned_why"]
    assert v.loc["eca", "learned"] == False  # noqa: E712
    assert "training loss did not fall" in v.loc["eca", "learned_why"]
    # The verdict lines mark the comparisons of the variants that did not learn, only those.
    lines = {line.split(" vs ")[0]: line for line in verdict_lines(summary) if " vs " in line}
    assert "says nothing about the architecture" in lines["se"]
    assert "says nothing about the architecture" in lines["eca"]
    assert "did not learn" not in lines["cbam"]
    # The report: the Learned column, the marked verdicts, a note per variant.
    md = render(summary, "md")
    assert "| Learned |" in md and "| NO |" in md
    assert "se did not learn: top-1 error" in md and "eca did not learn: training loss" in md
    # The dashboard: the same marks.
    page = render_dashboard(summary, runs)
    assert "[did not learn: se; this comparison says nothing about the architecture]" in page
    assert "Learned" in page


def _done(errors, dataset="digits"):
    return pd.DataFrame(
        {
            "trial_id": [f"t{i}" for i in range(len(errors))],
            "val_top1_error": errors,
            "dataset": dataset,
        }
    )


def _history(first, last, trials=2):
    rows = []
    for i in range(trials):
        rows += [
            {"trial_id": f"t{i}", "epoch": 1, "train_loss": first},
            {"trial_id": f"t{i}", "epoch": 2, "train_loss": last},
        ]
    return pd.DataFrame(rows)


def test_near_chance_is_accuracy_under_twice_chance():
    # 10 classes: chance accuracy 10%, flagged under 20% accuracy (above 80% error).
    assert NEAR_CHANCE == 2.0
    assert did_it_learn(_done([85.0, 86.0]), None)[0] is False
    assert did_it_learn(_done([78.0, 79.0]), None) == (True, "")
    # 100 classes: 85% error is 15% accuracy, fifteen times chance's: it learned.
    assert did_it_learn(_done([85.0, 85.0], "cifar100"), None) == (True, "")
    # Unknown classes (ImageFolder) and no loss curve: nothing to say.
    assert did_it_learn(_done([85.0], "imagefolder"), None) == (None, "")


def test_a_loss_that_fell_within_the_first_epoch_is_learning():
    good = _done([5.0, 6.0])
    # Flat after the first epoch, far below a uniform guess's ln 10 = 2.30: learned.
    assert did_it_learn(good, _history(0.20, 0.199)) == (True, "")
    # Flat at a uniform guess's loss: not learned, whatever the error says.
    learned, why = did_it_learn(good, _history(2.30, 2.29))
    assert learned is False and "did not fall (2.3 at epoch 1, 2.29 last)" in why
    # A loss that rose is no learning either.
    assert did_it_learn(_done([50.0]), _history(1.0, 1.4, trials=1))[0] is False
    assert did_it_learn(_done([]), None) == (None, "")

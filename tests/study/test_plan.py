"""The dry-run trial table: every trial with its levels, id, params and GFLOPs; nothing runs."""

from __future__ import annotations

import re

import pytest

from ablation.study import expand, parse_study
from ablation.study.plan import format_trial_table, trial_table

SMALL = """\
study: plan
dataset: {name: digits, image_size: 8}
model: {backbone: resnet20}
train: {epochs: 1}
factors:
  model.cbam.kernel_size: [3, 7]
variants: [{name: plain, model.attention: none}]
baseline: plain
seeds: [0, 1]
"""


def test_trial_table_has_every_trial_with_its_cost():
    models = pytest.importorskip("ablation.models")
    study = parse_study(SMALL)
    df = trial_table(study)
    assert list(df["trial_id"]) == [t.trial_id for t in expand(study)]
    assert list(df.columns) == [
        "variant",
        "kind",
        "factor.model.cbam.kernel_size",
        "seed",
        "trial_id",
        "overrides",
        "params",
        "gflops",
    ]
    assert len(df) == 6 and set(df["seed"]) == {0, 1}
    # Params as counted on the models themselves (digits: 1 channel, 10 classes).
    for name, attention, kernel in [("plain", "none", 7), ("kernel_size=3", "cbam", 3)]:
        model = models.build_model(
            "resnet20", attention, {"kernel_size": kernel}, num_classes=10, in_channels=1
        )
        expected = sum(p.numel() for p in model.parameters())
        assert set(df.loc[df["variant"] == name, "params"]) == {expected}
    by = df[df["seed"] == 0].set_index("variant")
    assert (
        by.loc["plain", "params"]
        < by.loc["kernel_size=3", "params"]
        < by.loc["kernel_size=7", "params"]
    )
    assert 0 < by.loc["plain", "gflops"] < by.loc["kernel_size=7", "gflops"]
    assert by.loc["kernel_size=3", "factor.model.cbam.kernel_size"] == "3"
    assert by.loc["plain", "kind"] == "baseline named"
    text = format_trial_table(df)
    assert "kernel_size" in text and "plain" in text and "6 trials" in text
    assert by.loc["kernel_size=7", "trial_id"] in text


def test_fractional_table_prints_the_aliasing():
    study = parse_study(
        SMALL.replace(
            "  model.cbam.kernel_size: [3, 7]\n",
            "  model.cbam.kernel_size: [3, 7]\n  model.cbam.reduction: [8, 16]\n"
            "  model.cbam.order: [channel-first, parallel]\n"
            "  model.cbam.spatial_norm: [false, true]\n",
        )
        + "design: fractional\n"
    )
    text = format_trial_table(trial_table(study, cost=False))
    assert "2^(4-1) = 8 runs, resolution IV" in text
    assert "a = bcd" in text and "ab = cd" in text
    assert "(8 + 1) variants" not in text and "9 variants x 2 seeds = 18 trials" in text


def test_dry_run_through_the_cli(tmp_path, capsys):
    pytest.importorskip("ablation.run.driver")
    from ablation.cli import main

    path = tmp_path / "plan.yaml"
    path.write_text(SMALL)
    assert (
        main(["run", str(path), "--dry-run", "--tracking-uri", f"sqlite:///{tmp_path}/m.db"]) == 0
    )
    out = capsys.readouterr().out
    assert out.count("plain") >= 2 and "gflops" in out
    assert not (tmp_path / "m.db").exists()


def test_a_zoo_attention_is_timed_with_its_arguments():
    # ECA's default kernel is 3 on resnet20's channels; kernel_size 9 adds 6 weights a block.
    pytest.importorskip("timm")
    from ablation.study.plan import measure_throughput
    from ablation.study.trials import resolve_config

    study = parse_study(SMALL)
    eca = {"model.attention": "eca"}
    default = measure_throughput(resolve_config(study, eca))
    wide = measure_throughput(resolve_config(study, {**eca, "model.attention_args.kernel_size": 9}))
    blocks = 9  # resnet20: 3 stages of 3 blocks, one attention each
    assert wide.params - default.params == blocks * (9 - 3)


def test_power_plan_prints_the_seeds_needed(tmp_path, capsys):
    pytest.importorskip("ablation.run.driver")
    from ablation.cli import main

    path = tmp_path / "plan.yaml"
    path.write_text(
        SMALL.replace("seeds: [0, 1]", "seeds: {start: 3, max: 12}\n")
        + "decision: {min_effect: 2.0, pilot_sd: 1.5}\n"
    )
    uri = f"sqlite:///{tmp_path}/m.db"
    assert main(["run", str(path), "--dry-run", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    # sd 1.5, effect 2, alpha 0.05 / 2 comparisons, power 0.8: 9 seeds (noncentral t).
    assert "paired sd 1.5 from decision.pilot_sd" in out
    assert "kernel_size=3 vs plain: 9 seeds" in out and "27 trials" in out
    # The sequential seeds' forecast: simulated power against the fixed plan's, mean trials.
    assert "sequential seeds 3..12: at most 36 trials; simulated at paired sd 1.5" in out
    assert re.search(r"power at min_effect 0\.\d\d \(fixed 9 seeds: 0\.\d\d\)", out)
    assert re.search(r"mean trials: \d+ if every effect is 0, .* \(fixed: 27\)", out)
    assert not (tmp_path / "m.db").exists()


def test_power_plan_without_an_sd_suggests_a_pilot():
    from ablation.study.plan import PairedSd, power_plan

    study = parse_study(SMALL + "decision: {min_effect: 1.0}\n")
    table = trial_table(study, cost=False)
    lines = power_plan(study, table)
    assert any("run a pilot first" in x for x in lines)
    lines = power_plan(study, table, PairedSd(1.0, "study old (same data set and backbone)", 30))
    assert any("from study old (same data set and backbone)" in x for x in lines)
    assert any("kernel_size=7 vs plain: 13 seeds" in x for x in lines)
    assert any("39 trials, about 20 min" in x for x in lines)
    assert any("fewer than the 13 planned" in x for x in lines)
    assert power_plan(parse_study(SMALL), table) == []

"""Designs: which variants each design gives, and every variant x every seed."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest

from ablation.study import (
    StudyError,
    all_variants,
    expand,
    factor_space,
    fractional_design,
    level_label,
    levels_from_labels,
    parse_study,
    trials_for_variant,
    variant_from_levels,
)

HEAD = """\
study: designs
dataset: {name: digits}
model: {backbone: resnet20}
train: {epochs: 2}
"""


def study_of(body: str):
    return parse_study(HEAD + body, "designs.yaml")


def test_full_factorial_3x2_with_two_named_variants_and_two_seeds_is_16_trials():
    study = study_of(
        """
factors:
  model.cbam.channel_pool: [[avg], [max], [avg, max]]
  model.cbam.kernel_size: [3, 7]
variants:
  - {name: no-attention, model.attention: none}
  - {name: se, model.attention: se}
baseline: no-attention
seeds: [0, 1]
"""
    )
    trials = expand(study)
    assert len(trials) == 16
    assert Counter(t.seed for t in trials) == {0: 8, 1: 8}
    assert len({t.trial_id for t in trials}) == 16
    assert len({(t.variant, t.seed) for t in trials}) == 16
    # Every combination once per seed, the baseline first, seed by seed.
    design = [t for t in trials if t.levels]
    combos = {
        (tuple(t.levels["model.cbam.channel_pool"]), t.levels["model.cbam.kernel_size"])
        for t in design
    }
    assert combos == set(itertools.product([("avg",), ("max",), ("avg", "max")], [3, 7]))
    assert [t.variant for t in trials[:2]] == ["no-attention", "channel_pool=avg,kernel_size=3"]
    assert [t.seed for t in trials] == [0] * 8 + [1] * 8
    # The design variant equal to the base configuration is recognisable.
    base = [v for v in all_variants(study) if v.is_base]
    assert [v.name for v in base] == ["channel_pool=avg+max,kernel_size=7"]
    # Resolved configs carry the levels and the overrides.
    by_name = {t.variant: t for t in trials if t.seed == 0}
    assert by_name["se"].config["model"]["attention"] == "se"
    assert by_name["channel_pool=max,kernel_size=3"].config["model"]["cbam"]["kernel_size"] == 3
    assert by_name["channel_pool=max,kernel_size=3"].config["model"]["cbam"]["channel_pool"] == [
        "max"
    ]


def test_one_at_a_time_is_the_default_plus_each_other_level():
    study = study_of(
        """
design: one-at-a-time
factors:
  model.cbam.reduction: [4, 8, 16]
  model.cbam.kernel_size: [3, 7]
  train.optimizer.lr: [0.05, 0.1, 0.2]
seeds: [0, 1, 2]
"""
    )
    names = [v.name for v in all_variants(study)]
    # default (16, 7, 0.1) + reduction 4, 8 + kernel 3 + lr 0.05, 0.2
    assert names == [
        "reduction=16,kernel_size=7,lr=0.1",
        "reduction=4,kernel_size=7,lr=0.1",
        "reduction=8,kernel_size=7,lr=0.1",
        "reduction=16,kernel_size=3,lr=0.1",
        "reduction=16,kernel_size=7,lr=0.05",
        "reduction=16,kernel_size=7,lr=0.2",
    ]
    assert study.baseline == names[0]
    assert len(expand(study)) == 6 * 3


def test_one_at_a_time_default_need_not_be_a_level():
    study = study_of(
        """
design: one-at-a-time
factors:
  model.cbam.kernel_size: [3, 5]
"""
    )
    assert [v.name for v in all_variants(study)] == [
        "kernel_size=7",
        "kernel_size=3",
        "kernel_size=5",
    ]


FIVE = """
design: fractional
factors:
  model.cbam.channel_pool: [[avg], [avg, max]]
  model.cbam.spatial_pool: [[avg], [avg, max]]
  model.cbam.kernel_size: [3, 7]
  model.cbam.order: [channel-first, parallel]
  model.cbam.spatial_norm: [false, true]
variants: [{name: plain, model.attention: none}]
baseline: plain
seeds: [0, 1]
"""


def test_fractional_2_5_1_is_resolution_v_with_its_aliasing():
    study = study_of(FIVE)
    design = fractional_design(study)
    assert design.runs == 16 and design.resolution == 5
    assert design.generators == "a b c d abcd"
    # Balanced and orthogonal: each column half -1, half +1; each pair of columns 4 of each.
    columns = list(zip(*design.matrix, strict=True))
    for col in columns:
        assert sorted(Counter(col).values()) == [8, 8]
    for a, b in itertools.combinations(columns, 2):
        assert Counter(zip(a, b, strict=True)) == {(-1, -1): 4, (-1, 1): 4, (1, -1): 4, (1, 1): 4}
    # The defining relation: the product of all five columns is constant.
    assert {row[0] * row[1] * row[2] * row[3] * row[4] for row in design.matrix} == {1}
    text = design.describe()
    assert "2^(5-1) = 16 runs, resolution V" in text
    assert "I = abcde" in text and "ab = cde" in text
    trials = expand(study)
    assert len(trials) == (16 + 1) * 2
    assert len({t.variant for t in trials}) == 17


def test_fractional_six_factors_is_a_16_run_resolution_iv_fraction():
    body = FIVE.replace(
        "  model.cbam.spatial_norm: [false, true]\n",
        "  model.cbam.spatial_norm: [false, true]\n  model.cbam.reduction: [8, 16]\n",
    )
    design = fractional_design(study_of(body))
    assert (design.runs, design.resolution) == (16, 4)
    # Resolution IV: no main effect is aliased with a two-factor interaction.
    for chain in design.aliases:
        terms = [t.strip() for t in chain.split("=")]
        if any(len(t) == 1 for t in terms):
            assert all(len(t) == 1 or len(t) >= 3 for t in terms), chain


def test_fractional_can_be_given_generators_or_a_resolution():
    study = study_of(FIVE + "fractional: {generators: a b c d abc}\n")
    assert fractional_design(study).resolution == 4
    with pytest.raises(StudyError, match="resolution III"):
        study_of(FIVE + "fractional: {generators: a b c d ab}\n")
    with pytest.raises(StudyError, match="resolution 6"):
        study_of(FIVE + "fractional: {resolution: 6}\n")


def test_optuna_factor_space_and_sampled_variants():
    study = study_of(
        """
design: optuna
factors:
  model.cbam.reduction: [4, 16]
  model.cbam.channel_pool: [[avg], [avg, max]]
  train.optimizer.lr: [1, 0.1]
variants: [{name: plain, model.attention: none}]
search: {sampler: tpe, n_trials: 3}
seeds: [0, 1]
"""
    )
    space = factor_space(study)
    assert space == {
        "model.cbam.reduction": [4, 16],
        "model.cbam.channel_pool": [["avg"], ["avg", "max"]],
        "train.optimizer.lr": [1.0, 0.1],  # validated values: lr is a float
    }
    # expand() gives the fixed part: the baseline (here the base point of the space) and named.
    assert study.baseline == "reduction=16,channel_pool=avg+max,lr=0.1"
    assert [t.variant for t in expand(study)] == [study.baseline, "plain"] * 2
    picked = {
        "model.cbam.reduction": 4,
        "model.cbam.channel_pool": ["avg"],
        "train.optimizer.lr": 1,
    }
    variant = variant_from_levels(study, picked)
    assert variant.name == "reduction=4,channel_pool=avg,lr=1.0"
    trials = trials_for_variant(study, variant)
    assert [t.seed for t in trials] == [0, 1]
    assert trials[0].config["model"]["cbam"]["reduction"] == 4
    labels = {k: level_label(v) for k, v in variant.levels.items()}
    assert variant_from_levels(study, levels_from_labels(study, labels)).name == variant.name
    with pytest.raises(ValueError, match="not a level"):
        variant_from_levels(study, {**picked, "model.cbam.reduction": 8})
    with pytest.raises(ValueError, match="every factor"):
        variant_from_levels(study, {"model.cbam.reduction": 4})


def test_no_factors_is_one_base_variant():
    study = study_of("seeds: [3, 4]\n")
    trials = expand(study)
    assert [(t.variant, t.seed) for t in trials] == [("base", 3), ("base", 4)]
    assert study.baseline == "base"


def test_names_use_the_shortest_unique_suffix():
    study = study_of(
        """
factors:
  model.cbam.reduction: [16]
  train.optimizer.name: [sgd, adamw]
  dataset.name: [digits]
"""
    )
    names = [v.name for v in all_variants(study)]
    assert names == [
        "reduction=16,optimizer.name=sgd,dataset.name=digits",
        "reduction=16,optimizer.name=adamw,dataset.name=digits",
    ]


def test_order_is_deterministic():
    body = """
factors:
  model.cbam.kernel_size: [3, 7]
  model.cbam.order: [channel-first, parallel, spatial-first]
seeds: [2, 0, 1]
"""
    first = [(t.trial_id, t.variant, t.seed) for t in expand(study_of(body))]
    assert first == [(t.trial_id, t.variant, t.seed) for t in expand(study_of(body))]
    assert [s for _, _, s in first[::6]] == [2, 0, 1]

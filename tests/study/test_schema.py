"""The schema agrees with the code it describes: CBAM's knobs, the backbones, the data sets."""

from __future__ import annotations

import itertools

import pytest
from pydantic import ValidationError

from ablation.study import parse_study
from ablation.study.schema import (
    CBAMConfig,
    apply_overrides,
    path_problem,
)
from ablation.study.trials import resolve_config

cbam = pytest.importorskip("ablation.attention.cbam")


def test_cbam_defaults_are_the_papers_and_the_modules():
    defaults = CBAMConfig().model_dump()
    assert defaults == {
        "channel_pool": ["avg", "max"],
        "spatial_pool": ["avg", "max"],
        "kernel_size": 7,
        "reduction": 16,
        "order": "channel-first",
        "gates": ["channel", "spatial"],
        "spatial_norm": False,
        "init": "official",
    }
    assert cbam.normalize_cbam_knobs(defaults) == cbam.normalize_cbam_knobs({})


KNOB_CASES = [
    *({"kernel_size": k} for k in (-1, 0, 1, 2, 3, 4, 7, 9)),
    *({"reduction": r} for r in (-1, 0, 1, 16, 64)),
    *({"order": o} for o in ("channel-first", "spatial-first", "parallel", "serial")),
    *(
        {"channel_pool": list(p)}
        for n in range(0, 3)
        for p in itertools.permutations(["avg", "max", "lp", "x"], n)
    ),
    *(
        {"spatial_pool": list(p)}
        for n in range(0, 3)
        for p in itertools.permutations(["avg", "max", "lse"], n)
    ),
    *(
        {"gates": list(p)}
        for n in range(0, 3)
        for p in itertools.permutations(["channel", "spatial", "x"], n)
    ),
    {"gates": ["channel", "channel"]},
    {"spatial_norm": True},
    *({"init": i} for i in ("official", "pytorch", "kaiming", "")),
]


@pytest.mark.parametrize("knobs", KNOB_CASES, ids=str)
def test_schema_accepts_exactly_what_the_cbam_module_accepts(knobs):
    try:
        cbam.normalize_cbam_knobs(knobs)
        module_ok = True
    except ValueError:
        module_ok = False
    try:
        CBAMConfig.model_validate(knobs)
        schema_ok = True
    except ValidationError:
        schema_ok = False
    assert schema_ok == module_ok


def test_the_data_registry_states_what_the_data_sets_build():
    """ablation/vocabulary/datasets.py: the shapes the dry run and the schema use without
    loading data are those the built in-memory data sets have."""
    from ablation.data.build import build_datasets
    from ablation.vocabulary.datasets import DATASETS

    for data in DATASETS.values():
        if not data.in_memory:
            continue
        train, _, info = build_datasets({"name": data.name, "train_samples": 20, "val_samples": 10})
        assert info["image_size"] == data.image_size, data.name
        assert (info["in_channels"], info["num_classes"]) == (data.in_channels, data.num_classes)
        assert tuple(train[0][0].shape) == (data.in_channels, data.image_size, data.image_size)


def test_resolved_dataset_states_image_size_and_clutter():
    text = "study: s\ndataset: {name: cluttered-digits}\nmodel: {backbone: resnet20}\n"
    config = resolve_config(parse_study(text), {})
    assert config["dataset"]["image_size"] == 40
    assert config["dataset"]["clutter"] == {
        "fragments": 4,
        "fragment_size": 4,
        "digit_size": [0.35, 0.5],
    }


def test_paths_into_the_schema():
    assert path_problem("model.cbam.kernel_size") is None
    assert path_problem("train.optimizer") is None
    assert path_problem("dataset.clutter.fragments") is None
    assert "did you mean 'kernel_size'" in path_problem("model.cbam.kernal_size")
    assert "is a value" in path_problem("model.backbone.depth")
    assert "not a dotted key" in path_problem("model")
    assert apply_overrides({"a": {"b": 1}}, {"a.c.d": 2}) == {"a": {"b": 1, "c": {"d": 2}}}


def test_a_factor_on_the_data_set_gets_that_data_sets_defaults():
    text = (
        "study: s\ndataset: {name: cluttered-digits}\nmodel: {backbone: resnet20}\n"
        "factors: {dataset.name: [cluttered-digits, digits]}\n"
    )
    from ablation.study import expand

    by_name = {t.config["dataset"]["name"]: t.config["dataset"] for t in expand(parse_study(text))}
    assert by_name["digits"]["image_size"] == 32 and by_name["digits"]["clutter"] is None
    assert by_name["cluttered-digits"]["image_size"] == 40

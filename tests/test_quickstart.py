"""experiments/quickstart.yaml (what `make demo` runs) validates and plans what its header says;
the dry run's time estimate adds up.

The header records how the quickstart was sized; its `Chosen:` and `Plan:` lines are the
sizes and the trial counts that evidence is about, so they are read here and checked against
the study itself: a change to the file that leaves its header stale fails.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ablation.cli import main
from ablation.study import load_study
from ablation.study.plan import (
    RUN_STARTUP_SECONDS,
    TRIAL_EXTRA_SECONDS,
    Throughput,
    time_estimate,
    trial_seconds,
    trial_table,
)

QUICKSTART = Path(__file__).resolve().parent.parent / "experiments" / "quickstart.yaml"

CHOSEN = re.compile(
    r"^# Chosen: (?P<backbone>\w+), (?P<size>\d+) px canvas, (?P<train>\d+) training and "
    r"(?P<val>\d+) validation images, (?P<epochs>\d+) epochs, batch (?P<batch>\d+)",
    re.M,
)
PLAN = re.compile(
    r"^# Plan: (?P<variants>\d+) variants x seeds (?P<start>\d+)\.\.(?P<max>\d+): "
    r"(?P<first>\d+) trials at the first look, at most (?P<most>\d+)",
    re.M,
)


def _header(pattern: re.Pattern) -> dict[str, str]:
    match = pattern.search(QUICKSTART.read_text())
    assert match, f"{QUICKSTART.name}: no header line matching {pattern.pattern!r}"
    return match.groupdict()


def test_quickstart_validates(capsys):
    assert main(["validate", str(QUICKSTART)]) == 0, capsys.readouterr()


def test_quickstart_is_the_study_its_header_sized():
    chosen = _header(CHOSEN)
    study = load_study(QUICKSTART)
    assert study.model.backbone == chosen["backbone"]
    assert study.dataset.image_size == int(chosen["size"])
    assert study.dataset.train_samples == int(chosen["train"])
    assert study.dataset.val_samples == int(chosen["val"])
    assert study.train.epochs == int(chosen["epochs"])
    assert study.train.batch_size == int(chosen["batch"])


def test_quickstart_plans_the_trials_its_header_says():
    plan = {k: int(v) for k, v in _header(PLAN).items()}
    study = load_study(QUICKSTART)
    table = trial_table(study, cost=False)
    variants = table["variant"].nunique()
    seq = study.sequential_seeds
    assert seq is not None and study.decision is not None
    assert (variants, seq.start, seq.max) == (plan["variants"], plan["start"], plan["max"])
    assert len(table) == plan["first"] == variants * seq.start
    assert variants * seq.max == plan["most"]
    # A real CBAM ablation: the baseline without attention, CBAM among the variants.
    attention = {v: t.config["model"]["attention"] for v, t in _first_trials(study).items()}
    assert attention[study.baseline] == "none" and "cbam" in attention.values()


def _first_trials(study) -> dict:
    from ablation.study.design import all_variants
    from ablation.study.trials import trials_for_variant

    return {v.name: trials_for_variant(study, v)[0] for v in all_variants(study)}


def test_trial_seconds_is_epochs_at_the_measured_speed_plus_the_extra():
    config = {"train": {"epochs": 10, "batch_size": 64}}
    speed = Throughput(train=1000.0, evaluate=4000.0, threads=1, batch=64)
    # 3000 training images drop a ragged batch of 56: 2944 trained per epoch.
    expected = 10 * (2944 / 1000 + 2000 / 4000) + TRIAL_EXTRA_SECONDS
    assert trial_seconds(config, (3000, 2000), speed) == pytest.approx(expected)
    # Fewer images than a batch: the one batch is trained.
    small = 10 * (50 / 1000 + 10 / 4000) + TRIAL_EXTRA_SECONDS
    assert trial_seconds(config, (50, 10), speed) == pytest.approx(small)


def test_time_estimate_of_the_quickstart_measures_each_model():
    study = load_study(QUICKSTART)
    table = trial_table(study, cost=False)
    lines = time_estimate(study, table, cpus=2)
    text = "\n".join(lines)
    seq = study.sequential_seeds
    assert lines[0].startswith("time, measured here")
    for variant in table["variant"].unique():
        line = next(x for x in lines if x.startswith(f"  {variant}: "))
        seconds = float(re.search(r"about (\d+) s per trial", line).group(1))
        assert seconds >= TRIAL_EXTRA_SECONDS
    first = re.search(r"(\d+) trials: about (\d+) s at the first look", text)
    assert first and int(first.group(1)) == len(table)
    assert int(first.group(2)) >= RUN_STARTUP_SECONDS
    assert f"at most {seq.max * table['variant'].nunique()} trials" in text


def test_time_estimate_says_nothing_of_a_gpu_study(tmp_path):
    text = QUICKSTART.read_text().replace("gpus_per_trial: 0", "gpus_per_trial: 1")
    path = tmp_path / "gpu.yaml"
    path.write_text(text)
    study = load_study(path)
    assert time_estimate(study, trial_table(study, cost=False)) == []

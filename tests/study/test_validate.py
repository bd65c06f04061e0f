"""`ablation validate`: malformed study files are rejected with FILE:LINE: key: message, exit 2."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ablation.cli import main
from ablation.study import StudyError, load_study, parse_study

REPO = Path(__file__).resolve().parents[2]

GOOD = """\
study: good
dataset:
  name: digits
model:
  backbone: resnet20
  attention: cbam
  cbam:
    kernel_size: 7
train:
  epochs: 2
  optimizer: {name: sgd, lr: 0.1}
factors:
  model.cbam.channel_pool: [[avg], [avg, max]]
variants:
  - {name: plain, model.attention: none}
seeds: [0, 1]
"""

POOLS = "[[avg], [avg, max]]"  # the levels of GOOD's factor


def _swap(old: str, new: str) -> str:
    """GOOD with `old` replaced by `new`: a file with one mistake."""
    assert old in GOOD, f"GOOD no longer holds {old!r}"
    return GOOD.replace(old, new)


# (id, YAML text, expected line, expected key path). Each file has exactly the one mistake.
MALFORMED = [
    ("empty", "", 1, "(file)"),
    ("comments-only", "# nothing here\n", 1, "(file)"),
    ("not-a-mapping", "- study: x\n- dataset: y\n", 1, "(file)"),
    ("scalar-document", "just a string\n", 1, "(file)"),
    ("yaml-syntax", "study: x\ndataset: {name: digits\nmodel: {backbone: resnet20}\n", 3, "(yaml)"),
    ("yaml-bad-indent", "study: x\ndataset:\n  name: digits\n   root: /x\n", 4, "(yaml)"),
    ("missing-study", "dataset: {name: digits}\nmodel: {backbone: resnet20}\n", 1, "study"),
    ("missing-dataset-name", _swap("  name: digits\n", "  image_size: 32\n"), 2, "dataset.name"),
    ("unknown-top-level", GOOD + "seed: 3\n", 17, "seed"),
    ("duplicate-key", _swap("seeds: [0, 1]", "seeds: [0, 1]\nseeds: [2]"), 17, "seeds"),
    ("unknown-dataset", _swap("name: digits", "name: mnist"), 3, "dataset.name"),
    ("cifar-without-root", _swap("name: digits", "name: cifar10"), 2, "dataset.root"),
    ("unknown-backbone", _swap("resnet20", "resnet21"), 5, "model.backbone"),
    ("unknown-attention", _swap("attention: cbam", "attention: cbma"), 6, "model.attention"),
    ("even-kernel", _swap("kernel_size: 7", "kernel_size: 4"), 8, "model.cbam.kernel_size"),
    ("kernel-as-string", _swap("kernel_size: 7", 'kernel_size: "7"'), 8, "model.cbam.kernel_size"),
    ("unknown-cbam-knob", _swap("kernel_size: 7", "kernal_size: 7"), 8, "model.cbam.kernal_size"),
    ("zero-reduction", _swap("kernel_size: 7", "reduction: 0"), 8, "model.cbam.reduction"),
    ("empty-pool", _swap("kernel_size: 7", "channel_pool: []"), 8, "model.cbam.channel_pool"),
    (
        "unknown-pool",
        _swap("kernel_size: 7", "spatial_pool: [avg, lse]"),
        8,
        "model.cbam.spatial_pool[1]",
    ),
    ("negative-lr", _swap("lr: 0.1", "lr: -0.1"), 11, "train.optimizer.lr"),
    ("unknown-optimizer", _swap("name: sgd", "name: adam"), 11, "train.optimizer.name"),
    ("zero-epochs", _swap("epochs: 2", "epochs: 0"), 10, "train.epochs"),
    (
        "factor-typo",
        _swap("model.cbam.channel_pool:", "model.cbam.chanel_pool:"),
        13,
        "factors.model.cbam.chanel_pool",
    ),
    (
        "factor-unknown-section",
        _swap("model.cbam.channel_pool:", "optim.lr:"),
        13,
        "factors.optim.lr",
    ),
    (
        "factor-on-metric",
        _swap(
            "model.cbam.channel_pool: [[avg], [avg, max]]", "metric.name: [val_loss, train_loss]"
        ),
        13,
        "factors.metric.name",
    ),
    (
        "factor-level-wrong-type",
        _swap(
            "model.cbam.channel_pool: [[avg], [avg, max]]",
            "model.cbam.kernel_size:\n    - 3\n    - seven",
        ),
        15,
        "factors.model.cbam.kernel_size[1]",
    ),
    (
        "factor-level-invalid",
        _swap(POOLS, "[[avg], [avg, median]]"),
        13,
        "factors.model.cbam.channel_pool[1]",
    ),
    (
        "factor-duplicate-level",
        _swap(POOLS, "[[avg], [avg]]"),
        13,
        "factors.model.cbam.channel_pool[1]",
    ),
    ("factor-no-levels", _swap(POOLS, "[]"), 13, "factors.model.cbam.channel_pool"),
    ("factor-not-a-list", _swap(POOLS, "avg"), 13, "factors.model.cbam.channel_pool"),
    (
        "variant-typo",
        _swap("model.attention: none", "model.atention: none"),
        15,
        "variants[0].model.atention",
    ),
    (
        "variant-bad-value",
        _swap("model.attention: none", "model.attention: sk"),
        15,
        "variants[0].model.attention",
    ),
    ("variant-no-name", _swap("name: plain, ", ""), 15, "variants[0]"),
    (
        "variant-undotted-key",
        _swap("model.attention: none", "attention: none"),
        15,
        "variants[0].attention",
    ),
    (
        "variant-duplicate-name",
        _swap(
            "  - {name: plain, model.attention: none}\n",
            "  - {name: plain, model.attention: none}\n  - {name: plain, model.attention: se}\n",
        ),
        16,
        "variants[1].name",
    ),
    (
        "variant-same-as-design",
        _swap("model.attention: none", "model.cbam.channel_pool: [avg]"),
        15,
        "variants[0]",
    ),
    ("unknown-baseline", GOOD + "baseline: plane\n", 17, "baseline"),
    ("empty-seeds", _swap("seeds: [0, 1]", "seeds: []"), 16, "seeds"),
    ("duplicate-seed", _swap("seeds: [0, 1]", "seeds: [0, 0]"), 16, "seeds"),
    ("unknown-design", GOOD + "design: latin-square\n", 17, "design"),
    (
        "fractional-three-levels",
        _swap(POOLS, "[[avg], [max], [avg, max]]") + "design: fractional\n",
        13,
        "factors.model.cbam.channel_pool",
    ),
    ("fractional-too-few", GOOD + "design: fractional\n", 17, "design"),
    ("optuna-no-budget", GOOD + "design: optuna\n", 1, "search"),
    ("unknown-sampler", GOOD + "search: {sampler: cmaes, n_trials: 3}\n", 17, "search.sampler"),
    ("metric-unknown", GOOD + "metric: {name: accuracy}\n", 17, "metric.name"),
    ("metric-epoch-past-end", GOOD + "metric: {epoch: 5}\n", 17, "metric.epoch"),
    (
        "early-stopping-on-params",
        GOOD + "metric: {name: params}\nearly_stopping: {grace_epochs: 1}\n",
        18,
        "early_stopping",
    ),
    ("negative-gpus", GOOD + "resources: {gpus_per_trial: -1}\n", 17, "resources.gpus_per_trial"),
    ("bad-study-name", _swap("study: good", "study: my study/1"), 1, "study"),
    (
        "milestones-without-step",
        _swap("epochs: 2", "epochs: 2\n  milestones: [1]"),
        11,
        "train.milestones",
    ),
    (
        "clutter-on-digits",
        _swap("name: digits", "name: digits\n  clutter: {fragments: 2}"),
        4,
        "dataset.clutter",
    ),
    (
        "sequential-seeds-without-decision",
        _swap("seeds: [0, 1]", "seeds: {start: 3, max: 12}"),
        16,
        "seeds",
    ),
    (
        "sequential-start-past-max",
        _swap("seeds: [0, 1]", "seeds: {start: 5, max: 3}\ndecision: {min_effect: 1.0}"),
        16,
        "seeds.start",
    ),
    (
        "sequential-seeds-with-asha",
        _swap(
            "seeds: [0, 1]",
            "seeds: {start: 3, max: 12}\ndecision: {min_effect: 1.0}\n"
            "early_stopping: {scheduler: asha}",
        ),
        18,
        "early_stopping",
    ),
    (
        "sequential-seeds-typo",
        _swap("seeds: [0, 1]", "seeds: {start: 3, mx: 12}\ndecision: {min_effect: 1.0}"),
        16,
        "seeds.mx",
    ),
    (
        "decision-without-min-effect",
        _swap("seeds: [0, 1]", "seeds: [0, 1]\ndecision: {alpha: 0.05}"),
        17,
        "decision.min_effect",
    ),
]


def _validate(
    tmp_path: Path, text: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str, str]:
    path = tmp_path / "study.yaml"
    path.write_text(text)
    rc = main(["validate", str(path)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_good_file_validates(tmp_path, capsys):
    rc, out, err = _validate(tmp_path, GOOD, capsys)
    assert (rc, err) == (0, "")
    assert "OK" in out and "3 variants x 2 seeds = 6 trials" in out


@pytest.mark.parametrize(
    ("text", "line", "key"), [m[1:] for m in MALFORMED], ids=[m[0] for m in MALFORMED]
)
def test_malformed_file_is_rejected_with_line_and_key(tmp_path, capsys, text, line, key):
    rc, out, err = _validate(tmp_path, text, capsys)
    path = tmp_path / "study.yaml"
    assert rc == 2
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert lines, "no problem reported"
    expected = f"{path}:{line}: {key}: "
    assert any(x.startswith(expected) for x in lines), f"want {expected!r} in:\n{err}"
    for x in lines:  # every line has the FILE:LINE: key: message shape
        assert x.startswith(f"{path}:") and x.count(": ") >= 2, x


def test_enough_malformed_cases():
    assert len(MALFORMED) >= 25
    assert len({m[0] for m in MALFORMED}) == len(MALFORMED)


def test_sequential_seeds_load_as_the_first_seeds(tmp_path, capsys):
    text = GOOD.replace("seeds: [0, 1]", "seeds: {start: 3, max: 12}\ndecision: {min_effect: 1}")
    study = parse_study(text)
    assert study.seeds == [0, 1, 2]
    assert (study.sequential_seeds.start, study.sequential_seeds.max) == (3, 12)
    assert study.decision.min_effect == 1.0 and study.decision.power == 0.8
    rc, out, err = _validate(tmp_path, text, capsys)
    assert (rc, err) == (0, "") and "3-12 (sequential) seeds" in out


def test_sequential_seeds_messages_name_the_fix(tmp_path, capsys):
    rc, _, err = _validate(
        tmp_path, GOOD.replace("seeds: [0, 1]", "seeds: {start: 3, max: 12}"), capsys
    )
    assert rc == 2 and "needs a decision section" in err and "min_effect" in err
    text = GOOD.replace(
        "seeds: [0, 1]",
        "seeds: {start: 3, max: 12}\ndecision: {min_effect: 1.0}\nearly_stopping: {}",
    )
    rc, _, err = _validate(tmp_path, text, capsys)
    assert rc == 2 and "cannot be used with sequential seeds" in err


def test_messages_say_what_is_wrong():
    bad = GOOD.replace("model.cbam.channel_pool:", "model.cbam.kernal_size:").replace(
        "[[avg], [avg, max]]", "[3, 7]"
    )
    with pytest.raises(StudyError) as info:
        parse_study(bad, "s.yaml")
    (problem,) = info.value.problems
    assert "did you mean 'kernel_size'" in problem.message
    bad = GOOD.replace("[[avg], [avg, max]]", "[3, 4]").replace("channel_pool", "kernel_size")
    with pytest.raises(StudyError) as info:
        parse_study(bad, "s.yaml")
    (problem,) = info.value.problems
    assert problem.key == "factors.model.cbam.kernel_size[1]"
    assert "level 1 (4)" in problem.message and "odd" in problem.message


def test_all_problems_of_a_file_are_reported_at_once():
    bad = (
        GOOD.replace("resnet20", "resnet21")
        .replace("model.cbam.channel_pool:", "model.cbam.chanel_pool:")
        .replace("model.attention: none", "model.attention: sk")
    )
    with pytest.raises(StudyError) as info:
        parse_study(bad, "s.yaml")
    keys = [p.key for p in info.value.problems]
    assert "model.backbone" in keys and "factors.model.cbam.chanel_pool" in keys


def test_missing_file_and_several_files(tmp_path, capsys):
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    rc = main(["validate", str(good), str(tmp_path / "missing.yaml")])
    out = capsys.readouterr()
    assert rc == 2
    assert f"{good}: OK" in out.out
    assert f"{tmp_path / 'missing.yaml'}: (file): no such file" in out.err
    assert main(["validate", str(good), str(good)]) == 0


def test_yaml_1_2_floats_are_floats():
    study = parse_study(GOOD.replace("lr: 0.1", "lr: 1e-3"))
    assert study.train.optimizer.lr == 0.001


def test_validate_as_a_real_process(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("kernel_size: 7", "kernel_size: 4"))
    good = tmp_path / "good.yaml"
    good.write_text(GOOD)
    proc = subprocess.run(
        [sys.executable, "-m", "ablation.cli", "validate", str(good), str(bad)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"{bad}:8: model.cbam.kernel_size: must be odd (3, 5, 7, ...) so the spatial map keeps "
        "its size; got 4"
    )
    assert "Traceback" not in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "ablation.cli", "validate", str(good)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr


EXPERIMENTS = sorted((REPO / "experiments").glob("*.yaml"))


@pytest.mark.skipif(not EXPERIMENTS, reason="no study files in experiments/ yet")
@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.name for p in EXPERIMENTS])
def test_every_experiment_validates(path):
    study = load_study(path)
    assert study.study and study.seeds


def test_fixture_text_is_plain():
    # The malformed cases are built by string replacement: each must really differ from GOOD.
    for name, text, _, _ in MALFORMED:
        assert text != GOOD, name
    assert textwrap.dedent(GOOD) == GOOD

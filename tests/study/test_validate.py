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
    (problem,) = info.value.found
    assert "did you mean 'kernel_size'" in problem.message
    bad = GOOD.replace("[[avg], [avg, max]]", "[3, 4]").replace("channel_pool", "kernel_size")
    with pytest.raises(StudyError) as info:
        parse_study(bad, "s.yaml")
    (problem,) = info.value.found
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
    first, not_checked = proc.stderr.strip().splitlines()
    assert first == (
        f"{bad}:8: model.cbam.kernel_size: must be odd (3, 5, 7, ...) so the spatial map keeps "
        "its size; got 4"
    )
    # The factor's levels and the variant's override are checked against the base
    # configuration, which is invalid here: one line says they were not checked.
    assert not_checked.startswith(f"{bad}: (not checked): ")
    assert "the factors' levels" in not_checked and "the variants' overrides" in not_checked
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


# Issue 25: three independent mistakes, each in another stage of the checks (a misspelt key:
# the schema; an even kernel: a value; an unknown baseline: the variant set), all in one run.
THREE_MISTAKES = (
    GOOD.replace("  name: digits\n", "  name: digits\n  image_sise: 16\n")
    .replace("kernel_size: 7", "kernel_size: 4")
    .replace("seeds: [0, 1]", "baseline: plane\nseeds: [0, 1]")
)


def test_three_independent_mistakes_are_reported_in_one_run(tmp_path):
    path = tmp_path / "three.yaml"
    path.write_text(THREE_MISTAKES)
    proc = subprocess.run(
        [sys.executable, "-m", "ablation.cli", "validate", str(path)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    found = [x for x in lines if not x.startswith(f"{path}: (not checked): ")]
    assert [x.split(": ")[0:2] for x in found] == [
        [f"{path}:4", "dataset.image_sise"],
        [f"{path}:9", "model.cbam.kernel_size"],
        [f"{path}:17", "baseline"],
    ], proc.stderr
    assert "did you mean 'image_size'" in found[0]
    assert "must be odd" in found[1]
    assert "'plane' is not a variant" in found[2] and "did you mean 'plain'" in found[2]
    # The checks that need the (invalid) base configuration are named, once, not left out.
    (not_checked,) = [x for x in lines if x not in found]
    assert "the factors' levels" in not_checked and "valid base configuration" in not_checked


def test_an_unknown_key_holds_no_check_back():
    # A misspelt key is left out (it means nothing); every other check still runs on the file.
    bad = GOOD.replace("  name: digits\n", "  name: digits\n  image_sise: 16\n").replace(
        POOLS, "[[avg], [avg, median]]"
    )
    with pytest.raises(StudyError) as info:
        parse_study(bad, "s.yaml")
    assert [p.key for p in info.value.problems] == [
        "dataset.image_sise",
        "factors.model.cbam.channel_pool[1]",
        "(not checked)",
    ]
    # The bad level leaves the variants unnamed: the baseline check says it did not run.
    assert "the variant names and the baseline" in info.value.problems[-1].message


def test_checks_that_read_a_bad_key_are_not_run_on_a_guess():
    # decision.min_effect is invalid, so the decision is left out; "sequential seeds need a
    # decision section" would then be false, and is not said.
    bad = GOOD.replace("seeds: [0, 1]", "seeds: {start: 3, max: 12}\ndecision: {min_effect: x}")
    with pytest.raises(StudyError) as info:
        parse_study(bad, "s.yaml")
    assert [p.key for p in info.value.found] == ["decision.min_effect"]


def test_a_yaml_error_says_nothing_else_was_checked():
    with pytest.raises(StudyError) as info:
        parse_study("study: x\ndataset: {name: digits\n", "s.yaml")
    assert [p.key for p in info.value.problems] == ["(yaml)", "(not checked)"]


def test_the_stages_are_a_list_a_stage_can_join(tmp_path):
    # A stage is a function of the draft that returns its problems; the stages after it see
    # the keys it blamed as unsound.
    from ablation.study import load
    from ablation.study.problems import Problem

    def no_resnet20(draft):
        if draft.data["model"]["backbone"] == "resnet20":
            return [Problem(draft.problems.file, 5, "model.backbone", "not today")]
        return []

    with pytest.raises(StudyError) as info:
        parse_study(GOOD, "s.yaml", (load.STAGES[0], no_resnet20, *load.STAGES[1:]))
    assert [p.key for p in info.value.found] == ["model.backbone"]
    assert "the base configuration" in info.value.problems[-1].message  # model: unsound
    assert parse_study(GOOD, "s.yaml").baseline == "channel_pool=avg+max"

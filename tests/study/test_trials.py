"""Trial ids: stable across processes, changed by anything that changes a result, and only that."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ablation.study import expand, parse_study, trials
from ablation.study.trials import code_version, source_hash, trial_id

REPO = Path(__file__).resolve().parents[2]

STUDY = """\
study: ids
description: trial ids
dataset: {name: cluttered-digits, train_samples: 500, val_samples: 100}
model:
  backbone: resnet20
  cbam: {kernel_size: 7}
train:
  epochs: 2
  optimizer: {lr: 0.1}
factors:
  model.cbam.channel_pool: [[avg], [avg, max]]
variants: [{name: plain, model.attention: none}]
seeds: [0, 1]
"""


def ids(text: str) -> dict[tuple[str, int], str]:
    return {(t.variant, t.seed): t.trial_id for t in expand(parse_study(text))}


def test_ids_are_16_hex_and_distinct():
    got = ids(STUDY)
    assert len(got) == 6 and len(set(got.values())) == 6
    assert all(len(i) == 16 and int(i, 16) >= 0 for i in got.values())


def test_ids_are_equal_in_another_process(tmp_path):
    path = tmp_path / "ids.yaml"
    path.write_text(STUDY)
    code = (
        "import json, sys; from ablation.study import expand, load_study; "
        "trials = expand(load_study(sys.argv[1])); "
        "print(json.dumps([[t.variant, t.seed, t.trial_id] for t in trials]))"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code, str(path)],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=120,
            env={"PYTHONHASHSEED": seed, "PATH": "/usr/bin:/bin"},
            check=True,
        ).stdout
        for seed in ("1", "2")
    ]
    assert runs[0] == runs[1]
    theirs = {(v, s): i for v, s, i in json.loads(runs[0])}
    assert theirs == ids(STUDY)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("lr: 0.1", "lr: 0.05"),
        ("kernel_size: 7", "kernel_size: 3"),
        ("train_samples: 500", "train_samples: 400"),
        ("val_samples: 100", "val_samples: 101"),
        ("epochs: 2", "epochs: 3"),
        ("name: cluttered-digits,", "name: cluttered-digits, split_seed: 1,"),
        ("name: cluttered-digits,", "name: cluttered-digits, clutter: {fragments: 5},"),
        ("name: cluttered-digits,", "name: cluttered-digits, image_size: 32,"),
        ("backbone: resnet20", "backbone: resnet32"),
    ],
    ids=["lr", "cbam-knob", "train-size", "val-size", "epochs", "split", "clutter", "size", "net"],
)
def test_a_result_relevant_change_changes_every_id(old, new):
    assert old in STUDY
    before, after = ids(STUDY), ids(STUDY.replace(old, new))
    assert before.keys() == after.keys()
    changed = {k for k in before if before[k] != after[k]}
    assert changed == set(before), (old, new)


def test_seed_changes_the_id():
    got = ids(STUDY)
    assert got[("plain", 0)] != got[("plain", 1)]
    other = ids(STUDY.replace("seeds: [0, 1]", "seeds: [1, 2]"))
    assert other[("plain", 1)] == got[("plain", 1)]


def test_a_factor_level_changes_only_its_variants():
    got = ids(STUDY)
    changed = ids(STUDY.replace("[[avg], [avg, max]]", "[[max], [avg, max]]"))
    assert changed[("plain", 0)] == got[("plain", 0)]
    assert changed[("channel_pool=avg+max", 0)] == got[("channel_pool=avg+max", 0)]
    assert ("channel_pool=max", 0) in changed and changed[
        ("channel_pool=max", 0)
    ] not in got.values()


def test_description_name_and_other_settings_do_not_change_ids():
    got = ids(STUDY)
    assert ids(STUDY.replace("study: ids", "study: another-study")) == got
    assert ids(STUDY.replace("description: trial ids", "description: other words")) == got
    extra = "resources: {cpus_per_trial: 2, max_concurrent: 3}\ntracking: {uri: sqlite:///x.db}\n"
    assert ids(STUDY + extra) == got
    assert ids(STUDY + "baseline: plain\n") == got
    # Spelling the default explicitly is the same configuration.
    assert ids(STUDY.replace("kernel_size: 7}", "kernel_size: 7, reduction: 16}")) == got


def test_code_version_changes_with_the_training_code(tmp_path):
    (tmp_path / "attention").mkdir()
    (tmp_path / "attention" / "cbam.py").write_text("K = 7\n")
    (tmp_path / "train.py").write_text("def train(): ...\n")
    (tmp_path / "cli.py").write_text("x = 1\n")
    first = source_hash(tmp_path, "0.1.0")
    assert source_hash(tmp_path, "0.1.0") == first
    (tmp_path / "cli.py").write_text("x = 2\n")  # not result-relevant
    assert source_hash(tmp_path, "0.1.0") == first
    (tmp_path / "attention" / "cbam.py").write_text("K = 3\n")
    second = source_hash(tmp_path, "0.1.0")
    assert second != first
    assert source_hash(tmp_path, "0.2.0") != second
    assert len(code_version()) == 16


# -- the trial-id rule: exactly the sources that can change a result ------------------------

PACKAGE = Path(trials.__file__).resolve().parent.parent
RULE_CONFIG = {
    "dataset": {"name": "digits", "image_size": 32},
    "model": {"backbone": "resnet20", "attention": "cbam", "cbam": {}},
    "train": {"epochs": 1, "cbam_backend": "auto"},
    "metric": {"name": "val_top1_error"},
}


def _with_backend(backend: str, attention: str = "cbam") -> dict:
    config = copy.deepcopy(RULE_CONFIG)
    config["train"]["cbam_backend"] = backend
    config["model"]["attention"] = attention
    return config


def _ids_after_editing(monkeypatch, relative: str) -> dict[str, str]:
    """Trial ids per backend (and for attention none) with the real file `relative` seen as
    edited: its digest changes, its bytes on disk do not."""
    target = PACKAGE / relative
    assert target.is_file(), relative
    real = trials.source_digest

    def edited(path: Path) -> bytes:
        return real(path) + (b"edited" if path == target else b"")

    monkeypatch.setattr(trials, "source_digest", edited)
    trials.code_version.cache_clear()
    try:
        return _ids_now()
    finally:
        monkeypatch.setattr(trials, "source_digest", real)
        trials.code_version.cache_clear()


def _ids_now() -> dict[str, str]:
    ids = {b: trial_id(_with_backend(b), 0) for b in ("auto", "reference", "fused", "kernels")}
    ids["no-cbam"] = trial_id(_with_backend("auto", attention="none"), 0)
    return ids


def test_trial_id_rule_follows_the_sources_the_backend_may_run(monkeypatch):
    trials.code_version.cache_clear()
    before = _ids_now()
    assert len(set(before.values())) == 5  # the backend is part of the config
    changed = {
        # the reference gates: every CBAM trial, whatever its backend, and attention none too
        # (attention/*.py is the reference's package, hashed for every trial)
        "attention/cbam.py": {"auto", "reference", "fused", "kernels", "no-cbam"},
        # the C++ kernels: only what may run them (auto picks them on float32 CPU)
        "attention/fast/cbam_kernels.cpp": {"auto", "kernels"},
        "attention/fast/native.py": {"auto", "kernels"},
        "attention/fast/fused.py": {"auto", "fused", "kernels"},
        "vocabulary/cbam.py": {"auto", "reference", "fused", "kernels", "no-cbam"},
        # speed-only and declared so (RESULT_NEUTRAL = True): no trial
        "attention/__main__.py": set(),
    }
    for relative, expected in changed.items():
        after = _ids_after_editing(monkeypatch, relative)
        moved = {name for name in before if after[name] != before[name]}
        assert moved == expected, relative
    assert _ids_now() == before  # nothing left patched


def test_result_neutral_declaration_leaves_a_module_out_of_the_hash(tmp_path):
    (tmp_path / "attention" / "fast").mkdir(parents=True)
    (tmp_path / "attention" / "cbam.py").write_text("K = 7\n")
    fast = tmp_path / "attention" / "fast"
    (fast / "fused.py").write_text("def f(): return 1\n")
    (fast / "cbam_kernels.cpp").write_text("int f() { return 1; }\n")
    speed = fast / "speed.py"
    speed.write_text("RESULT_NEUTRAL = True  # proven equal by a test\nN = 1\n")
    first = {b: source_hash(tmp_path, "0.1.0", b) for b in trials.BACKEND_SOURCES}
    speed.write_text("RESULT_NEUTRAL = True  # proven equal by a test\nN = 2\n")
    assert {b: source_hash(tmp_path, "0.1.0", b) for b in trials.BACKEND_SOURCES} == first
    # Without the declaration the same edit counts (for the backends that may run it).
    speed.write_text("N = 3\n")
    third = {b: source_hash(tmp_path, "0.1.0", b) for b in trials.BACKEND_SOURCES}
    assert third["reference"] == first["reference"] and third["fused"] == first["fused"]
    assert third["kernels"] != first["kernels"] and third["auto"] != first["auto"]
    # A declaration inside a string or a function is not one.
    speed.write_text('"""RESULT_NEUTRAL = True"""\ndef g():\n    RESULT_NEUTRAL = True\n')
    assert source_hash(tmp_path, "0.1.0", "kernels") != first["kernels"]
    (fast / "cbam_kernels.cpp").write_text("int f() { return 2; }\n")
    assert source_hash(tmp_path, "0.1.0", "reference") == first["reference"]
    with pytest.raises(ValueError, match="cbam_backend"):
        source_hash(tmp_path, "0.1.0", "cuda")

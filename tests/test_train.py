"""One trial: reproducible on the CPU, resumable, and failing loudly when it diverges."""

import copy
import math
import time

import pytest
import torch
from pydantic import ValidationError

from ablation.study.schema import (
    DatasetConfig,
    MetricConfig,
    OptimizerConfig,
    TrainConfig,
    TrialConfig,
)
from ablation.track import names
from ablation.train import THREADS_ENV, TrialFailed, _lr_schedule, train_trial
from ablation.vocabulary.direction import Direction
from ablation.vocabulary.trial import DatasetSettings, ModelSettings, TrialSettings

TIMING = {"epoch_seconds", "images_per_second", "train_seconds", "latency_ms"}
EPOCH_KEYS = {"epoch", *names.EPOCH_METRICS}


def digits_config(**train):
    return {
        "dataset": {"name": "digits", "image_size": 16, "train_samples": 400, "val_samples": 200},
        "model": {"backbone": "resnet20", "attention": "cbam", "cbam": {"reduction": 4}},
        "train": {
            "epochs": 2,
            "batch_size": 64,
            "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4},
            "schedule": "cosine",
            "warmup_epochs": 1,
            **train,
        },
        "metric": {"name": "val_top1_error", "mode": "min"},
    }


@pytest.fixture(autouse=True)
def one_torch_thread(monkeypatch):
    # The machine is shared: one thread per trial, as Ray gives a 1-CPU trial.
    threads = torch.get_num_threads()
    monkeypatch.setenv(THREADS_ENV, "1")
    yield
    torch.set_num_threads(threads)


def settings(config: dict) -> TrialSettings:
    """What the trainable hands train_trial: the checked config as pydantic-free settings."""
    return TrialConfig.model_validate(config).settings()


def train_settings(**train):
    return settings({**digits_config(), "train": TrainConfig(**train).model_dump()}).train


def run(config, seed, **kwargs):
    reports = []

    def report(metrics):
        # The runner serialises the state during the call; a deep copy stands in for that.
        reports.append(copy.deepcopy(metrics))

    kwargs.setdefault("device", "cpu")
    final = train_trial(settings(config), seed, report, **kwargs)
    return reports, final


def without(metrics, keys):
    return {k: v for k, v in metrics.items() if k not in keys}


@pytest.fixture(scope="module")
def two_runs():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(THREADS_ENV, "1")
        threads = torch.get_num_threads()
        started = time.perf_counter()
        first = run(digits_config(), seed=0)
        seconds = time.perf_counter() - started
        second = run(digits_config(), seed=0)
        torch.set_num_threads(threads)
    return first, second, seconds


def test_two_epoch_digits_trial_reports_every_epoch_and_runs_in_seconds(two_runs):
    (reports, final), _, seconds = two_runs
    assert seconds < 30
    assert [r["epoch"] for r in reports] == [1, 2]
    for r in reports:
        assert set(r) == EPOCH_KEYS | {"state"}
        assert {"model", "optimizer", "scheduler", "epoch", "rng"} <= set(r["state"])
        assert all(math.isfinite(r[k]) for k in EPOCH_KEYS)
        assert 0 <= r["val_top5_error"] <= r["val_top1_error"] <= 100
    assert reports[1]["val_top1_error"] < 90  # it learned something in two epochs
    # the final metrics: the last epoch's plus the ones only known at the end
    assert set(final) - set(reports[-1]) == set(names.FINAL_METRICS)
    assert without(final, set(names.FINAL_METRICS)) == without(reports[-1], {"state"})
    assert final["epochs_completed"] == 2 and final["params"] > 200_000
    assert final["gflops"] > 0 and final["latency_ms"] > 0 and final["train_seconds"] > 0
    assert final["kernel_build_seconds"] >= 0


def test_same_seed_same_metrics_exactly(two_runs):
    (reports_a, final_a), (reports_b, final_b), _ = two_runs
    for a, b in zip(reports_a, reports_b, strict=True):
        assert without(a, TIMING | {"state"}) == without(b, TIMING | {"state"})
    assert without(final_a, TIMING) == without(final_b, TIMING)


def test_another_seed_gives_other_metrics(two_runs):
    (reports_a, _), _, _ = two_runs
    reports_c, _ = run(digits_config(epochs=1), seed=1)
    assert reports_c[0]["train_loss"] != reports_a[0]["train_loss"]
    assert reports_c[0]["val_loss"] != reports_a[0]["val_loss"]


def test_resume_from_epoch_one_reproduces_epoch_two(two_runs):
    (reports, final), _, _ = two_runs
    resumed_reports, resumed_final = run(digits_config(), seed=0, resume=reports[0]["state"])
    assert [r["epoch"] for r in resumed_reports] == [2]
    assert without(resumed_reports[0], TIMING | {"state"}) == without(
        reports[1], TIMING | {"state"}
    )
    assert without(resumed_final, TIMING) == without(final, TIMING)


def test_a_diverging_trial_fails_at_once_with_the_reason():
    config = digits_config(epochs=3, warmup_epochs=0, optimizer={"name": "sgd", "lr": 1e30})
    reports = []
    started = time.perf_counter()
    with pytest.raises(TrialFailed, match=r"non-finite training loss at epoch 1, step \d+"):
        train_trial(settings(config), 0, reports.append, device="cpu")
    assert reports == [] and time.perf_counter() - started < 20


def test_missing_cifar_fails_the_trial_with_how_to_get_it(tmp_path):
    config = digits_config()
    config["dataset"] = {"name": "cifar10", "root": str(tmp_path / "cifar"), "image_size": 32}
    with pytest.raises(TrialFailed, match="never downloads"):
        train_trial(settings(config), 0, lambda m: None, device="cpu")


def test_fake_data_adamw_step_schedule_label_smoothing_channels_last():
    config = {
        "dataset": {"name": "fake", "image_size": 16, "train_samples": 96, "val_samples": 32},
        "model": {"backbone": "resnet20", "attention": "se"},
        "train": {
            "epochs": 2,
            "batch_size": 32,
            "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.05},
            "schedule": "step",
            "milestones": [1],
            "gamma": 0.1,
            "label_smoothing": 0.1,
            "channels_last": True,
            "amp": True,  # ignored on the CPU
        },
    }
    reports, final = run(config, seed=0)
    assert [r["lr"] for r in reports] == pytest.approx([1e-3, 1e-4])
    assert final["epochs_completed"] == 2 and math.isfinite(final["val_loss"])


def test_imagefolder_trial_with_two_classes_uses_top2(tmp_path):
    from PIL import Image

    for c, name in enumerate(["dark", "light"]):
        (tmp_path / name).mkdir()
        for i in range(10):
            Image.new("RGB", (10, 10), color=(200 * c + i,) * 3).save(tmp_path / name / f"{i}.png")
    config = digits_config(epochs=1, batch_size=8)
    config["dataset"] = {"name": "imagefolder", "root": str(tmp_path), "image_size": 16}
    reports, final = run(config, seed=0)
    assert final["val_top5_error"] == 0.0  # top-k with k = min(5, 2 classes): always a hit


def test_schedules_warm_up_then_decay():
    cosine = _lr_schedule(
        train_settings(schedule="cosine", warmup_epochs=1), epochs=3, steps_per_epoch=10
    )
    assert cosine(0) == pytest.approx(0.1) and cosine(9) == pytest.approx(1.0)
    assert cosine(10) == pytest.approx(1.0) and cosine(20) == pytest.approx(0.5)
    assert 0 < cosine(29) < 0.01
    step = _lr_schedule(train_settings(schedule="step", milestones=[1, 2], gamma=0.5), 3, 10)
    assert [step(s) for s in (0, 9, 10, 19, 20, 29)] == [1, 1, 0.5, 0.5, 0.25, 0.25]
    assert _lr_schedule(train_settings(schedule="constant"), 3, 10)(25) == 1.0


# --- the GPU paths, on the CPU (issue 15) ---------------------------------------------------


def test_the_schema_checks_the_trial_settings_keys_defaults_and_bounds():
    """One definition (ablation/vocabulary/trial.py): the schema's keys and defaults are the
    dataclasses', and the bounds in their metadata are checked at parse time."""
    minimal = {"dataset": {"name": "digits"}, "model": {"backbone": "resnet20"}}
    expected = TrialSettings(DatasetSettings("digits"), ModelSettings("resnet20"))
    assert TrialConfig.model_validate(minimal).settings() == expected
    assert expected.metric.mode is Direction.MIN
    for section, bad in [
        (TrainConfig, {"epochs": 0}),
        (TrainConfig, {"milestones": [0]}),
        (OptimizerConfig, {"betas": [0.9]}),
        (OptimizerConfig, {"betas": [0.9, 1.0]}),
        (DatasetConfig, {"name": "digits", "image_size": 4}),
        (MetricConfig, {"mode": "maximize"}),
    ]:
        with pytest.raises(ValidationError):
            section.model_validate(bad)
    assert DatasetConfig(name="digits", image_size=None).image_size is None


def test_trial_settings_from_plain_data_need_every_key():
    dump = TrialConfig.model_validate(digits_config()).model_dump(mode="json")
    assert TrialSettings.from_dict(dump) == settings(digits_config())
    del dump["train"]["compile"]
    with pytest.raises(ValueError, match=r"'train': missing \['compile'\]"):
        TrialSettings.from_dict(dump)


def test_amp_is_the_old_name_of_precision_fp16():
    assert TrainConfig(amp=True).precision == "fp16"
    assert TrainConfig().precision == "fp32"
    with pytest.raises(ValueError, match="old name of precision: fp16"):
        TrainConfig(amp=True, precision="bf16")


def test_bf16_autocast_runs_on_the_cpu_and_changes_the_numerics(two_runs):
    (reports_fp32, _), _, _ = two_runs
    seen = []
    config = digits_config(epochs=1, precision="bf16")
    original = torch.nn.Linear.forward

    def spy(self, x):
        out = original(self, x)
        seen.append(out.dtype)
        return out

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch.nn.Linear, "forward", spy)
        reports, final = run(config, seed=0)
    assert torch.bfloat16 in seen  # the classifier ran under bf16 autocast
    assert math.isfinite(final["val_loss"]) and final["epochs_completed"] == 1
    assert reports[0]["train_loss"] != reports_fp32[0]["train_loss"]
    assert reports[0]["train_loss"] == pytest.approx(reports_fp32[0]["train_loss"], rel=0.05)


def test_fp16_on_the_cpu_runs_in_fp32_as_amp_did(two_runs):
    (reports_fp32, _), _, _ = two_runs
    reports, _ = run(digits_config(epochs=2, precision="fp16"), seed=0)
    assert without(reports[0], TIMING | {"state"}) == without(reports_fp32[0], TIMING | {"state"})


def test_device_resident_data_on_the_cpu_gives_the_loader_paths_metrics(two_runs):
    (reports_loader, final_loader), _, _ = two_runs
    reports, final = run(digits_config(data_placement="device"), seed=0)
    for a, b in zip(reports, reports_loader, strict=True):
        assert without(a, TIMING | {"state"}) == without(b, TIMING | {"state"})
    assert without(final, TIMING) == without(final_loader, TIMING)


def test_device_resident_resume_reproduces_epoch_two():
    config = digits_config(data_placement="device")
    reports, final = run(config, seed=3)
    resumed, resumed_final = run(config, seed=3, resume=reports[0]["state"])
    assert without(resumed[0], TIMING | {"state"}) == without(reports[1], TIMING | {"state"})


def test_compile_on_the_cpu_logs_its_time_apart_and_keeps_the_metrics(monkeypatch):
    from ablation.train import COMPILE_BACKEND_ENV

    # eager: dynamo's capture and guards, without inductor's C++ build (minutes on this CPU)
    monkeypatch.setenv(COMPILE_BACKEND_ENV, "eager")
    base = {"epochs": 1, "warmup_epochs": 0, "batch_size": 100}
    config = digits_config(**base)
    config["train"]["cbam_backend"] = "reference"  # whole graphs (the CPU kernels break them)
    config["dataset"].update(train_samples=200, val_samples=100)
    eager_reports, eager = run(config, seed=0)
    config["train"]["compile"] = True
    reports, final = run(config, seed=0)
    assert final["compile_seconds"] > 0 and eager["compile_seconds"] == 0.0
    assert final["train_seconds"] >= final["compile_seconds"] + reports[0]["epoch_seconds"] - 1e-6
    assert final["val_loss"] == pytest.approx(eager["val_loss"], rel=1e-3)
    assert final["val_top1_error"] == pytest.approx(eager["val_top1_error"], abs=1.0)


class FakeCuda:
    """torch.cuda's calls that place_trial makes, recorded (the CPU tests have no CUDA)."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def is_available(self) -> bool:
        return True

    def set_device(self, index: int) -> None:
        self.calls.append(("set_device", index))

    def set_per_process_memory_fraction(self, fraction: float, index: int) -> None:
        self.calls.append(("fraction", fraction, index))


def test_place_trial_with_cuda_mocked_sets_the_device_and_caps_memory(monkeypatch):
    from ablation.train import place_trial

    cuda = FakeCuda()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # as Ray sets it for its assigned GPUs
    assert place_trial([3], 0.25, cuda=cuda) == "cuda:1"
    assert cuda.calls == [("set_device", 1), ("fraction", 0.25, 1)]
    cuda.calls.clear()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5")
    assert place_trial(["5"], 1.0, cuda=cuda) == "cuda:0"  # a whole GPU: no cap
    assert cuda.calls == [("set_device", 0)]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    cuda.calls.clear()
    assert place_trial([1], 0.5, cuda=cuda) == "cuda:1"  # visibility left alone by Ray
    assert place_trial([], 0.0, cuda=cuda) == "cpu"
    assert cuda.calls == [("set_device", 1), ("fraction", 0.5, 1)]


class StubOOMModel(torch.nn.Module):
    """A model whose forward raises CUDA's out-of-memory error, as a too-small share would."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_cuda_oom_raised_by_a_stub_fails_the_trial_saying_to_raise_gpus_per_trial(monkeypatch):
    import ablation.train as train

    monkeypatch.setattr(train, "build_model", lambda *a, **k: StubOOMModel())
    monkeypatch.setattr(train, "set_cbam_backend", lambda model, backend: model)
    monkeypatch.setattr(train, "_memory_share", 0.25)
    reports = []
    started = time.perf_counter()
    with pytest.raises(
        TrialFailed, match=r"may use 0.25 of the GPU.*raise resources.gpus_per_trial"
    ):
        train_trial(settings(digits_config()), 0, reports.append, device="cpu")
    assert reports == [] and time.perf_counter() - started < 20

"""The GPU paths on CUDA, marked `cuda`: run by benchmarks/gpu_check.py on the GPU machine.

Skipped where there is no CUDA, unless ABLATION_TEST_DEVICE=cpu (the check's CPU dry run) runs
them on the CPU. They need no pytest fixture, so the check also runs them without pytest.
"""

from __future__ import annotations

import os
import unittest

import torch

from ablation.attention import CBAM, set_cbam_backend
from ablation.data.device import DeviceBatches
from ablation.models import build_model
from ablation.train import TrialFailed, train_trial
from ablation.vocabulary.trial import TrialSettings

DEVICE = os.environ.get("ABLATION_TEST_DEVICE", "cuda")

try:
    import pytest

    pytestmark = [pytest.mark.cuda]
    if DEVICE == "cuda" and not torch.cuda.is_available():
        pytestmark.append(pytest.mark.skip(reason="no CUDA GPU (benchmarks/gpu_check.py)"))
except ImportError:  # the GPU image may lack pytest: gpu_check.py calls the tests itself
    pass


def _config(**train) -> dict:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"
    spec = importlib.util.spec_from_file_location("gpu_check", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    small = torch.device(DEVICE).type == "cpu"  # the dry run: toy sizes, bf16 is slow on CPUs
    cfg = module.trial_config(
        image_size=16 if small else 32,
        train_samples=32 if small else 128,
        val_samples=16 if small else 64,
        batch_size=16 if small else 32,
        epochs=1,
    )
    cfg["train"].update(train)
    return cfg


def _trial(**train) -> dict:
    return train_trial(TrialSettings.from_dict(_config(**train)), 0, lambda m: None, device=DEVICE)


def test_bf16_and_fp16_trials_train_finite():
    for precision in ("bf16", "fp16"):
        final = _trial(precision=precision, channels_last=True)
        assert torch.isfinite(torch.tensor(final["val_loss"])), precision


def test_compiled_trial_logs_compile_seconds():
    final = _trial(compile=True)
    assert final["compile_seconds"] > 0


def test_cbam_reference_and_fused_on_the_device_match_the_float64_cpu_reference():
    torch.manual_seed(0)
    ref = CBAM(32, reduction=4).double()
    x = torch.randn(4, 32, 12, 12, dtype=torch.float64, requires_grad=True)
    expected = ref(x)
    expected.sum().backward()
    for backend in ("reference", "fused"):
        module = CBAM(32, reduction=4).to(DEVICE)
        module.load_state_dict(ref.state_dict())
        module = set_cbam_backend(module, backend)
        for dtype, tol_out, tol_grad in ((None, 1e-4, 1e-4), (torch.bfloat16, 0.02, 0.15)):
            xd = x.detach().float().to(DEVICE).contiguous(memory_format=torch.channels_last)
            xd.requires_grad_(True)
            with torch.autocast(torch.device(DEVICE).type, dtype=dtype, enabled=dtype is not None):
                out = module(xd)
            out.float().sum().backward()
            # fp32 matches float64 closely; bf16 keeps ~3 significant digits per op, and the
            # input gradient sums many of them: whole-tensor relative errors, loose for bf16.
            assert _rel(out.float().cpu().double(), expected) < tol_out, (backend, dtype)
            assert _rel(xd.grad.cpu().double(), x.grad) < tol_grad, (backend, dtype)
        compiled = torch.compile(
            module, backend=os.environ.get("ABLATION_COMPILE_BACKEND", "inductor")
        )
        out = compiled(xd.detach().float())
        assert torch.allclose(out.cpu().double(), expected, atol=1e-3, rtol=1e-3), backend


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def test_device_resident_batches_live_on_the_device_and_augment():
    x = torch.randint(0, 256, (64, 3, 16, 16), dtype=torch.uint8)
    y = torch.arange(64)
    batches = DeviceBatches(
        x,
        y,
        16,
        device=DEVICE,
        shuffle_rng=torch.Generator().manual_seed(0),
        pad=2,
        mean=(0.5,) * 3,
        std=(0.25,) * 3,
    )
    images, labels = next(iter(batches))
    assert images.device.type == torch.device(DEVICE).type and images.shape == (16, 3, 16, 16)
    assert sorted(torch.cat([lab for _, lab in batches]).tolist()) == list(range(64))


def test_cuda_oom_ends_the_trial_and_the_gpu_is_usable_after():
    if torch.device(DEVICE).type != "cuda":
        # Counted as skipped by pytest and by gpu_check.py's own runner; on the CPU a stub
        # raises the error instead (tests/test_train.py).
        raise unittest.SkipTest("CUDA out of memory needs a GPU")
    torch.cuda.set_per_process_memory_fraction(0.002)
    try:
        cfg = _config(batch_size=512)
        cfg["dataset"].update(image_size=224, train_samples=512, val_samples=64)
        cfg["model"]["backbone"] = "resnet50"
        raised = None
        try:
            train_trial(TrialSettings.from_dict(cfg), 0, lambda m: None, device=DEVICE)
        except TrialFailed as err:
            raised = str(err)
        assert raised is not None and "raise resources.gpus_per_trial" in raised
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert torch.ones(1024, 1024, device=DEVICE).sum().item() == 1024 * 1024
    build_model("resnet20", "cbam", None, num_classes=10).to(DEVICE)(
        torch.randn(2, 3, 32, 32, device=DEVICE)
    )

"""Every CBAM backend against the reference composition: forward, input and parameter
gradients, BatchNorm running statistics, every knob, NCHW and channels_last. The reference
(`CBAM.forward`) is the specification; the backends only change the speed."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch

from ablation.attention import CBAM, set_cbam_backend
from ablation.attention.fast import FastCBAM, resolve_backend
from ablation.vocabulary.cbam import CBAM_BACKENDS, CHANNEL_POOLS

KNOB_SETS = [
    dict(channel_pool=cp, spatial_pool=sp, order=order, gates=gates, spatial_norm=norm)
    for cp, sp, order, gates, norm in itertools.product(
        (("avg", "max"), ("max",), ("avg", "lp", "lse")),
        (("avg", "max"), ("max", "avg")),
        ("channel-first", "spatial-first", "parallel"),
        (("channel", "spatial"), ("spatial",), ("channel",)),
        (False, True),
    )
]


def _step(module: CBAM, x: torch.Tensor, dy: torch.Tensor):
    x = x.detach().clone().requires_grad_()
    y = module(x)
    y.backward(dy)
    grads = [p.grad.clone() for p in module.parameters()]
    module.zero_grad()
    return y.detach(), x.grad, grads


@pytest.mark.parametrize("backend", [b for b in CBAM_BACKENDS if b != "reference"])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_backend_matches_the_reference(backend, layout):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 24, 7, 6, generator=gen)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    dy = torch.randn(x.shape, generator=gen)
    for i, knobs in enumerate(KNOB_SETS):
        torch.manual_seed(i)
        reference = CBAM(24, reduction=4, kernel_size=3, **knobs).train()
        with torch.no_grad():
            for p in reference.parameters():
                p.normal_(0, 0.5)
        fast = set_cbam_backend(copy.deepcopy(reference), backend)
        y_ref, gx_ref, gp_ref = _step(reference, x, dy)
        y, gx, gp = _step(fast, x, dy)
        where = f"{backend} {layout} {knobs}"
        torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-4, msg=where)
        torch.testing.assert_close(gx, gx_ref, atol=1e-5, rtol=1e-4, msg=where)
        for a, b in zip(gp, gp_ref, strict=True):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4, msg=where)
        for a, b in zip(fast.buffers(), reference.buffers(), strict=True):
            torch.testing.assert_close(a, b, msg=where)  # running statistics
        fast.eval(), reference.eval()
        with torch.no_grad():
            torch.testing.assert_close(fast(x), reference(x), atol=1e-5, rtol=1e-4, msg=where)


def test_auto_picks_the_kernels_on_float32_cpu_and_the_reference_elsewhere():
    module = CBAM(16, reduction=4)
    x = torch.randn(1, 16, 4, 4)
    assert resolve_backend("auto", x, module) == "kernels"
    assert resolve_backend("auto", x.double(), module) == "reference"
    lse = CBAM(16, reduction=4, channel_pool=("avg", "lse"))
    assert set(CHANNEL_POOLS) - {"avg", "max"} == {"lp", "lse"}
    assert resolve_backend("auto", x, lse) == "reference"
    for backend in ("reference", "fused", "kernels"):
        assert resolve_backend(backend, x, module) == backend
    with pytest.raises(ValueError, match="cbam_backend must be one of"):
        set_cbam_backend(CBAM(8), "fast")


def test_a_backend_takes_over_the_very_gate_modules_and_reference_leaves_them_alone():
    model = torch.nn.Sequential(CBAM(16, reduction=4, spatial_norm=True), torch.nn.ReLU())
    reference = model[0]
    weights = list(reference.parameters()) + list(reference.buffers())
    keys = list(model.state_dict())
    assert set_cbam_backend(model, "reference") is model and model[0] is reference
    assert set_cbam_backend(model, "fused") is model
    fast = model[0]
    assert isinstance(fast, FastCBAM) and fast.backend == "fused"
    assert fast.channel_gate is reference.channel_gate
    assert all(a is b for a, b in zip(weights, [*fast.parameters(), *fast.buffers()], strict=True))
    assert list(model.state_dict()) == keys  # checkpoints load either way
    assert set_cbam_backend(model, "kernels")[0] is fast and fast.backend == "kernels"
    alone = set_cbam_backend(CBAM(8), "auto")  # a CBAM alone comes back as its FastCBAM
    assert isinstance(alone, FastCBAM) and "backend='auto'" in repr(alone)


def test_a_fast_cbam_carries_every_attribute_of_the_cbam_it_replaces():
    # FastCBAM copies the module's state instead of running CBAM.__init__: an attribute added
    # to CBAM must reach it too.
    cbam = CBAM(16, order="parallel", spatial_norm=True)
    fast = set_cbam_backend(cbam, "fused")
    assert set(vars(fast)) - set(vars(cbam)) == {"backend"}
    assert set(vars(cbam)) <= set(vars(fast))

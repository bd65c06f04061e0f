"""The compiled CBAM kernels (native.py) against stock PyTorch, their build, and the fallback."""

from __future__ import annotations

import copy
import itertools
import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

from ablation.attention import CBAM, set_cbam_backend
from ablation.attention.fast import native
from ablation.attention.fast.fused import fused_cbam


@pytest.fixture(autouse=True, scope="module")
def kernels_built():
    # No skip: CI has g++, so a library that did not build is a failure to see.
    assert native._library() is not None, "the CBAM kernels did not build (see native.py)"


# Shapes with tails (B not a multiple of 16), one sample (column ranges split among threads),
# long and short rows.
SHAPES = [(1, 3, 37), (2, 5, 16), (3, 17, 49), (2, 64, 196), (1, 9, 3136), (4, 300, 7)]


def rand(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("dim", [1, 2])
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
def test_pool_is_sum_max_and_first_argmax(shape, dim, weighted, threads):
    n, rows, cols = shape
    v = rand(*shape, seed=1)
    weight = rand(n, cols if dim == 2 else rows, seed=2).sigmoid() if weighted else None
    product = v if weight is None else v * weight.unsqueeze(1 if dim == 2 else 2)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        total, top, index = native.pool(v, dim, weight, want_index=True)
    finally:
        torch.set_num_threads(before)
    expected_sum = product.double().sum(dim).float()
    torch.testing.assert_close(total, expected_sum, atol=1e-4 * cols**0.5, rtol=1e-5)
    expected = product.max(dim)
    assert torch.equal(top, expected.values)
    assert torch.equal(index, expected.indices)


@pytest.mark.parametrize("dim", [1, 2])
def test_pool_ties_go_to_the_first_index_like_torch(dim):
    v = torch.zeros(2, 20, 40)
    v[:, 3:9, 5:30] = 1.0  # many equal maxima per row and per column
    _, top, index = native.pool(v, dim, want_index=True)
    expected = v.max(dim)
    assert torch.equal(top, expected.values)
    assert torch.equal(index, expected.indices)


def test_pool_returns_only_what_is_asked():
    total, top, index = native.pool(rand(2, 3, 5, seed=3), 2, want_max=False)
    assert total is not None and top is None and index is None


TERMS = [None, 1, 2]  # absent, per-A (broadcast along B), per-B (broadcast along A)


@pytest.mark.parametrize("g1, h1, g2", list(itertools.product(TERMS, TERMS, TERMS)))
@pytest.mark.parametrize("h2", [(False, False), (True, False), (False, True), (True, True)])
def test_gate_is_the_two_step_affine_product(g1, h1, g2, h2):
    n, rows, cols = 2, 7, 37
    v = rand(n, rows, cols, seed=4)

    def vec(dim, seed):
        if dim is None:
            return None, None
        t = rand(n, rows if dim == 1 else cols, seed=seed)
        return (t, dim), t.unsqueeze(2 if dim == 1 else 1)

    (g1t, g1b), (h1t, h1b), (g2t, g2b) = vec(g1, 5), vec(h1, 6), vec(g2, 7)
    h2a = rand(n, rows, seed=8) if h2[0] else None
    h2b = rand(n, cols, seed=9) if h2[1] else None
    out = native.gate(v, g1t, h1t, g2t, (h2a, h2b))
    expected = v * (1 if g1b is None else g1b) + (0 if h1b is None else h1b)
    expected = expected * (1 if g2b is None else g2b)
    expected = expected + (0 if h2a is None else h2a.unsqueeze(2))
    expected = expected + (0 if h2b is None else h2b.unsqueeze(1))
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=1e-6)


def test_gate_in_place():
    v = rand(2, 5, 33, seed=10)
    a = rand(2, 5, seed=11)
    expected = v * a.unsqueeze(2)
    out = native.gate(v, (a, 1), out=v)
    assert out is v
    torch.testing.assert_close(v, expected)


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("weights", [(False, False), (True, True), (True, False)])
def test_dual_reduce_sums_the_product_both_ways(shape, weights):
    n, rows, cols = shape
    dy, x = rand(*shape, seed=12), rand(*shape, seed=13)
    wa = rand(n, rows, seed=14) if weights[0] else None
    wb = rand(n, cols, seed=15) if weights[1] else None
    out_a, out_b = native.dual_reduce(dy, x, wa, wb)
    p = dy.double() * x.double()  # the kernel sums in double: compare with a double sum
    expected_a = (p * (1 if wb is None else wb.double().unsqueeze(1))).sum(2).float()
    expected_b = (p * (1 if wa is None else wa.double().unsqueeze(2))).sum(1).float()
    # float32 products, each rounded: errors grow like the square root of the terms summed
    torch.testing.assert_close(out_a, expected_a, atol=1e-5 * cols**0.5, rtol=1e-5)
    torch.testing.assert_close(out_b, expected_b, atol=1e-5 * rows**0.5, rtol=1e-5)
    only_b = native.dual_reduce(dy, x, wa, wb, want_a=False)
    assert only_b[0] is None
    torch.testing.assert_close(only_b[1], out_b)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(
    "n, planes, h, w, k",
    [(2, 2, 9, 11, 7), (1, 1, 5, 4, 3), (3, 2, 3, 2, 7), (4, 2, 16, 16, 1), (2, 2, 20, 37, 5)],
    ids=["7x7", "one-map", "kernel-wider-than-map", "1x1", "odd-width"],
)
def test_conv_and_its_gradients_are_torchs(n, planes, h, w, k, threads):
    maps = rand(n, planes, h, w, seed=20).requires_grad_()
    weight = rand(1, planes, k, k, seed=21).requires_grad_()
    grad = rand(n, 1, h, w, seed=22)
    expected = F.conv2d(maps, weight, padding=k // 2)
    expected_maps, expected_weight = torch.autograd.grad(expected, [maps, weight], grad)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        out = native.conv(maps.detach(), weight.detach())
        grad_maps, grad_weight = native.conv_backward(grad, maps.detach(), weight.detach())
        only_weight = native.conv_backward(grad, maps.detach(), weight.detach(), want_maps=False)
    finally:
        torch.set_num_threads(before)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad_maps, expected_maps, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(grad_weight, expected_weight, atol=1e-4, rtol=1e-5)
    assert only_weight[0] is None
    torch.testing.assert_close(only_weight[1], grad_weight)


def test_float32_cbam_runs_on_the_kernels_and_other_inputs_do_not(monkeypatch):
    calls = []
    for name in ("pool", "gate", "dual_reduce", "conv", "conv_backward"):
        original = getattr(native, name)

        def spy(*args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        monkeypatch.setattr(native, name, spy)
    knobs = dict(mlp=None, spatial_conv_weight=torch.randn(1, 2, 3, 3, requires_grad=True))
    x = torch.randn(2, 8, 5, 5, requires_grad=True)
    fused_cbam(x, **knobs).sum().backward()
    assert {"pool", "gate", "dual_reduce", "conv", "conv_backward"} <= set(calls)
    calls.clear()
    with native.use_kernels(False):
        fused_cbam(x, **knobs).sum().backward()
    fused_cbam(x.detach().double().requires_grad_(), **knobs).sum().backward()
    weights = tuple(torch.randn(*s) for s in ((2, 8), (2,), (8, 2), (8,)))
    fused_cbam(x, mlp=weights, channel_pool=("lp",), spatial_conv_weight=None)
    assert calls == []


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


PROBE = """
import torch
from ablation.attention.fast import native
from ablation.attention import CBAM, set_cbam_backend
x = torch.randn(2, 16, 6, 6, requires_grad=True)
set_cbam_backend(CBAM(16, reduction=4), "kernels")(x).sum().backward()
print(native._library() is not None, native.compile_seconds() > 0, x.grad.abs().sum().item() > 0)
"""


def test_kernels_build_once_into_the_cache_and_later_processes_load_them(tmp_path):
    first = _python(PROBE, XDG_CACHE_HOME=str(tmp_path))
    assert first.returncode == 0, first.stderr
    assert first.stdout.split() == ["True", "True", "True"]  # built: compile time reported
    assert list((tmp_path / "ablation" / "cbam-kernels").glob("cbam_kernels-*.so"))
    second = _python(PROBE, XDG_CACHE_HOME=str(tmp_path))
    assert second.stdout.split() == ["True", "False", "True"]  # loaded from the cache


def test_the_setup_command_builds_the_kernels_or_says_why_not(tmp_path):
    def setup(**env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "ablation.attention"],
            env={**os.environ, "XDG_CACHE_HOME": str(tmp_path), **env},
            capture_output=True,
            text=True,
            timeout=300,
        )

    first = setup()
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith("CBAM kernels: built in ") and str(tmp_path) in first.stdout
    second = setup()
    assert second.stdout.startswith("CBAM kernels: cached in ")
    off = setup(ABLATION_CBAM_KERNELS="0")
    assert off.returncode == 0 and "unavailable" in off.stdout  # the setup goes on without


@pytest.mark.parametrize(
    "env",
    [{"CXX": "no-such-compiler"}, {"CXX": "false"}, {"ABLATION_CBAM_KERNELS": "0"}],
    ids=["no-compiler", "build-fails", "switched-off"],
)
def test_without_the_kernels_cbam_takes_the_stock_op_path(tmp_path, env):
    result = _python(PROBE, XDG_CACHE_HOME=str(tmp_path), **env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False", "True"]
    assert not list(tmp_path.rglob("*.so"))


# The one-call inference forward (native.infer): every knob it serves, against the module's
# reference composition (cbam.py, plain autograd ops), in both layouts, with samples that go
# whole to a thread and samples that all threads share (batch 1, and the third of three).
INFER_KNOBS = (
    [
        dict(order=order, channel_pool=cp, spatial_pool=sp, spatial_norm=norm)
        for order in ("channel-first", "spatial-first", "parallel")
        for cp in (("avg",), ("max",), ("avg", "max"))
        for sp in (("avg",), ("max",), ("avg", "max"), ("max", "avg"))
        for norm in (False, True)
    ]
    + [dict(gates=("channel",), channel_pool=cp) for cp in (("avg",), ("max",), ("avg", "max"))]
    + [
        dict(gates=("spatial",), spatial_pool=sp, spatial_norm=norm)
        for sp in (("avg",), ("max",), ("max", "avg"))
        for norm in (False, True)
    ]
)


def random_cbam(channels: int, kernel_size: int, seed: int, **knobs) -> CBAM:
    torch.manual_seed(seed)
    module = CBAM(channels, reduction=4, kernel_size=kernel_size, **knobs)
    module = set_cbam_backend(module, "kernels").eval()
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
        norm = module.spatial_gate.norm if module.spatial_gate is not None else None
        if isinstance(norm, torch.nn.BatchNorm2d):
            norm.running_mean.fill_(0.3)
            norm.running_var.fill_(0.7)
    return module


@pytest.fixture
def infer_calls(monkeypatch):
    calls = []
    original = native.infer

    def spy(*args, **kwargs):
        calls.append(kwargs["order"])
        return original(*args, **kwargs)

    monkeypatch.setattr(native, "infer", spy)
    return calls


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize(
    "shape, kernel_size",
    [
        ((1, 16, 6, 5), 3),
        ((1, 32, 12, 12), 5),
        ((3, 24, 7, 9), 7),
        ((2, 40, 3, 3), 7),
        ((2, 64, 20, 20), 7),
    ],
    # The MLP runs per sample where its weights are small next to a map (8 * hidden <= H * W)
    # and once for the batch otherwise: both, with whole and shared samples.
    ids=["one-sample", "one-sample-own-mlp", "three-samples", "kernel-wider-than-map", "long-rows"],
)
def test_inference_in_one_call_matches_the_reference(
    shape, kernel_size, layout, threads, infer_calls
):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        for i, knobs in enumerate(INFER_KNOBS):
            module = random_cbam(shape[1], kernel_size, seed=i, **knobs)
            x = rand(*shape, seed=100 + i)
            if layout == "channels_last":
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.inference_mode():
                expected = module.reference_forward(x)
                y = module(x)
            assert len(infer_calls) == i + 1, f"{knobs}: native.infer was not used"
            assert y.is_contiguous(memory_format=torch.channels_last) == (layout != "nchw")
            torch.testing.assert_close(
                y, expected, atol=1e-5, rtol=1e-5, msg=lambda m, k=knobs: f"{k}: {m}"
            )
    finally:
        torch.set_num_threads(before)


def test_inference_with_batch_statistics_takes_the_general_path(infer_calls):
    # A spatial BatchNorm in training mode under no_grad uses (and updates) batch statistics.
    module = random_cbam(16, 3, seed=1, spatial_norm=True).train()
    reference = copy.deepcopy(module)
    x = rand(2, 16, 5, 5, seed=2)
    with torch.no_grad():
        y = module(x)
        expected = reference.reference_forward(x)
    assert infer_calls == []
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        module.spatial_gate.norm.running_mean, reference.spatial_gate.norm.running_mean
    )
    module.eval()
    with torch.no_grad():
        module(x)
    assert infer_calls == ["channel-first"]


def test_inference_of_models_with_lp_pools_or_float64_takes_the_general_path(infer_calls):
    x = rand(2, 16, 5, 5, seed=3)
    with torch.no_grad():
        random_cbam(16, 3, seed=2, channel_pool=("avg", "lp"))(x)
        random_cbam(16, 3, seed=2).double()(x.double())
        with native.use_kernels(False):
            random_cbam(16, 3, seed=2)(x)
    assert infer_calls == []


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_inplace_inference_writes_over_the_input_and_training_never_does(layout):
    module = random_cbam(32, 7, seed=5, spatial_norm=True)
    module.inplace = True
    x = rand(3, 32, 10, 10, seed=6)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        expected = module.reference_forward(x)
        x_inference = x.clone()
        y = module(x_inference)
    assert y.data_ptr() == x_inference.data_ptr()
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(x_inference, expected, atol=1e-5, rtol=1e-5)
    # With a graph to record, the input is kept (backward needs it).
    module.train()
    xg = x.clone().requires_grad_()
    before = xg.detach().clone()
    module(xg).sum().backward()
    assert torch.equal(xg.detach(), before) and xg.grad is not None

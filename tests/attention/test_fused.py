"""The fused CBAM path against a transcription of the paper's equations, every knob."""

from __future__ import annotations

import copy
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ablation.attention import CBAM, set_cbam_backend
from ablation.attention.cbam import channel_pool as pool_space
from ablation.attention.cbam import spatial_pool as pool_channels
from ablation.attention.fast import native
from ablation.attention.fast.fused import _max, cbam_forward, fused_cbam

CHANNEL_POOL_SETS = [
    combo for r in range(1, 5) for combo in itertools.combinations(("avg", "max", "lp", "lse"), r)
]
SPATIAL_POOL_SETS = [("avg",), ("max",), ("avg", "max"), ("max", "avg")]
NORMS = (None, "train", "eval")


# ----------------------------------------------------------------------------------------
# The reference: eq. (1)-(3) written out with plain autograd on the pools of cbam.py,
# nothing shared with fused.py.
def ref_cbam(f, p, channel_pool, spatial_pool, order, gates, bn):
    def mc(g):  # eq. (2)
        logits = sum(
            F.linear(F.relu(F.linear(pool_space(g, k), p["w0"], p["b0"])), p["w1"], p["b1"])
            for k in channel_pool
        )
        return torch.sigmoid(logits)[:, :, None, None]

    def ms(g):  # eq. (3)
        maps = torch.cat([pool_channels(g, k) for k in spatial_pool], dim=1)
        out = F.conv2d(maps, p["conv"], padding=p["conv"].shape[-1] // 2)
        return torch.sigmoid(bn(out) if bn is not None else out)

    if gates == ("channel",):
        return f * mc(f)
    if gates == ("spatial",):
        return f * ms(f)
    if order == "channel-first":  # eq. (1)
        g = f * mc(f)
        return g * ms(g)
    if order == "spatial-first":
        g = f * ms(f)
        return g * mc(g)
    return f * mc(f) * ms(f)  # parallel


# ----------------------------------------------------------------------------------------
def make_params(c, n_maps, kernel, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    hidden = max(1, c // 4)

    def rnd(*shape, scale=0.5):
        return (torch.randn(*shape, generator=gen, dtype=dtype) * scale).requires_grad_()

    return {
        "w0": rnd(hidden, c),
        "b0": rnd(hidden),
        "w1": rnd(c, hidden),
        "b1": rnd(c),
        "conv": rnd(1, n_maps, kernel, kernel),
    }


def make_bn(norm, dtype, seed):
    if norm is None:
        return None
    gen = torch.Generator().manual_seed(seed)
    bn = nn.BatchNorm2d(1).to(dtype)
    with torch.no_grad():
        bn.weight.copy_(1 + 0.3 * torch.randn(1, generator=gen, dtype=dtype))
        bn.bias.copy_(0.3 * torch.randn(1, generator=gen, dtype=dtype))
        bn.running_mean.copy_(0.2 * torch.randn(1, generator=gen, dtype=dtype))
        bn.running_var.copy_(0.5 + torch.rand(1, generator=gen, dtype=dtype))
    return bn.train(norm == "train")


def clone_params(p):
    return {k: v.detach().clone().requires_grad_() for k, v in p.items()}


def run_fused(x, p, channel_pool, spatial_pool, order, gates, bn):
    return fused_cbam(
        x,
        mlp=(p["w0"], p["b0"], p["w1"], p["b1"]) if "channel" in gates else None,
        channel_pool=channel_pool,
        spatial_conv_weight=p["conv"] if "spatial" in gates else None,
        spatial_bn=bn,
        spatial_pool=spatial_pool,
        order=order,
    )


def forward_backward(fn, x, p, bn, dy, **knobs):
    x = x.detach().clone().requires_grad_()
    y = fn(x, p, bn=bn, **knobs)
    (y * dy).sum().backward()
    grads = {"x": x.grad} | {k: v.grad for k, v in p.items()}
    if bn is not None:
        grads |= {"bn.weight": bn.weight.grad, "bn.bias": bn.bias.grad}
    return y, grads


def knob_cases(gates):
    """Every knob combination that changes the computation for these gates."""
    if gates == ("channel",):
        return [(cp, ("avg", "max"), "channel-first", None) for cp in CHANNEL_POOL_SETS]
    if gates == ("spatial",):
        return [(("avg",), sp, "channel-first", nm) for sp in SPATIAL_POOL_SETS for nm in NORMS]
    orders = ("channel-first", "spatial-first", "parallel")
    # Channel pools interact with the order (what they pool); spatial pools and the norm
    # with the order too; the two pool knobs meet only through the MLP and conv inputs.
    pools = [(cp, ("avg", "max"), order, None) for order in orders for cp in CHANNEL_POOL_SETS]
    norms = [
        (("avg", "max"), sp, order, nm)
        for order in orders
        for sp in SPATIAL_POOL_SETS
        for nm in NORMS
        if (sp, nm) != (("avg", "max"), None)
    ]
    return pools + norms


@pytest.fixture(autouse=True, params=["kernels", "stock-ops"])
def path(request):
    """Every test runs on both paths: native.py's compiled kernels (float32 CPU) and the
    stock-op path that needs no compiler (which also serves float64, CUDA, lp/lse)."""
    if request.param == "kernels" and native._library() is None:
        pytest.fail("the CBAM kernels did not build here (g++ missing?); see native.py")
    with native.use_kernels(request.param == "kernels"):
        yield request.param


@pytest.fixture(autouse=True)
def one_thread():
    # These maps are tiny: a second thread only adds hand-offs, badly so on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


GATE_SETS = [("channel", "spatial"), ("channel",), ("spatial",)]


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("gates", GATE_SETS, ids=["both", "channel", "spatial"])
def test_fused_matches_reference_forward_and_backward(gates, dtype, layout):
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 1e-10, "rtol": 1e-9}
    n, c, h, w, k = 3, 16, 6, 5, 3
    cases = knob_cases(gates)
    assert len(cases) >= 12
    for i, (cp, sp, order, norm) in enumerate(cases):
        gen = torch.Generator().manual_seed(i)
        x = torch.randn(n, c, h, w, generator=gen, dtype=dtype)
        dy = torch.randn(n, c, h, w, generator=gen, dtype=dtype)
        if layout == "channels_last":
            x = x.contiguous(memory_format=torch.channels_last)
        p_ref = make_params(c, len(sp), k, dtype, seed=i)
        p_fused = clone_params(p_ref)
        bn_ref = make_bn(norm, dtype, seed=i)
        bn_fused = copy.deepcopy(bn_ref)
        knobs = dict(channel_pool=cp, spatial_pool=sp, order=order, gates=gates)
        y_ref, g_ref = forward_backward(ref_cbam, x, p_ref, bn_ref, dy, **knobs)
        y, g = forward_backward(run_fused, x, p_fused, bn_fused, dy, **knobs)
        where = f"case {i}: {knobs} norm={norm}"
        torch.testing.assert_close(y, y_ref, **tol, msg=lambda m, where=where: f"{where}: y {m}")
        for name in g_ref:
            if g_ref[name] is None:  # a parameter of a gate that is off
                assert g[name] is None, f"{where}: {name} got a gradient"
                continue
            torch.testing.assert_close(
                g[name], g_ref[name], **tol, msg=lambda m, w=where, n=name: f"{w}: d{n} {m}"
            )
        if bn_ref is not None:  # the running statistics moved the same way
            torch.testing.assert_close(bn_fused.running_mean, bn_ref.running_mean, **tol)
            torch.testing.assert_close(bn_fused.running_var, bn_ref.running_var, **tol)


@pytest.mark.parametrize(
    "knobs",
    [
        dict(channel_pool=("avg", "max"), spatial_pool=("avg", "max"), order="channel-first"),
        dict(channel_pool=("max", "lse"), spatial_pool=("max", "avg"), order="spatial-first"),
        dict(channel_pool=("avg", "lp"), spatial_pool=("max",), order="parallel"),
    ],
    ids=["paper", "spatial-first-lse", "parallel-lp"],
)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_fused_passes_float64_gradcheck(knobs, layout):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 8, 4, 5, generator=gen, dtype=torch.float64)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_()
    p = make_params(8, len(knobs["spatial_pool"]), 3, torch.float64, seed=1)

    def fn(x, w0, b0, w1, b1, conv):
        return fused_cbam(
            x, mlp=(w0, b0, w1, b1), spatial_conv_weight=conv, spatial_bn=None, **knobs
        )

    inputs = (x, p["w0"], p["b0"], p["w1"], p["b1"], p["conv"])
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("order", ["channel-first", "spatial-first", "parallel"])
def test_channels_last_input_gives_the_same_result_and_format(order):
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 32, 7, 9, generator=gen)
    dy = torch.randn(2, 32, 7, 9, generator=gen)
    p = make_params(32, 2, 7, torch.float32, seed=3)
    knobs = dict(channel_pool=("avg", "max"), spatial_pool=("avg", "max"), order=order)
    gates = ("channel", "spatial")
    y, g = forward_backward(run_fused, x, clone_params(p), None, dy, gates=gates, **knobs)
    x_cl = x.contiguous(memory_format=torch.channels_last)
    y_cl, g_cl = forward_backward(run_fused, x_cl, clone_params(p), None, dy, gates=gates, **knobs)
    assert y_cl.is_contiguous(memory_format=torch.channels_last)
    assert g_cl["x"].is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(y_cl, y, atol=1e-6, rtol=1e-5)
    for name in g:
        torch.testing.assert_close(g_cl[name], g[name], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("whole", [True, False], ids=["one-call", "per-pass"])
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_inference_path_matches_reference(layout, whole, path):
    # On the kernels, inference is one native.infer call, or (whole=False) the per-pass
    # kernels that training uses, run without a graph.
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(2, 16, 8, 8, generator=gen)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    p = make_params(16, 2, 7, torch.float32, seed=4)
    for order, cp in itertools.product(
        ("channel-first", "spatial-first", "parallel"), (("avg", "max"), ("lp", "lse", "max"))
    ):
        knobs = dict(channel_pool=cp, spatial_pool=("avg", "max"), order=order)
        bn = make_bn("eval", torch.float32, seed=4)
        with torch.no_grad(), native.use_kernels(path == "kernels", whole_inference=whole):
            y = run_fused(x, p, gates=("channel", "spatial"), bn=bn, **knobs)
            y_ref = ref_cbam(x, p, gates=("channel", "spatial"), bn=bn, **knobs)
        assert y.grad_fn is None
        torch.testing.assert_close(y, y_ref, atol=1e-6, rtol=1e-5)


def test_cbam_forward_uses_the_modules_parameters_and_knobs():
    torch.manual_seed(5)
    module = CBAM(
        32,
        reduction=4,
        channel_pool=("avg", "lse"),
        spatial_pool=("max", "avg"),
        kernel_size=3,
        order="spatial-first",
        spatial_norm=True,
    )
    x = torch.randn(2, 32, 6, 6)
    dy = torch.randn_like(x)
    p = {
        "w0": module.channel_gate.mlp[0].weight,
        "b0": module.channel_gate.mlp[0].bias,
        "w1": module.channel_gate.mlp[2].weight,
        "b1": module.channel_gate.mlp[2].bias,
        "conv": module.spatial_gate.conv.weight,
    }
    ref_params = clone_params(p)
    ref_bn = copy.deepcopy(module.spatial_gate.norm)
    y_ref, g_ref = forward_backward(
        ref_cbam,
        x,
        ref_params,
        ref_bn,
        dy,
        channel_pool=("avg", "lse"),
        spatial_pool=("max", "avg"),
        order="spatial-first",
        gates=("channel", "spatial"),
    )
    xg = x.clone().requires_grad_()
    y = cbam_forward(module, xg)
    (y * dy).sum().backward()
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(xg.grad, g_ref["x"], atol=1e-5, rtol=1e-5)
    for name, param in p.items():
        torch.testing.assert_close(param.grad, g_ref[name], atol=1e-5, rtol=1e-5)


def test_no_gate_is_identity_and_bad_knobs_are_refused():
    x = torch.randn(1, 4, 3, 3)
    assert fused_cbam(x, mlp=None, spatial_conv_weight=None) is x
    with pytest.raises(ValueError, match="order"):
        fused_cbam(x, mlp=None, spatial_conv_weight=torch.ones(1, 2, 3, 3), order="sideways")
    with pytest.raises(ValueError, match="spatial_pool"):
        fused_cbam(x, mlp=None, spatial_conv_weight=torch.ones(1, 1, 3, 3), spatial_pool=("lp",))


@pytest.mark.parametrize(
    "shape",
    [(2, 3, 3136), (2, 5, 400), (3, 7, 257), (2, 300, 6), (1, 4, 49)]
    + [(2, 128, 49), (2, 96, 196), (1, 48, 256), (2, 40, 100)],
)
@pytest.mark.parametrize("dim", [1, 2])
def test_max_with_index_is_torch_max(shape, dim):
    # The two-step max (long rows), the blocked transposed max (short rows, rows divisible
    # by 16) and the pooling kernel (outer dim) against aten's max.
    v = torch.randn(*shape, generator=torch.Generator().manual_seed(6))
    values, index = _max(v, dim, with_index=True)
    expected = v.max(dim)
    assert torch.equal(values, expected.values)
    assert torch.equal(index, expected.indices)


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_fused_matches_reference_on_maps_large_enough_for_the_two_step_max(layout):
    # 20 x 20 maps and 256 channels take the split max over space (NCHW) or channels (NHWC).
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(2, 256, 20, 20, generator=gen, dtype=torch.float64)
    dy = torch.randn_like(x)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    for order in ("channel-first", "spatial-first", "parallel"):
        p = make_params(256, 2, 7, torch.float64, seed=7)
        knobs = dict(
            channel_pool=("avg", "max"),
            spatial_pool=("avg", "max"),
            order=order,
            gates=("channel", "spatial"),
        )
        y_ref, g_ref = forward_backward(ref_cbam, x, p, None, dy, **knobs)
        y, g = forward_backward(run_fused, x, clone_params(p), None, dy, **knobs)
        torch.testing.assert_close(y, y_ref, atol=1e-10, rtol=1e-9)
        for name in g_ref:
            torch.testing.assert_close(g[name], g_ref[name], atol=1e-10, rtol=1e-9)


def test_output_may_be_modified_in_place_like_resnets_residual_addition():
    # torchvision's Bottleneck does `out += identity` on the attention's output.
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(2, 16, 5, 5, generator=gen)
    identity = torch.randn(2, 16, 5, 5, generator=gen)
    dy = torch.randn(2, 16, 5, 5, generator=gen)
    p = make_params(16, 2, 3, torch.float32, seed=8)
    knobs = dict(
        channel_pool=("avg", "max"),
        spatial_pool=("avg", "max"),
        order="channel-first",
        gates=("channel", "spatial"),
    )

    def with_residual(cbam):
        def block(x, p, **knobs):
            out = cbam(x, p, **knobs)
            out += identity
            return torch.relu(out)

        return block

    y_ref, g_ref = forward_backward(with_residual(ref_cbam), x, p, None, dy, **knobs)
    y, g = forward_backward(with_residual(run_fused), x, clone_params(p), None, dy, **knobs)
    torch.testing.assert_close(y, y_ref, atol=1e-5, rtol=1e-5)
    for name in g_ref:
        torch.testing.assert_close(g[name], g_ref[name], atol=1e-5, rtol=1e-5)


def test_fused_runs_under_cpu_autocast_close_to_the_reference():
    # AMP on a GPU runs the MLP and conv in half precision; bfloat16 autocast is the CPU analog.
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(2, 32, 8, 8, generator=gen)
    p = make_params(32, 2, 7, torch.float32, seed=9)
    knobs = dict(
        channel_pool=("avg", "max"),
        spatial_pool=("avg", "max"),
        order="channel-first",
        gates=("channel", "spatial"),
        bn=None,
    )
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x_ = x.clone().requires_grad_()
        y = run_fused(x_, p, **knobs)
        y_ref = ref_cbam(x, p, **knobs)
    y.sum().backward()
    assert y.dtype == x.dtype and x_.grad.dtype == x.dtype
    torch.testing.assert_close(y, y_ref.to(y.dtype), atol=2e-2, rtol=2e-2)


@pytest.mark.parametrize("order", ["channel-first", "spatial-first", "parallel"])
@pytest.mark.parametrize("gates", [("channel", "spatial"), ("channel",), ("spatial",)])
def test_module_forward_on_the_fast_backend_matches_its_reference_composition(order, gates):
    torch.manual_seed(0)
    module = CBAM(32, reduction=4, order=order, gates=gates, spatial_norm=True)
    module = set_cbam_backend(module, "kernels").double()
    for p in module.parameters():
        nn.init.normal_(p, std=0.5)
    x = torch.randn(2, 32, 9, 7, dtype=torch.float64, requires_grad=True)
    fast = module(x)
    (gx_fast, *gp_fast) = torch.autograd.grad(fast.square().sum(), [x, *module.parameters()])
    ref = module.reference_forward(x)
    (gx_ref, *gp_ref) = torch.autograd.grad(ref.square().sum(), [x, *module.parameters()])
    torch.testing.assert_close(fast, ref)
    torch.testing.assert_close(gx_fast, gx_ref)
    for a, b in zip(gp_fast, gp_ref, strict=True):
        torch.testing.assert_close(a, b)

"""CBAM against the paper's equations (Woo et al., ECCV 2018, eq. 1-3) and its knob contract."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from ablation.attention import CBAM, normalize_cbam_knobs

pytestmark = pytest.mark.usefixtures("torch_single_thread")

CHANNEL_POOL_SETS = [
    list(c) for n in (1, 2, 3, 4) for c in itertools.combinations(("avg", "max", "lp", "lse"), n)
]
SPATIAL_POOL_LISTS = [["avg"], ["max"], ["avg", "max"], ["max", "avg"]]
ORDERS = ["channel-first", "spatial-first", "parallel"]
GATE_SETS = [["channel"], ["spatial"], ["channel", "spatial"]]
KERNELS = [1, 3, 7]


def _zero_all(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.zero_()


@pytest.mark.parametrize("order", ORDERS)
def test_zero_weights_give_a_quarter_of_the_input(order):
    cbam = CBAM(32, order=order)
    _zero_all(cbam)
    f = torch.randn(2, 32, 9, 7)
    # sigmoid(0) = 1/2 for both gates, and halving is exact in floating point
    assert torch.equal(cbam(f), f / 4)


@pytest.mark.parametrize("gate", ["channel", "spatial"])
@pytest.mark.parametrize("order", ORDERS)
def test_zero_weights_and_one_gate_give_half_the_input(gate, order):
    cbam = CBAM(32, gates=[gate], order=order)
    _zero_all(cbam)
    f = torch.randn(2, 32, 9, 7)
    assert torch.equal(cbam(f), f / 2)


@pytest.mark.parametrize(
    "knobs",
    [
        {},
        {"order": "spatial-first", "channel_pool": ["lp", "lse", "avg"], "kernel_size": 3},
        {"order": "parallel", "spatial_pool": ["max", "avg"], "spatial_norm": True},
    ],
)
def test_float64_gradcheck(knobs):
    torch.manual_seed(0)
    cbam = CBAM(8, reduction=2, **knobs).double()
    f = torch.randn(2, 8, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(cbam, (f,))


# --- A line-by-line transcription of eq. (1)-(3), independent of the module's code. ---


def transcribed_cbam(f, cbam, channel_pool, spatial_pool, kernel_size, order, gates, norm):
    def pool_space(x, kind):  # (B, C, H, W) -> (B, C)
        if kind == "avg":
            return x.mean(dim=(2, 3))
        if kind == "max":
            return x.flatten(2).max(dim=2).values
        if kind == "lp":  # the official code: F.lp_pool2d(x, 2, (H, W))
            return F.lp_pool2d(x, 2, (x.size(2), x.size(3))).flatten(1)
        if kind == "lse":  # the official code's logsumexp_2d
            flat = x.flatten(2)
            s = flat.max(dim=2, keepdim=True).values
            return (s + (flat - s).exp().sum(dim=2, keepdim=True).log()).flatten(1)
        raise AssertionError(kind)

    def pool_channels(x, kind):  # (B, C, H, W) -> (B, 1, H, W)
        return x.mean(dim=1, keepdim=True) if kind == "avg" else x.max(dim=1, keepdim=True).values

    def Mc(x):  # eq. (2): sigmoid(sum_p W1 relu(W0 pool_p(x) + b0) + b1)
        fc0, fc1 = cbam.channel_gate.mlp[0], cbam.channel_gate.mlp[2]
        W0, b0, W1, b1 = fc0.weight, fc0.bias, fc1.weight, fc1.bias
        total = 0
        for kind in channel_pool:
            d = pool_space(x, kind)
            total = total + (torch.relu(d @ W0.T + b0) @ W1.T + b1)
        return torch.sigmoid(total)[:, :, None, None]

    def Ms(x):  # eq. (3): sigmoid(conv_kxk([pool_q(x) ...])), optionally BN (eval mode)
        maps = torch.cat([pool_channels(x, kind) for kind in spatial_pool], dim=1)
        y = F.conv2d(maps, cbam.spatial_gate.conv.weight, padding=kernel_size // 2)
        if norm:
            bn = cbam.spatial_gate.norm
            y = (y - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight + bn.bias
        return torch.sigmoid(y)

    if gates == ["channel"]:
        return Mc(f) * f
    if gates == ["spatial"]:
        return Ms(f) * f
    if order == "channel-first":  # eq. (1)
        f1 = Mc(f) * f
        return Ms(f1) * f1
    if order == "spatial-first":
        f1 = Ms(f) * f
        return Mc(f1) * f1
    return f * Mc(f) * Ms(f)  # parallel: both gates computed from F, both applied to F


@pytest.mark.parametrize("norm", [False, True])
@pytest.mark.parametrize("gates", GATE_SETS)
@pytest.mark.parametrize("order", ORDERS)
def test_matches_transcribed_equations_for_every_knob_combination(order, gates, norm):
    torch.manual_seed(len(order) * 7 + len(gates) * 3 + norm)
    f = torch.randn(2, 12, 6, 5, dtype=torch.float64)
    for channel_pool, spatial_pool, kernel_size in itertools.product(
        CHANNEL_POOL_SETS, SPATIAL_POOL_LISTS, KERNELS
    ):
        knobs = dict(
            channel_pool=channel_pool,
            spatial_pool=spatial_pool,
            kernel_size=kernel_size,
            order=order,
            gates=gates,
        )
        cbam = CBAM(12, reduction=4, spatial_norm=norm, **knobs).double().eval()
        if norm and "spatial" in gates:
            with torch.no_grad():
                bn = cbam.spatial_gate.norm
                bn.weight.uniform_(0.5, 2.0)
                bn.bias.normal_()
                bn.running_mean.normal_()
                bn.running_var.uniform_(0.5, 2.0)
        with torch.no_grad():
            got = cbam(f)
            want = transcribed_cbam(f, cbam, norm=norm, **knobs)
        assert torch.allclose(got, want, rtol=1e-12, atol=1e-12), knobs


def test_gates_differ_so_the_order_matters():
    torch.manual_seed(1)
    f = torch.randn(2, 16, 6, 6)
    outs = []
    for order in ORDERS:
        torch.manual_seed(2)
        outs.append(CBAM(16, order=order)(f))
    assert not torch.allclose(outs[0], outs[1])
    assert not torch.allclose(outs[0], outs[2])


def test_lse_pool_is_stable_for_large_activations():
    cbam = CBAM(8, reduction=2, channel_pool=["lse"])
    f = torch.full((1, 8, 4, 4), 1000.0)
    out = cbam(f)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("channels, reduction, hidden", [(64, 16, 4), (8, 16, 1), (3, 1, 3)])
def test_hidden_width_is_channels_over_reduction_never_below_one(channels, reduction, hidden):
    cbam = CBAM(channels, reduction=reduction)
    assert cbam.channel_gate.mlp[0].out_features == hidden
    # Linear(C, h) + Linear(h, C), both with bias; conv 2 x 7 x 7, no bias
    expected = channels * hidden + hidden + hidden * channels + channels + 2 * 49
    assert sum(p.numel() for p in cbam.parameters()) == expected


def test_one_gate_has_only_that_gates_parameters():
    assert CBAM(32, gates=["spatial"]).channel_gate is None
    assert CBAM(32, gates=("channel",)).spatial_gate is None
    assert sum(p.numel() for p in CBAM(32, gates=["spatial"], kernel_size=3).parameters()) == 18


@pytest.mark.parametrize(
    "knobs, words",
    [
        ({"kernel_size": 4}, ["kernel_size", "odd"]),
        ({"kernel_size": 0}, ["kernel_size", "odd"]),
        ({"kernel_size": 3.0}, ["kernel_size", "odd"]),
        ({"reduction": 0}, ["reduction", ">= 1"]),
        ({"reduction": True}, ["reduction", ">= 1"]),
        ({"channel_pool": []}, ["channel_pool", "avg, max, lp, lse"]),
        ({"channel_pool": ["median"]}, ["channel_pool", "avg, max, lp, lse", "median"]),
        ({"channel_pool": ["avg", "avg"]}, ["channel_pool", "duplicate"]),
        ({"channel_pool": "avg"}, ["channel_pool", "list"]),
        ({"spatial_pool": []}, ["spatial_pool", "avg, max"]),
        ({"spatial_pool": ["lp"]}, ["spatial_pool", "avg, max", "lp"]),
        ({"order": "sideways"}, ["order", "channel-first, spatial-first, parallel"]),
        ({"gates": []}, ["gates", "channel, spatial"]),
        ({"gates": ["temporal"]}, ["gates", "channel, spatial"]),
        ({"spatial_norm": "yes"}, ["spatial_norm", "true or false"]),
    ],
)
def test_bad_knobs_raise_value_error_naming_knob_and_allowed_values(knobs, words):
    with pytest.raises(ValueError) as error:
        CBAM(16, **knobs)
    for word in words:
        assert word in str(error.value)


def test_unknown_knob_and_bad_channels_are_rejected():
    with pytest.raises(ValueError, match="unknown CBAM knob 'kernel'.*kernel_size"):
        normalize_cbam_knobs({"kernel": 3})
    with pytest.raises(ValueError, match="channels"):
        CBAM(0)


def test_knobs_are_normalised_to_tuples_with_defaults():
    knobs = normalize_cbam_knobs({"channel_pool": ["max"], "gates": ["spatial", "channel"]})
    assert knobs == {
        "reduction": 16,
        "channel_pool": ("max",),
        "spatial_pool": ("avg", "max"),
        "kernel_size": 7,
        "order": "channel-first",
        "gates": ("spatial", "channel"),
        "spatial_norm": False,
        "init": "official",
    }


def test_spatial_norm_starts_like_the_official_code_with_the_gate_half_open():
    # The official code zeroes the spatial BatchNorm's scale: Ms(F) = sigmoid(0) = 0.5 at start.
    cbam = CBAM(16, gates=("spatial",), spatial_norm=True)
    assert torch.equal(cbam.spatial_gate.norm.weight, torch.zeros(1))
    f = torch.randn(2, 16, 6, 6)
    torch.testing.assert_close(cbam(f), f / 2)

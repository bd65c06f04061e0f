"""The attention zoo (ablation/attention/zoo.py): every name builds, keeps the shape, trains,
takes its keywords and no others, and adds the parameters its paper's structure gives."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
import torch.nn.functional as F
from timm.layers import get_attn
from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.models.resnet import BasicBlock

from ablation.attention import (
    ATTENTIONS,
    BAM,
    BUILT_IN_ATTENTIONS,
    CBAM,
    ZOO_ARGUMENTS,
    ZOO_ATTENTIONS,
    ZOO_DISTRIBUTIONS,
    SimAM,
    create_attention,
)
from ablation.models import build_model

pytestmark = pytest.mark.usefixtures("torch_single_thread")

TIMM_NAMES = tuple(n for n in ZOO_ATTENTIONS if ZOO_DISTRIBUTIONS[n] == "timm")
OURS = {"simam": SimAM, "bam": BAM}


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_names_are_the_built_ins_then_the_zoo():
    assert BUILT_IN_ATTENTIONS == ("none", "se", "cbam")
    assert ATTENTIONS == BUILT_IN_ATTENTIONS + ZOO_ATTENTIONS
    assert set(ZOO_ATTENTIONS) == {
        "eca", "ceca", "ese", "gc", "gca", "lcbam", "coord", "ge", "simam", "bam"
    }  # fmt: skip
    assert set(ZOO_ARGUMENTS) == set(ZOO_DISTRIBUTIONS) == set(ZOO_ATTENTIONS)
    assert {n for n, dist in ZOO_DISTRIBUTIONS.items() if dist is None} == set(OURS)


@pytest.mark.parametrize("name", ZOO_ATTENTIONS)
def test_every_keyword_is_the_constructors_own_name(name):
    constructor = OURS.get(name) or get_attn(name)
    assert set(ZOO_ARGUMENTS[name]) <= set(inspect.signature(constructor).parameters)


@pytest.mark.parametrize("shape", [(2, 32, 6, 5), (3, 64, 1, 1)])
@pytest.mark.parametrize("name", ZOO_ATTENTIONS)
def test_forward_keeps_the_shape_and_backward_gives_finite_gradients(name, shape):
    torch.manual_seed(0)
    module = create_attention(name, shape[1])
    x = torch.randn(*shape, requires_grad=True)
    y = module(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for p in module.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()
    module.eval()
    with torch.no_grad():
        assert module(x[:1]).shape == (1, *shape[1:])


# ECA's adaptive kernel, the paper's psi(C) = |(log2 C + 1) / 2|_odd: one conv1d, no bias.
@pytest.mark.parametrize(("channels", "k"), [(16, 3), (64, 3), (256, 5), (512, 5), (2048, 7)])
@pytest.mark.parametrize("name", ["eca", "ceca"])
def test_eca_adds_k_parameters_per_gate(name, channels, k):
    assert _params(create_attention(name, channels)) == k
    assert _params(create_attention(name, channels, attention_args={"kernel_size": 9})) == 9


def test_eca_kernel_size_is_the_kernel_and_refuses_even_sizes_or_gamma_with_it():
    module = create_attention("eca", 256, attention_args={"kernel_size": 1})
    x = torch.randn(2, 256, 3, 3)
    w = module.conv.weight.item()
    assert torch.allclose(module(x), x * torch.sigmoid(w * x.mean(dim=(2, 3)))[:, :, None, None])
    with pytest.raises(ValueError, match="odd"):
        create_attention("eca", 64, attention_args={"kernel_size": 4})
    with pytest.raises(ValueError, match="give one"):
        create_attention("ceca", 64, attention_args={"kernel_size": 5, "gamma": 3})
    # gamma and beta choose the kernel from the channels: psi(256) at gamma 1 is |9|_odd = 9.
    assert _params(create_attention("eca", 256, attention_args={"gamma": 1})) == 9


@pytest.mark.parametrize("channels", [64, 256])
def test_ese_is_one_biased_fully_connected_layer(channels):
    # CenterMask's eSE: x * hsigmoid(W(avgpool(x))), W one C x C layer with a bias.
    assert _params(create_attention("ese", channels)) == channels * channels + channels


@pytest.mark.parametrize(("channels", "rd_ratio"), [(64, 1 / 8), (256, 1 / 16)])
@pytest.mark.parametrize("name", ["gc", "gca"])
def test_gc_is_context_conv_plus_bottleneck_transform(name, channels, rd_ratio):
    # GCNet: context W_k (C -> 1, biased); transform C -> C/r, LayerNorm, ReLU, C/r -> C: the
    # paper's 2 C^2 / r plus biases and the LayerNorm's scale and shift.
    hidden = int(channels * rd_ratio)
    module = create_attention(name, channels, attention_args={"rd_ratio": rd_ratio})
    expected = (
        (channels + 1) + (channels * hidden + hidden) + 2 * hidden + (hidden * channels + channels)
    )
    assert _params(module) == expected


@pytest.mark.parametrize(("channels", "kernel"), [(64, 7), (256, 3)])
def test_light_cbam_is_cbams_mlp_plus_one_spatial_conv(channels, kernel):
    # CBAM's channel MLP without biases (2 C^2 / r, r = 16) and one k x k map conv with its BN.
    module = create_attention("lcbam", channels, attention_args={"spatial_kernel_size": kernel})
    assert _params(module) == 2 * channels * (channels // 16) + kernel * kernel + 2


@pytest.mark.parametrize(("channels", "hidden"), [(64, 8), (256, 16)])
def test_coordinate_attention_is_one_shared_and_two_directional_1x1_convs(channels, hidden):
    # Coordinate Attention (eq. 4-6): F1 C -> C/r with BN, F_h and F_w C/r -> C (timm: no bias).
    module = create_attention("coord", channels, attention_args={"rd_channels": hidden})
    assert _params(module) == 3 * channels * hidden + 2 * hidden


@pytest.mark.parametrize("name", ["ge", "simam"])
def test_parameter_free_modules_have_no_parameters(name):
    assert _params(create_attention(name, 256)) == 0


def test_simam_is_the_papers_minimal_energy_gate():
    torch.manual_seed(0)
    x = torch.randn(2, 8, 5, 4, dtype=torch.float64)
    lam = 1e-4
    mu = x.mean(dim=(2, 3), keepdim=True)
    var = (x - mu).pow(2).sum(dim=(2, 3), keepdim=True) / (5 * 4 - 1)
    energy = 4 * (var + lam) / ((x - mu).pow(2) + 2 * var + 2 * lam)  # the paper's Eq. 16
    assert torch.allclose(SimAM(8)(x), x * torch.sigmoid(1 / energy))
    larger = create_attention("simam", 8, attention_args={"e_lambda": 10.0})
    assert not torch.allclose(larger(x), SimAM(8)(x))


def test_ge_extent_pools_locally_and_is_still_parameter_free():
    module = create_attention("ge", 16, attention_args={"extent": 2})
    x = torch.randn(2, 16, 8, 8)
    assert module(x).shape == x.shape and _params(module) == 0
    assert not torch.allclose(module(x), create_attention("ge", 16)(x))


@pytest.mark.parametrize(
    ("channels", "reduction", "dilated"), [(64, 16, 2), (256, 16, 2), (64, 4, 1)]
)
def test_bam_parameters_follow_the_papers_branches(channels, reduction, dilated):
    h = channels // reduction
    channel = (channels * h + h) + (h * channels + channels) + 2 * channels  # MLP, BN(C)
    spatial = (channels * h + h) + dilated * (9 * h * h + h) + (h + 1) + 2  # 1x1, 3x3s, 1x1, BN
    args = {"reduction": reduction, "dilated_convs": dilated}
    assert _params(create_attention("bam", channels, attention_args=args)) == channel + spatial


def _batch_norm(bn: nn.BatchNorm2d, y: torch.Tensor) -> torch.Tensor:
    """An eval-mode BatchNorm written out: (y - mean) / sqrt(var + eps) * weight + bias."""
    mean, var = bn.running_mean[:, None, None], bn.running_var[:, None, None]
    return (y - mean) / torch.sqrt(var + bn.eps) * bn.weight[:, None, None] + bn.bias[:, None, None]


def test_bam_is_the_papers_equations():
    # M(F) = sigmoid(BN(W1 relu(W0 AvgPool(F))) + BN(f3(relu(f2(relu(f1(relu(f0(F)))))))))
    torch.manual_seed(0)
    bam = BAM(32, reduction=4, dilation=2).double().eval()
    with torch.no_grad():
        for bn in (bam.channel[3], bam.spatial[-1]):  # statistics other than 0 and 1
            bn.running_mean.uniform_(-1, 1)
            bn.running_var.uniform_(0.5, 2)
            bn.weight.uniform_(0.5, 2)
    x = torch.randn(2, 32, 9, 7, dtype=torch.float64)
    w0, w1 = bam.channel[0], bam.channel[2]
    hidden = F.relu(F.conv2d(x.mean(dim=(2, 3), keepdim=True), w0.weight, w0.bias))
    mc = _batch_norm(bam.channel[3], F.conv2d(hidden, w1.weight, w1.bias))
    f0, f1, f2, f3 = (bam.spatial[i] for i in (0, 2, 4, 6))
    s = F.relu(F.conv2d(x, f0.weight, f0.bias))
    for conv in (f1, f2):
        s = F.relu(F.conv2d(s, conv.weight, conv.bias, padding=2, dilation=2))
    ms = _batch_norm(bam.spatial[7], F.conv2d(s, f3.weight, f3.bias))
    with torch.no_grad():
        assert torch.allclose(bam(x), x + x * torch.sigmoid(mc + ms))


def test_bam_with_zero_weights_scales_by_one_and_a_half_and_dilates_by_d():
    module = BAM(32, dilation=3)
    with torch.no_grad():
        for p in module.parameters():
            p.zero_()
    x = torch.randn(2, 32, 9, 9)
    assert torch.equal(module(x), x * 1.5)  # (1 + sigmoid(0)) F, exact in floating point
    dilated = [m for m in module.spatial if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
    assert len(dilated) == 2 and all(m.dilation == (3, 3) for m in dilated)


@pytest.mark.parametrize("name", ZOO_ATTENTIONS)
def test_an_unknown_keyword_names_the_accepted_ones(name):
    with pytest.raises(
        ValueError, match=f"takes no argument 'colour'; it takes {ZOO_ARGUMENTS[name][0]}"
    ):
        create_attention(name, 32, attention_args={"colour": 1})


def test_constructor_errors_become_value_errors_naming_the_module():
    with pytest.raises(ValueError, match="attention 'ge' with {'extent': 3}"):
        create_attention("ge", 32, attention_args={"extent": 3})  # timm asserts an even extent
    with pytest.raises(ValueError, match="reduction must be an integer >= 1"):
        create_attention("bam", 32, attention_args={"reduction": 0})


def test_built_ins_refuse_attention_args_and_cbam_keeps_its_knobs():
    for name in ("none", "se"):
        with pytest.raises(ValueError, match=f"attention '{name}' takes no attention_args"):
            create_attention(name, 32, attention_args={"reduction": 8})
    with pytest.raises(ValueError, match="its knobs are model.cbam"):
        create_attention("cbam", 32, attention_args={"reduction": 8})
    assert create_attention("cbam", 32, reduction=8).knobs["reduction"] == 8
    assert isinstance(create_attention("none", 32, attention_args={}), nn.Identity)
    with pytest.raises(ValueError, match="'cbam' only"):
        create_attention("eca", 32, reduction=8)


@pytest.mark.parametrize("backbone", ["resnet20", "mobilenet_v2"])
@pytest.mark.parametrize("name", ZOO_ATTENTIONS)
def test_zoo_sits_in_every_block_of_a_backbone_and_trains(backbone, name):
    torch.manual_seed(0)
    model = build_model(backbone, name, num_classes=10, in_channels=1)
    kind = type(create_attention(name, 16))
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock | InvertedResidual)]
    modules = [m for m in model.modules() if type(m) is kind]
    assert blocks and len(modules) == len(blocks)
    model.train()
    out = model(torch.randn(2, 1, 32, 32))
    assert out.shape == (2, 10)
    out.logsumexp(dim=1).mean().backward()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.parameters())
    assert not any(isinstance(m, CBAM) for m in model.modules())


def test_eca_in_resnet20_adds_three_parameters_per_block():
    # Nine basic blocks of 16, 32 and 64 channels: psi(C) = 3 for each.
    added = _params(build_model("resnet20", "eca")) - _params(build_model("resnet20", "none"))
    assert added == 9 * 3
    assert math.isclose(_params(build_model("resnet20", "simam")), _params(build_model("resnet20")))


def _model_params(backbone: str, attention: str) -> int:
    with torch.device("meta"):  # counts only: no memory, no initialisation
        return _params(build_model(backbone, attention, num_classes=1000))


def test_resnet50_rows_match_the_papers_tables():
    # ECA-Net (Table 2): ResNet-50 25.557M and ECA-Net50 25.557M: 16 gates of k = 5 (256,
    # 512, 1024 channels) or 7 (2048) add 86 parameters. SimAM (Table 1) and GE-theta-minus
    # (Table 2) add none: ResNet-50's 25.56M.
    plain = _model_params("resnet50", "none")
    assert plain == 25_557_032
    assert _model_params("resnet50", "eca") - plain == 3 * 5 + 4 * 5 + 6 * 5 + 3 * 7
    assert round(_model_params("resnet50", "eca") / 1e6, 3) == 25.557
    assert _model_params("resnet50", "simam") == _model_params("resnet50", "ge") == plain

"""Every backbone x attention builds and trains a step on a small input; attention sits in place."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual
from torchvision.models.resnet import BasicBlock, Bottleneck

from ablation.attention import BUILT_IN_ATTENTIONS, CBAM, SqueezeExcitation
from ablation.models import BACKBONES, build_model

pytestmark = pytest.mark.usefixtures("torch_single_thread")

SMALL = ("resnet20", "resnet32", "resnet56", "resnet18", "resnet34", "mobilenet_v2")
BIG = tuple(b for b in BACKBONES if b not in SMALL)


def _train_step(model: nn.Module, x: torch.Tensor, num_classes: int) -> None:
    model.train()
    out = model(x)
    assert out.shape == (x.shape[0], num_classes)
    out.logsumexp(dim=1).mean().backward()


def _attention_modules(model: nn.Module, attention: str) -> list[nn.Module]:
    kind = {"se": SqueezeExcitation, "cbam": CBAM}.get(attention)
    return [m for m in model.modules() if kind is not None and isinstance(m, kind)]


def _blocks(model: nn.Module) -> list[nn.Module]:
    kinds = (BasicBlock, Bottleneck, InvertedResidual)
    return [m for m in model.modules() if isinstance(m, kinds)]


@pytest.mark.parametrize("attention", BUILT_IN_ATTENTIONS)
@pytest.mark.parametrize("backbone", SMALL)
def test_small_backbones_train_a_step_with_one_channel_digits(backbone, attention):
    torch.manual_seed(0)
    model = build_model(backbone, attention, num_classes=10, in_channels=1)
    _train_step(model, torch.randn(2, 1, 32, 32), 10)
    modules = _attention_modules(model, attention)
    if attention != "none":
        assert len(modules) == len(_blocks(model))  # one per residual / inverted-residual block
        for module in modules:  # each is in the forward path: its parameters got gradients
            grads = [p.grad for p in module.parameters()]
            assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("attention", BUILT_IN_ATTENTIONS)
@pytest.mark.parametrize("backbone", BIG)
def test_big_backbones_train_a_step(backbone, attention):
    torch.manual_seed(0)
    model = build_model(backbone, attention, num_classes=10)
    _train_step(model, torch.randn(2, 3, 32, 32), 10)
    assert len(_attention_modules(model, attention)) == (
        0 if attention == "none" else len(_blocks(model))
    )


def test_cbam_knobs_reach_every_block():
    knobs = {"reduction": 4, "kernel_size": 3, "order": "parallel", "channel_pool": ["lse"]}
    model = build_model("resnet20", "cbam", knobs, num_classes=10)
    modules = _attention_modules(model, "cbam")
    assert modules and all(m.knobs["kernel_size"] == 3 and m.order == "parallel" for m in modules)
    _train_step(model, torch.randn(2, 3, 32, 32), 10)


def test_attention_sits_at_end_of_residual_branch_before_the_addition():
    resnet = build_model("resnet50", "cbam", num_classes=10)
    block = resnet.layer2[0]
    assert isinstance(block.bn3.norm, nn.BatchNorm2d) and isinstance(block.bn3.attention, CBAM)
    # Hook the attention: its output plus the shortcut, through ReLU, is the block's output
    # (cloned: the block adds the shortcut to it in place).
    seen = {}
    block.bn3.attention.register_forward_hook(lambda m, i, o: seen.update(branch=o.clone()))
    block.eval()
    x = torch.randn(1, 256, 8, 8)
    with torch.no_grad():
        y = block(x)
        assert torch.allclose(y, torch.relu(seen["branch"] + block.downsample(x)))

    mobilenet = build_model("mobilenet_v2", "se", num_classes=10)
    inverted = [m for m in mobilenet.modules() if isinstance(m, InvertedResidual)]
    assert all(isinstance(m.conv[-1], SqueezeExcitation) for m in inverted)
    assert all(isinstance(m.conv[-2], nn.BatchNorm2d) for m in inverted)


@pytest.mark.parametrize("backbone", ["resnet20", "resnet50", "mobilenet_v2"])
def test_cbam_in_backbones_overwrites_the_norms_output_in_inference_and_agrees(backbone):
    # The backbones let CBAM write its output over its input (a BatchNorm's output that nothing
    # else reads); in inference that must change nothing but memory use.
    torch.manual_seed(0)
    model = build_model(backbone, "cbam", num_classes=10).eval()
    modules = _attention_modules(model, "cbam")
    assert modules and all(m.inplace for m in modules)
    for m in modules:  # gates away from 1/2, so that a wrong gating would show
        for p in m.parameters():
            nn.init.normal_(p, std=0.3)
    x = torch.randn(2, 3, 64, 64)
    with torch.inference_mode():
        y = model(x)
        for m in modules:
            m.inplace = False
        expected = model(x)
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=1e-5)


def test_one_channel_stems():
    for backbone in ("resnet50", "mobilenet_v2", "resnet20"):
        with torch.device("meta"):
            model = build_model(backbone, num_classes=10, in_channels=1)
            assert model(torch.empty(2, 1, 32, 32)).shape == (2, 10)


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match="backbone must be one of .*resnet50"):
        build_model("vgg16")
    with pytest.raises(ValueError, match="attention must be one of none, se, cbam"):
        build_model("resnet20", "no-such-gate")
    with pytest.raises(ValueError, match="kernel_size"):
        build_model("resnet20", "none", {"kernel_size": 2})
    with pytest.raises(ValueError, match="in_channels"):
        build_model("resnet20", in_channels=0)

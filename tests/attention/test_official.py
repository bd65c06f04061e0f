"""CBAM against the official code's behaviour (Jongchan/attention-module, MODELS/cbam.py and
MODELS/model_resnet.py), and its knobs importable without torch or pydantic.

The official SpatialGate's BasicConv has BatchNorm2d(1, eps=1e-5, momentum=0.01), and
ResidualNet initialises every state_dict key: "conv" weights kaiming_normal(mode="fan_out"),
"bn" weights 1 but the SpatialGate's 0, every bias 0. The MLP's Linear weights ("mlp.1.weight")
match neither rule and keep PyTorch's init. The numbers below are derived from that.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from torch import nn

from ablation.attention import CBAM, set_cbam_backend
from ablation.models import build_model


def test_spatial_batchnorm_running_stats_follow_momentum_001_by_hand():
    torch.manual_seed(0)
    cbam = CBAM(16, reduction=4, kernel_size=3, spatial_norm=True).train()
    bn = cbam.spatial_gate.norm
    assert (bn.momentum, bn.eps) == (0.01, 1e-5)
    mean, var = torch.zeros(1), torch.ones(1)  # a fresh BatchNorm's running statistics
    for step in range(4):
        x = torch.randn(3, 16, 6, 6) * (step + 1)
        # What the BatchNorm normalises this step: the spatial conv of the pooled maps of
        # the channel-gated input (channel-first).
        with torch.no_grad():
            gated = x * cbam.channel_gate(x)
            maps = torch.cat([gated.mean(1, keepdim=True), gated.amax(1, keepdim=True)], 1)
            conv = cbam.spatial_gate.conv(maps)
        cbam(x).sum().backward()
        n = conv.numel()
        batch_mean = conv.mean()
        batch_var_unbiased = conv.var(unbiased=True)  # PyTorch and the official code both
        mean = 0.99 * mean + 0.01 * batch_mean
        var = 0.99 * var + 0.01 * batch_var_unbiased
        assert n == 3 * 6 * 6
        torch.testing.assert_close(bn.running_mean, mean.reshape(1), rtol=1e-5, atol=1e-7)
        torch.testing.assert_close(bn.running_var, var.reshape(1), rtol=1e-5, atol=1e-7)
    assert int(bn.num_batches_tracked) == 4


@pytest.mark.parametrize("backend", ["reference", "fused", "kernels"])
def test_running_stats_equal_an_official_batchnorm_on_every_backend(backend):
    torch.manual_seed(1)
    cbam = CBAM(8, reduction=2, kernel_size=7, spatial_norm=True)
    cbam = set_cbam_backend(cbam, backend).train()
    official = nn.BatchNorm2d(1, eps=1e-5, momentum=0.01, affine=True)
    for _ in range(5):
        x = torch.randn(2, 8, 5, 5)
        with torch.no_grad():
            gated = x * cbam.channel_gate(x)
            maps = torch.cat([gated.mean(1, keepdim=True), gated.amax(1, keepdim=True)], 1)
            official(cbam.spatial_gate.conv(maps))
        cbam(x.requires_grad_()).sum().backward()
    bn = cbam.spatial_gate.norm
    torch.testing.assert_close(bn.running_mean, official.running_mean, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(bn.running_var, official.running_var, rtol=1e-5, atol=1e-7)


def test_official_init_statistics():
    torch.manual_seed(0)
    k, channels = 7, 512
    modules = [CBAM(channels, kernel_size=k, spatial_norm=True) for _ in range(60)]
    for m in modules:
        assert m.knobs["init"] == "official"
        assert torch.equal(m.channel_gate.mlp[0].bias, torch.zeros(channels // 16))
        assert torch.equal(m.channel_gate.mlp[2].bias, torch.zeros(channels))
        assert torch.equal(m.spatial_gate.norm.weight, torch.zeros(1))
        assert torch.equal(m.spatial_gate.norm.bias, torch.zeros(1))
    # kaiming_normal fan_out of a (1, 2, k, k) weight: std = sqrt(2 / fan_out), fan_out = 1*k*k
    conv = torch.cat([m.spatial_gate.conv.weight.flatten() for m in modules])
    expected_std = math.sqrt(2 / (1 * k * k))  # 0.2020
    assert conv.std().item() == pytest.approx(expected_std, rel=0.05)  # 5880 draws
    assert abs(conv.mean().item()) < 4 * expected_std / math.sqrt(conv.numel())
    # Normal, not uniform: a uniform of that std is bounded by sqrt(3) std.
    assert conv.abs().max().item() > math.sqrt(3) * expected_std
    # The MLP's Linear weights keep PyTorch's kaiming_uniform(a=sqrt(5)): U(-1/sqrt(in), ..).
    w0 = modules[0].channel_gate.mlp[0].weight
    assert w0.abs().max().item() <= 1 / math.sqrt(channels)
    assert w0.std().item() == pytest.approx(1 / math.sqrt(3 * channels), rel=0.05)


def test_pytorch_init_is_a_knob_with_pytorchs_defaults():
    torch.manual_seed(0)
    k = 7
    modules = [CBAM(64, kernel_size=k, spatial_norm=True, init="pytorch") for _ in range(60)]
    conv = torch.cat([m.spatial_gate.conv.weight.flatten() for m in modules])
    # Conv2d's default: U(-b, b), b = 1/sqrt(fan_in) = 1/sqrt(2*k*k)
    bound = 1 / math.sqrt(2 * k * k)
    assert conv.abs().max().item() <= bound
    assert conv.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)
    bias = modules[0].channel_gate.mlp[0].bias
    assert bias.abs().sum() > 0  # PyTorch's Linear bias is U(-1/sqrt(in), 1/sqrt(in))
    assert torch.equal(modules[0].spatial_gate.norm.weight, torch.zeros(1))  # both inits


def test_backbones_keep_cbams_init():
    # The torchvision / CIFAR ResNets initialise before CBAM goes in: CBAM's init stands.
    torch.manual_seed(0)
    model = build_model("resnet20", "cbam", {"spatial_norm": True}, num_classes=10)
    cbams = [m for m in model.modules() if isinstance(m, CBAM)]
    assert cbams and all(
        torch.equal(m.channel_gate.mlp[2].bias, torch.zeros_like(m.channel_gate.mlp[2].bias))
        and m.spatial_gate.norm.momentum == 0.01
        for m in cbams
    )
    assert set_cbam_backend(model, "fused") is model
    fast = [m for m in model.modules() if isinstance(m, CBAM)]
    assert len(fast) == len(cbams) and {m.backend for m in fast} == {"fused"}
    with pytest.raises(ValueError, match="cbam_backend must be one of"):
        set_cbam_backend(model, "cuda")


def test_the_knob_vocabulary_imports_without_torch_or_pydantic():
    code = (
        "import sys, ablation.vocabulary.cbam as v\n"
        "print(v.DEFAULTS.kernel_size, [m for m in ('torch', 'pydantic') if m in sys.modules])\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["7", "[]"]

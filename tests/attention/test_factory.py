"""The attention factory and squeeze-and-excitation (Hu et al., CVPR 2018)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ablation.attention import BUILT_IN_ATTENTIONS, CBAM, SqueezeExcitation, create_attention

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def test_factory_names():
    assert BUILT_IN_ATTENTIONS == ("none", "se", "cbam")
    assert isinstance(create_attention("none", 64), nn.Identity)
    assert isinstance(create_attention("se", 64), SqueezeExcitation)
    cbam = create_attention("cbam", 64, reduction=8, order="parallel")
    assert isinstance(cbam, CBAM)
    assert cbam.knobs["reduction"] == 8 and cbam.order == "parallel"


def test_factory_rejects_unknown_names_and_misplaced_knobs():
    with pytest.raises(ValueError, match="attention must be one of none, se, cbam"):
        create_attention("sk", 64)
    with pytest.raises(ValueError, match="'cbam' only"):
        create_attention("se", 64, reduction=8)


@pytest.mark.parametrize("channels", [256, 2048, 16, 8])
def test_se_parameters_are_two_biased_layers_at_reduction_16(channels):
    hidden = max(1, channels // 16)
    se = SqueezeExcitation(channels)
    expected = channels * hidden + hidden + hidden * channels + channels
    assert sum(p.numel() for p in se.parameters()) == expected


def test_se_scales_each_channel_by_a_sigmoid_of_its_mean():
    torch.manual_seed(0)
    se = SqueezeExcitation(32)
    x = torch.randn(2, 32, 5, 5)
    w0, b0 = se.fc1.weight.flatten(1), se.fc1.bias
    w1, b1 = se.fc2.weight.flatten(1), se.fc2.bias
    scale = torch.sigmoid(torch.relu(x.mean(dim=(2, 3)) @ w0.T + b0) @ w1.T + b1)
    assert torch.allclose(se(x), x * scale[:, :, None, None], atol=1e-6)

"""`build_model` with a researcher's `"MODULE:NAME"` backbone and attention: every backbone
takes every attention, and their keyword arguments reach them."""

from __future__ import annotations

import sys

import pytest
import torch

from ablation.models import build_model
from ablation.vocabulary.plugins import PluginError, load_plugin

MODULE = """
from torch import nn


class Scale(nn.Module):
    def __init__(self, channels, init=1.0):
        super().__init__()
        self.channels, self.weight = channels, nn.Parameter(torch_ones(channels) * init)

    def forward(self, x):
        return x * self.weight[None, :, None, None]


def torch_ones(n):
    import torch

    return torch.ones(n)


def net(*, num_classes, in_channels, attention, width=4):
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), attention(width),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes),
    )
"""


@pytest.fixture
def lab(tmp_path, monkeypatch):
    (tmp_path / "lab_models_plugin.py").write_text(MODULE)
    monkeypatch.setattr(sys, "path", list(sys.path))
    load_plugin("lab_models_plugin:net", tmp_path)  # as a study's validation does
    yield tmp_path
    sys.modules.pop("lab_models_plugin", None)


def test_a_plugin_attention_goes_into_a_built_in_backbone_with_its_arguments(lab):
    model = build_model(
        "resnet20",
        "lab_models_plugin:Scale",
        num_classes=10,
        attention_args={"init": 0.5},
    )
    scales = [m for m in model.modules() if type(m).__name__ == "Scale"]
    assert len(scales) == 9  # one per BasicBlock of ResNet-20
    assert {s.channels for s in scales} == {16, 32, 64}
    assert all(torch.all(s.weight == 0.5) for s in scales)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)


@pytest.mark.parametrize("attention", ["none", "se", "cbam", "lab_models_plugin:Scale"])
def test_a_plugin_backbone_takes_every_attention(lab, attention):
    model = build_model(
        "lab_models_plugin:net",
        attention,
        num_classes=3,
        in_channels=1,
        backbone_args={"width": 16},
    )
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    expected = {"none": "Identity", "se": "SqueezeExcitation", "cbam": "CBAM"}
    assert type(model[1]).__name__ == expected.get(attention, "Scale")


def test_a_missing_plugin_raises_plugin_error():
    with pytest.raises(PluginError, match="cannot import 'no_such_lab_module'"):
        build_model("resnet20", "no_such_lab_module:Gate")
    with pytest.raises(ValueError, match="takes no backbone_args"):
        build_model("resnet20", backbone_args={"width": 3})

"""`ablation profile` with the study file's spellings (`model.cbam.kernel_size=3`), a
did-you-mean for unknown keys, and a researcher's `MODULE:NAME` backbone and attention
imported from the current folder."""

from __future__ import annotations

import json
import sys

import pytest

from ablation.cli import main
from ablation.models import build_model

MODULE = """
from torch import nn


class Gate(nn.Module):
    def __init__(self, channels, kernel_size=3):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size, padding=kernel_size // 2)

    def forward(self, x):
        return x * self.conv(x).sigmoid()


def net(*, num_classes, in_channels, attention, width=4):
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 3, padding=1), attention(width),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes),
    )
"""

BASE = ["profile", "--image-size", "16", "--num-classes", "10", "--json", "--repeats", "1"]


def test_the_study_files_spelling_of_a_cbam_knob(capsys):
    assert main([*BASE, "--backbone", "resnet20", "model.cbam.kernel_size=3"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["cbam"]["kernel_size"] == 3
    expected = build_model("resnet20", "cbam", {"kernel_size": 3}, num_classes=10)
    assert record["params"] == sum(p.numel() for p in expected.parameters())


@pytest.mark.parametrize(
    "word, message",
    [
        ("kernal_size=3", "unknown CBAM knob 'kernal_size' (did you mean 'kernel_size'?)"),
        ("model.cbam.kernal_size=3", "(did you mean 'kernel_size'?)"),
        ("model.atention_args.k=3", "(did you mean 'model.attention_args.k'?)"),
    ],
)
def test_unknown_keys_say_the_key_meant(capsys, word, message):
    assert main([*BASE, "--backbone", "resnet20", word]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def test_a_plugin_backbone_and_attention_from_the_current_folder(tmp_path, monkeypatch, capsys):
    (tmp_path / "profile_lab.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    argv = [*BASE, "--backbone", "profile_lab:net", "--attention", "profile_lab:Gate"]
    assert main([*argv, "kernel_size=5", "model.backbone_args.width=8"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["attention_args"] == {"kernel_size": 5}
    assert record["backbone_args"] == {"width": 8}
    # conv 3->8 (3x3) + the gate's conv 8->8 (5x5) + fc 8->10, with biases
    assert record["params"] == (27 * 8 + 8) + (25 * 64 + 8) + (8 * 10 + 10)
    assert main([*argv, "size=5"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "unexpected keyword argument 'size'" in lines[0], lines

"""Params, GFLOPs (one multiply-add = 1 FLOP, per image) and latency; the `ablation profile` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from torch import nn

from ablation.cli import main
from ablation.models import build_model
from ablation.profile import parse_knobs, profile_model

pytestmark = pytest.mark.usefixtures("torch_single_thread")

ABLATION = str(Path(sys.executable).with_name("ablation"))


def test_profile_counts_multiply_adds_per_image():
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 16, 5)
    )
    model.train()
    result = profile_model(model, (4, 3, 4, 4), repeats=3)
    conv_macs = 8 * 3 * 3 * 3 * 4 * 4
    linear_macs = 8 * 16 * 5
    assert result["params"] == 8 * 3 * 9 + 8 * 16 * 5 + 5
    assert isinstance(result["params"], int)
    assert result["gflops"] == pytest.approx((conv_macs + linear_macs) / 1e9)
    assert result["latency_ms"] > 0
    assert model.training  # mode restored


def test_cbam_flops_are_its_mlp_and_spatial_conv():
    # ResNet-20 on 32x32: 3 blocks each at (16 ch, 32x32), (32 ch, 16x16), (64 ch, 8x8).
    none = profile_model(build_model("resnet20", "none", num_classes=10), (1, 3, 32, 32), repeats=1)
    knobs = {"kernel_size": 3, "reduction": 4, "channel_pool": ["avg", "max", "lse"]}
    cbam = build_model("resnet20", "cbam", knobs, num_classes=10)
    with_cbam = profile_model(cbam, (2, 3, 32, 32), repeats=1)
    extra = 0
    for channels, side in ((16, 32), (32, 16), (64, 8)):
        mlp = 3 * 2 * channels * (channels // 4)  # three pooled descriptors through two layers
        spatial = 2 * 3 * 3 * side * side  # 2 maps, 3x3 kernel, every position
        extra += 3 * (mlp + spatial)
    assert with_cbam["gflops"] - none["gflops"] == pytest.approx(extra / 1e9, rel=1e-9)


def test_resnet50_flops_match_torchvisions_published_count():
    from torchvision.models import ResNet50_Weights

    result = profile_model(build_model("resnet50"), (1, 3, 224, 224), repeats=1)
    assert round(result["gflops"], 3) == ResNet50_Weights.IMAGENET1K_V1.meta["_ops"]


def test_parse_knobs():
    assert parse_knobs(
        ["reduction=8", "channel_pool=avg,max", "gates=[spatial]", "spatial_norm=true"]
    ) == {
        "reduction": 8,
        "channel_pool": ["avg", "max"],
        "gates": ["spatial"],
        "spatial_norm": True,
    }
    for bad, words in [
        ("reduction=x", "reduction must be an integer"),
        ("size=3", "unknown CBAM knob 'size'"),
        ("kernel_size", "expected k=v"),
    ]:
        with pytest.raises(ValueError, match=words):
            parse_knobs([bad])


def _profile(*args: str) -> subprocess.CompletedProcess:
    # One OpenMP thread, as in-process (see the torch_single_thread fixture).
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [ABLATION, "profile", *args], capture_output=True, text=True, timeout=180, env=env
    )


def test_cli_json_for_resnet50_cbam():
    proc = _profile("--backbone", "resnet50", "--attention", "cbam", "--json", "--repeats", "2")
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert isinstance(record["params"], int) and round(record["params"] / 1e6, 2) == 28.09
    assert 4.0 < record["gflops"] < 4.2 and record["latency_ms"] > 0
    assert "multiply-add = 1 FLOP" in record["flops_rule"]


def test_cli_bad_knob_exits_2_with_one_line_and_no_traceback():
    proc = _profile("--backbone", "resnet20", "kernel_size=4")
    assert proc.returncode == 2
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "ablation profile: error: kernel_size must be an odd integer >= 1 (3, 7, ...); got 4"
    ]


# The same entry point in-process (a process start costs seconds of imports).


def test_cli_knobs_reach_the_model(capsys):
    knobs = {"reduction": 8, "kernel_size": 3, "order": "parallel", "channel_pool": ["avg", "lp"]}
    words = ["reduction=8", "kernel_size=3", "order=parallel", "channel_pool=avg,lp"]
    argv = ["profile", "--backbone", "resnet20", "--image-size", "32", "--num-classes", "10"]
    assert main([*argv, "--json", "--repeats", "1", *words]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["cbam"]["order"] == "parallel"
    assert record["cbam"]["channel_pool"] == ["avg", "lp"]
    expected = build_model("resnet20", "cbam", knobs, num_classes=10)
    assert record["params"] == sum(p.numel() for p in expected.parameters())
    default = build_model("resnet20", "cbam", num_classes=10)
    assert record["params"] != sum(p.numel() for p in default.parameters())


@pytest.mark.parametrize(
    "args, message",
    [
        (["channel_pool=avg,median"], "channel_pool must be"),
        (["order=sideways"], "order must be one of"),
        (["gates="], "gates must be a non-empty list"),
        (["--attention", "se", "reduction=8"], "attention 'se' takes no arguments; got reduction"),
        (["--attention", "none", "model.attention_args.k=1"], "'none' takes no arguments; got k"),
        (["model.attention_args.k=1"], "'cbam' takes no arguments; its knobs are model.cbam"),
        (["--backbone", "vgg16"], "backbone must be one of"),
        (["--image-size", "0"], "--image-size must be >= 1"),
    ],
)
def test_cli_bad_input_returns_2_with_one_line(capsys, args, message):
    assert main(["profile", "--backbone", "resnet20", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], captured.err


def test_cli_human_readable_output(capsys):
    argv = ["profile", "--backbone", "mobilenet_v2", "--attention", "se", "--image-size", "64"]
    assert main([*argv, "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "mobilenet_v2 + se" in out and "params" in out and "GFLOPs" in out and " ms" in out

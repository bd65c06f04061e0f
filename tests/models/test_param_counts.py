"""Parameter counts equal the CBAM paper's Table (Woo et al., ECCV 2018; r = 16), as printed.

Models are built on the meta device: the architecture and its counts, no memory, no compute.
"""

from __future__ import annotations

import pytest
import torch

from ablation.models import build_model

pytestmark = pytest.mark.usefixtures("torch_single_thread")

# Millions of parameters, from the paper's ImageNet table (plain, + SE, + CBAM).
PAPER_PARAMS_M = {
    "resnet18": (11.69, 11.78, 11.78),
    "resnet34": (21.80, 21.96, 21.96),
    "resnet50": (25.56, 28.09, 28.09),
    "resnet101": (44.55, 49.33, 49.33),
    "resnext50_32x4d": (25.03, 27.56, 27.56),
    "resnext101_32x4d": (44.18, 48.96, 48.96),
}


def count(backbone: str, attention: str, **kwargs) -> int:
    with torch.device("meta"):
        model = build_model(backbone, attention, **kwargs)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("backbone", PAPER_PARAMS_M)
def test_params_match_paper_table(backbone):
    got = tuple(
        round(count(backbone, a, num_classes=1000) / 1e6, 2) for a in ("none", "se", "cbam")
    )
    assert got == PAPER_PARAMS_M[backbone]


def test_plain_torchvision_resnets_are_torchvision_exactly():
    import torchvision

    for name in ("resnet50", "resnet152", "resnext50_32x4d", "wide_resnet50_2", "mobilenet_v2"):
        with torch.device("meta"):
            reference = torchvision.models.get_model(name, weights=None)
        assert count(name, "none") == sum(p.numel() for p in reference.parameters()), name


def test_cbam_adds_se_params_plus_the_spatial_conv_per_block():
    # ResNet-50 has 16 bottleneck blocks; each CBAM adds 2 x k x k spatial weights over SE.
    assert count("resnet50", "cbam") - count("resnet50", "se") == 16 * 2 * 7 * 7
    assert count("resnet50", "cbam", cbam={"kernel_size": 3}) - count("resnet50", "se") == 16 * 18


@pytest.mark.parametrize(
    "backbone, millions", [("resnet20", 0.27), ("resnet32", 0.46), ("resnet56", 0.85)]
)
def test_cifar_resnets_match_he_et_al_table_6(backbone, millions):
    # Option-A (parameter-free) shortcuts, 10 classes, as in He et al. 2016, section 4.2
    assert round(count(backbone, "none", num_classes=10) / 1e6, 2) == millions

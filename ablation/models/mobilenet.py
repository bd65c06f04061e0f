"""MobileNetV2 from torchvision, with attention on each inverted-residual block's projection.

Sandler, Howard, Zhu, Zhmoginov, Chen, "MobileNetV2: Inverted Residuals and Linear
Bottlenecks", CVPR 2018. The attention (CBAM, Woo et al., ECCV 2018, or SE) goes on the output
of the linear projection (1x1 conv + BN), before the residual addition where there is one:
the same place as in ResNet, the end of the residual branch.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn
from torchvision.models.mobilenetv2 import InvertedResidual, MobileNetV2

from ablation.attention import CBAM


def build_mobilenet_v2(
    name: str, attention: Callable[[int], nn.Module], *, num_classes: int, in_channels: int
) -> MobileNetV2:
    """torchvision's MobileNetV2 (width 1.0; `name` is mobilenet_v2) with `attention(channels)`
    in each block."""
    model = MobileNetV2(num_classes=num_classes)
    if in_channels != 3:
        stem = model.features[0][0]
        model.features[0][0] = nn.Conv2d(
            in_channels, stem.out_channels, 3, stride=2, padding=1, bias=False
        )
        nn.init.kaiming_normal_(model.features[0][0].weight, mode="fan_out")
    for block in model.modules():
        if isinstance(block, InvertedResidual):
            module = attention(block.out_channels)
            if isinstance(module, CBAM):
                module.inplace = True  # the projection BN's output feeds nothing else
            if not isinstance(module, nn.Identity):
                block.conv.append(module)  # after the projection's BN, inside the branch
    return model

"""ResNet, ResNeXt and Wide ResNet from torchvision, with attention in every residual block.

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016 (ResNet);
Xie et al., CVPR 2017 (ResNeXt); Zagoruyko, Komodakis, BMVC 2016 (Wide ResNet).
The attention sits where CBAM (Woo et al., ECCV 2018) and SE put it: on the output of the last
conv + BN of the residual branch, before the addition with the shortcut. It is injected into
torchvision's own blocks (the last norm becomes `norm -> attention`), so the architecture is
torchvision's, not a copy.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from torch import nn
from torchvision.models import resnet as tv

from ablation.attention import CBAM

# name -> (block, layers, groups, width_per_group). torchvision has no resnext101_32x4d builder,
# but it is the same ResNet class with other settings (the paper's ResNeXt101 row).
RESNETS: dict[str, tuple[type[nn.Module], list[int], int, int]] = {
    "resnet18": (tv.BasicBlock, [2, 2, 2, 2], 1, 64),
    "resnet34": (tv.BasicBlock, [3, 4, 6, 3], 1, 64),
    "resnet50": (tv.Bottleneck, [3, 4, 6, 3], 1, 64),
    "resnet101": (tv.Bottleneck, [3, 4, 23, 3], 1, 64),
    "resnet152": (tv.Bottleneck, [3, 8, 36, 3], 1, 64),
    "resnext50_32x4d": (tv.Bottleneck, [3, 4, 6, 3], 32, 4),
    "resnext101_32x4d": (tv.Bottleneck, [3, 4, 23, 3], 32, 4),
    "wide_resnet50_2": (tv.Bottleneck, [3, 4, 6, 3], 1, 128),
}


def build_resnet(
    name: str, attention: Callable[[int], nn.Module], *, num_classes: int, in_channels: int
) -> tv.ResNet:
    """torchvision's ResNet `name` with `attention(channels)` in each block and `in_channels`
    inputs."""
    block, layers, groups, width = RESNETS[name]
    model = tv.ResNet(block, layers, num_classes=num_classes, groups=groups, width_per_group=width)
    if in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    insert_attention(model, attention)
    return model


def insert_attention(model: nn.Module, make: Callable[[int], nn.Module]) -> None:
    """Put `make(channels)` at the end of the residual branch of every torchvision ResNet block."""
    for block in model.modules():
        if isinstance(block, tv.Bottleneck):
            block.bn3 = _then(block.bn3, make(block.bn3.num_features))
        elif isinstance(block, tv.BasicBlock):
            block.bn2 = _then(block.bn2, make(block.bn2.num_features))


def _then(norm: nn.BatchNorm2d, attention: nn.Module) -> nn.Module:
    if isinstance(attention, nn.Identity):
        return norm  # "none" keeps torchvision's module tree (and state-dict keys) untouched
    if isinstance(attention, CBAM):
        attention.inplace = True  # the norm's output feeds nothing else: reuse its memory
    return nn.Sequential(OrderedDict(norm=norm, attention=attention))

"""CIFAR-style ResNet-20/32/56: 3 stages of 16/32/64 channels, for small (32 x 32) images.

He, Zhang, Ren, Sun, "Deep Residual Learning for Image Recognition", CVPR 2016, section 4.2.
torchvision has no such network, so this is the one backbone written here, but its blocks are
torchvision's BasicBlock, so attention goes in exactly as in the ImageNet ResNets.
ResNet-8 (n = 1, 0.08M parameters) is the family's smallest member: the quickstart's CPU-sized
network. Shortcuts are the paper's option A (identity; where the shape changes, stride-2 subsampling
and zero-padded channels), which adds no parameters: ResNet-20 has 0.27M parameters, ResNet-32
0.46M and ResNet-56 0.85M, as in the paper's Table 6.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock

from ablation.models.resnet import insert_attention

DEPTHS = {"resnet8": 8, "resnet20": 20, "resnet32": 32, "resnet56": 56}


class PadShortcut(nn.Module):
    """Option-A shortcut: subsample by 2 and zero-pad the new channels (no parameters)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.extra = out_channels - in_channels

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, ::2, ::2]
        return F.pad(x, (0, 0, 0, 0, self.extra // 2, self.extra - self.extra // 2))


class CifarResNet(nn.Module):
    """conv3x3(16) -> 3 stages of n BasicBlocks (16, 32, 64 channels) -> global pool -> fc."""

    def __init__(self, depth: int, num_classes: int = 10, in_channels: int = 3) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"CIFAR ResNet depth must be 6n + 2; got {depth}")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._stage(16, 16, n, stride=1)
        self.layer2 = self._stage(16, 32, n, stride=2)
        self.layer3 = self._stage(32, 64, n, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    @staticmethod
    def _stage(in_channels: int, channels: int, n: int, stride: int) -> nn.Sequential:
        shortcut = PadShortcut(in_channels, channels) if stride != 1 else None
        blocks = [BasicBlock(in_channels, channels, stride, downsample=shortcut)]
        blocks += [BasicBlock(channels, channels) for _ in range(n - 1)]
        return nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


def build_cifar_resnet(
    name: str, attention: Callable[[int], nn.Module], *, num_classes: int, in_channels: int
) -> CifarResNet:
    """CIFAR ResNet `name` (resnet20/32/56) with `attention(channels)` in each block."""
    model = CifarResNet(DEPTHS[name], num_classes=num_classes, in_channels=in_channels)
    insert_attention(model, attention)
    return model

"""A backbone of "your own": two conv stages, each followed by the study's attention.

Called by the service as `tiny_net(num_classes=..., in_channels=..., attention=...,
**model.backbone_args)`, where `attention(channels)` makes the attention module the study
chose (none, se, cbam, a zoo name, or your own), so this backbone takes every one of them.
"""

from collections.abc import Callable

from torch import nn


def tiny_net(
    *, num_classes: int, in_channels: int, attention: Callable[[int], nn.Module], width: int = 16
) -> nn.Module:
    def stage(cin: int, cout: int) -> list[nn.Module]:
        return [
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            attention(cout),
            nn.MaxPool2d(2),
        ]

    return nn.Sequential(
        *stage(in_channels, width),
        *stage(width, 2 * width),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(2 * width, num_classes),
    )

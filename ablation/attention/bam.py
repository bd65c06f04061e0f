"""BAM: Park, Woo, Lee, Kweon, "BAM: Bottleneck Attention Module", BMVC 2018 (arXiv:1807.06514).

The paper's equations: F' = F + F * M(F) = (1 + M(F)) * F with M(F) = sigmoid(Mc(F) + Ms(F)),
Mc(F) = BN(MLP(AvgPool(F))) (one hidden layer of C/r), Ms(F) = BN(f3(f2(f1(f0(F))))) (f0 a
1x1 conv to C/r channels, f1 and f2 3x3 convs with dilation d, f3 a 1x1 conv to one map),
broadcast to C x H x W before the sum; r = 16, d = 4. A ReLU follows each hidden layer, as in
the authors' code (github.com/Jongchan/attention-module); the BatchNorms sit where the paper's
equations put them, at each branch's output. Here BAM sits where CBAM goes (every block), not
only at the paper's stage bottlenecks.
"""

from __future__ import annotations

import torch
from torch import nn


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    return value


class BAM(nn.Module):
    """(1 + sigmoid(Mc(F) + Ms(F))) * F, hidden width max(1, channels // reduction)."""

    def __init__(
        self, channels: int, reduction: int = 16, dilation: int = 4, dilated_convs: int = 2
    ) -> None:
        super().__init__()
        channels = _positive_int("channels", channels)
        hidden = max(1, channels // _positive_int("reduction", reduction))
        dilation = _positive_int("dilation", dilation)
        self.channel = nn.Sequential(  # on AvgPool(F), a C x 1 x 1 map
            nn.Conv2d(channels, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1),
            nn.BatchNorm2d(channels),
        )
        spatial: list[nn.Module] = [nn.Conv2d(channels, hidden, 1), nn.ReLU(inplace=True)]
        for _ in range(_positive_int("dilated_convs", dilated_convs)):
            # padding = dilation keeps H x W for a 3x3 kernel.
            spatial += [nn.Conv2d(hidden, hidden, 3, padding=dilation, dilation=dilation)]
            spatial += [nn.ReLU(inplace=True)]
        spatial += [nn.Conv2d(hidden, 1, 1), nn.BatchNorm2d(1)]
        self.spatial = nn.Sequential(*spatial)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        channel = self.channel(x.mean(dim=(2, 3), keepdim=True))
        return x * (1 + torch.sigmoid(channel + self.spatial(x)))

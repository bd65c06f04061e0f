"""Squeeze-and-Excitation.

Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018, arXiv:1709.01507.
torchvision's block (global average pool, 1x1 conv with bias, ReLU, 1x1 conv with bias,
sigmoid), with the constructor the other attention modules share: channels, then reduction.
At r = 16 it adds exactly the parameters of the paper's "+ SE" rows.
"""

from __future__ import annotations

from torchvision.ops import SqueezeExcitation as _TorchvisionSE


class SqueezeExcitation(_TorchvisionSE):
    """SE block: x * sigmoid(W1 relu(W0 avgpool(x))), hidden width max(1, channels // r)."""

    def __init__(self, channels: int, reduction: int = 16) -> None:
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be an integer >= 1; got {channels!r}")
        if isinstance(reduction, bool) or not isinstance(reduction, int) or reduction < 1:
            raise ValueError(f"reduction must be an integer >= 1; got {reduction!r}")
        super().__init__(channels, max(1, channels // reduction))

"""SimAM: Yang, Zhang, Li, Xie, "SimAM: A Simple, Parameter-Free Attention Module", ICML 2021.

The paper's full title ends "... for Convolutional Neural Networks" (PMLR 139).

Each neuron t of a channel is weighted by the inverse of its minimal energy (the paper's
Eq. 16): e*_t = 4 (var + lambda) / ((t - mu)^2 + 2 var + 2 lambda), with mu and var the
channel's mean and variance over the other H*W - 1 positions; the output is
x * sigmoid(1 / e*), which the paper's code writes as the form below. No parameters.
"""

from __future__ import annotations

import torch
from torch import nn


class SimAM(nn.Module):
    """x * sigmoid((x - mu)^2 / (4 (sum((x - mu)^2) / n + e_lambda)) + 1/2), n = H*W - 1."""

    def __init__(self, channels: int, e_lambda: float = 1e-4) -> None:
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be an integer >= 1; got {channels!r}")
        if isinstance(e_lambda, bool) or not isinstance(e_lambda, int | float) or e_lambda <= 0:
            raise ValueError(f"e_lambda must be a number > 0; got {e_lambda!r}")
        self.e_lambda = float(e_lambda)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # n >= 1: a 1x1 map (a ResNet-18's last stage on 32 px images) has no other position,
        # and (x - mu) = 0 there, so the gate is sigmoid(1/2) for every channel, not 0/0.
        n = max(x.shape[2] * x.shape[3] - 1, 1)
        square = (x - x.mean(dim=(2, 3), keepdim=True)).pow(2)
        energy = square / (4 * (square.sum(dim=(2, 3), keepdim=True) / n + self.e_lambda)) + 0.5
        return x * torch.sigmoid(energy)

    def extra_repr(self) -> str:
        return f"e_lambda={self.e_lambda}"

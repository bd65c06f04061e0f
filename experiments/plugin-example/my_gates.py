"""A gate of "your own": a channel gate from one 1-D convolution over the pooled channels.

Called by the service as `PooledGate(channels, **model.attention_args)`; it must give back a
tensor of its input's shape (the service checks that at validation).
"""

import torch
from torch import nn


class PooledGate(nn.Module):
    """x * sigmoid(conv1d(avg-pool(x))): each channel weighted by its `kernel_size` neighbours."""

    def __init__(self, channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd; got {kernel_size}")
        self.conv = nn.Conv1d(1, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = x.mean(dim=(2, 3)).unsqueeze(1)  # N x 1 x C
        weights = torch.sigmoid(self.conv(pooled)).squeeze(1)  # N x C
        return x * weights[:, :, None, None]

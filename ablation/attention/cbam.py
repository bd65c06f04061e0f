"""CBAM: Convolutional Block Attention Module, as the paper composes it.

Woo, Park, Lee, Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018, arXiv:1807.06521.

    F'  = Mc(F)  * F                                                   (1)
    F'' = Ms(F') * F'
    Mc(F) = sigmoid( sum_{p in channel_pool} W1 relu(W0 pool_p(F)) )   (2)
    Ms(F) = sigmoid( conv_kxk( [pool_q(F) for q in spatial_pool] ) )    (3)

The paper uses channel_pool = (avg, max), spatial_pool = (avg, max), k = 7, r = 16, channel
first. Every other setting here is an ablation axis of the study file's `model.cbam` section
(the knobs: ablation/vocabulary/cbam.py): the official code's extra channel pools (lp, lse)
and BatchNorm after the spatial conv, the paper's spatial-first and parallel arrangements,
and either gate alone.

`CBAM.forward` is the composition of the gate modules below with plain autograd: the
specification. Faster implementations of the same equations (ablation/attention/fast/,
tested against this one) take a CBAM's gate modules over; nothing here knows of them.

Matching the official code (Jongchan/attention-module, MODELS/cbam.py, model_resnet.py):
the spatial BatchNorm has momentum 0.01 and eps 1e-5, and with `init: official` (the default)
CBAM starts as ResidualNet initialises it: every bias 0, the spatial conv kaiming-normal
fan-out, the spatial BatchNorm's scale 0; the MLP's Linear weights keep PyTorch's init (the
official loop only touches keys with "conv" or "bn" in them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ablation.vocabulary.cbam import (
    CHANNEL_POOLS,
    DEFAULTS,
    GATES,
    INITS,
    ORDERS,
    SPATIAL_POOLS,
    check_cbam_knobs,
)

__all__ = [
    "CBAM",
    "CBAM_DEFAULTS",
    "CHANNEL_POOLS",
    "GATES",
    "INITS",
    "ORDERS",
    "SPATIAL_POOLS",
    "ChannelGate",
    "SpatialGate",
    "normalize_cbam_knobs",
]

CBAM_DEFAULTS: dict[str, Any] = DEFAULTS.as_dict()
# The official code's BasicConv BatchNorm2d(eps=1e-5, momentum=0.01): PyTorch's default 0.1
# would let the running statistics drift apart from the official model's.
SPATIAL_NORM_MOMENTUM = 0.01
SPATIAL_NORM_EPS = 1e-5


def channel_pool(f: Tensor, kind: str) -> Tensor:
    """Squeeze space: (B, C, H, W) -> (B, C), the input of the channel MLP in eq. (2)."""
    if kind == "avg":
        return f.mean(dim=(2, 3))
    if kind == "max":
        return f.amax(dim=(2, 3))
    if kind == "lp":
        # The official code's F.lp_pool2d(f, 2, (H, W)): the L2 norm over space (not a mean).
        return f.pow(2).sum(dim=(2, 3)).sqrt()
    if kind == "lse":
        # log sum_{h,w} exp(f); torch.logsumexp subtracts the max first, so it never overflows.
        return torch.logsumexp(f.flatten(2), dim=2)
    raise ValueError(f"channel_pool must be among {', '.join(CHANNEL_POOLS)}; got {kind!r}")


def spatial_pool(f: Tensor, kind: str) -> Tensor:
    """Squeeze channels: (B, C, H, W) -> (B, 1, H, W), one input map of the conv in eq. (3)."""
    if kind == "avg":
        return f.mean(dim=1, keepdim=True)
    if kind == "max":
        return f.amax(dim=1, keepdim=True)
    raise ValueError(f"spatial_pool must be among {', '.join(SPATIAL_POOLS)}; got {kind!r}")


class ChannelGate(nn.Module):
    """Mc of eq. (2): pooled descriptors through one shared MLP (with biases), summed, sigmoid."""

    def __init__(
        self, channels: int, reduction: int = 16, pools: Sequence[str] = ("avg", "max")
    ) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.pools = tuple(pools)
        # W0 and W1 of eq. (2). The biases are the official code's; they are what makes the
        # paper's parameter counts (the paper's equation omits them).
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, channels)
        )

    def forward(self, f: Tensor) -> Tensor:
        logits = sum(self.mlp(channel_pool(f, kind)) for kind in self.pools)
        return torch.sigmoid(logits)[:, :, None, None]  # (B, C, 1, 1), broadcast over H, W


class SpatialGate(nn.Module):
    """Ms of eq. (3): channel-pooled maps, concatenated, one k x k conv (no bias), sigmoid."""

    def __init__(
        self, kernel_size: int = 7, pools: Sequence[str] = ("avg", "max"), norm: bool = False
    ) -> None:
        super().__init__()
        self.pools = tuple(pools)
        self.conv = nn.Conv2d(len(self.pools), 1, kernel_size, padding=kernel_size // 2, bias=False)
        # The official code and timm put a BatchNorm here; the paper does not. Its settings
        # are the official code's. The official code starts its scale at 0: the gate opens at
        # a uniform 0.5 and is learned from there.
        self.norm = (
            nn.BatchNorm2d(1, eps=SPATIAL_NORM_EPS, momentum=SPATIAL_NORM_MOMENTUM)
            if norm
            else nn.Identity()
        )
        if norm:
            nn.init.zeros_(self.norm.weight)

    def forward(self, f: Tensor) -> Tensor:
        maps = torch.cat([spatial_pool(f, kind) for kind in self.pools], dim=1)
        return torch.sigmoid(self.norm(self.conv(maps)))  # (B, 1, H, W), broadcast over C


class CBAM(nn.Module):
    """Convolutional Block Attention Module: a channel gate and a spatial gate, eq. (1)."""

    def __init__(
        self,
        channels: int,
        reduction: int = 16,
        channel_pool: Sequence[str] = ("avg", "max"),
        spatial_pool: Sequence[str] = ("avg", "max"),
        kernel_size: int = 7,
        order: str = "channel-first",
        gates: Sequence[str] = ("channel", "spatial"),
        spatial_norm: bool = False,
        init: str = "official",
        inplace: bool = False,
    ) -> None:
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 1:
            raise ValueError(f"channels must be an integer >= 1; got {channels!r}")
        knobs = normalize_cbam_knobs(
            {
                "reduction": reduction,
                "channel_pool": channel_pool,
                "spatial_pool": spatial_pool,
                "kernel_size": kernel_size,
                "order": order,
                "gates": gates,
                "spatial_norm": spatial_norm,
                "init": init,
            }
        )
        self.channels = channels
        self.knobs = knobs
        # Not a knob (the result is the same): in inference, a fast backend may write the
        # output over the input, like nn.ReLU(inplace=True). The backbones set it where the
        # input is a BatchNorm's output that nothing else reads.
        self.inplace = inplace
        self.order = knobs["order"]
        self.channel_gate = (
            ChannelGate(channels, knobs["reduction"], knobs["channel_pool"])
            if "channel" in knobs["gates"]
            else None
        )
        self.spatial_gate = (
            SpatialGate(knobs["kernel_size"], knobs["spatial_pool"], knobs["spatial_norm"])
            if "spatial" in knobs["gates"]
            else None
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The gates' initial weights by the `init` knob (module docstring).

        "official": ResidualNet's loop over state_dict keys in the official code: weights of
        keys with "conv" kaiming-normal fan-out, of keys with "bn" 1 except the SpatialGate's 0,
        every bias 0. Applied to CBAM's keys that is: the spatial conv kaiming-normal fan-out,
        the MLP's biases 0 (its Linear weights keep PyTorch's init), the BatchNorm's scale and
        shift 0. "pytorch": PyTorch's defaults (the ablation's other arm), but for the
        BatchNorm's scale, 0 in both.
        """
        if self.knobs["init"] != "official":
            return
        if self.channel_gate is not None:
            for layer in (self.channel_gate.mlp[0], self.channel_gate.mlp[2]):
                nn.init.zeros_(layer.bias)
        if self.spatial_gate is not None:
            nn.init.kaiming_normal_(self.spatial_gate.conv.weight, mode="fan_out")
            if isinstance(self.spatial_gate.norm, nn.BatchNorm2d):
                nn.init.zeros_(self.spatial_gate.norm.weight)
                nn.init.zeros_(self.spatial_gate.norm.bias)

    def forward(self, f: Tensor) -> Tensor:
        """Eq. (1) composed from the gate modules with plain autograd."""
        gates = [self.channel_gate, self.spatial_gate]
        if self.order == "spatial-first":
            gates.reverse()
        gates = [gate for gate in gates if gate is not None]
        if self.order == "parallel":
            # Both gates see F and both scale F: F * Mc(F) * Ms(F).
            out = f
            for gate in gates:
                out = out * gate(f)
            return out
        for gate in gates:  # eq. (1): each gate sees the previous gate's output
            f = f * gate(f)
        return f

    def extra_repr(self) -> str:
        knobs = ", ".join(f"{k}={v!r}" for k, v in self.knobs.items())
        return f"{self.channels}, {knobs}" + (", inplace=True" if self.inplace else "")


def normalize_cbam_knobs(knobs: Mapping[str, Any]) -> dict[str, Any]:
    """All CBAM knobs (ablation.vocabulary.cbam.KNOBS), checked, defaults filled in, pools
    and gates as tuples.

    Raises ValueError naming the knob and its allowed values.
    """
    return check_cbam_knobs(knobs).as_dict()

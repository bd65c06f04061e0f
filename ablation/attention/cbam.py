"""CBAM: Convolutional Block Attention Module.

Woo, Park, Lee, Kweon, "CBAM: Convolutional Block Attention Module", ECCV 2018, arXiv:1807.06521.

    F'  = Mc(F)  * F                                                   (1)
    F'' = Ms(F') * F'
    Mc(F) = sigmoid( sum_{p in channel_pool} W1 relu(W0 pool_p(F)) )   (2)
    Ms(F) = sigmoid( conv_kxk( [pool_q(F) for q in spatial_pool] ) )    (3)

The paper uses channel_pool = (avg, max), spatial_pool = (avg, max), k = 7, r = 16, channel
first. Every other setting here is an ablation axis of the study file's `model.cbam` section:
the official code's extra channel pools (lp, lse) and BatchNorm after the spatial conv, the
paper's spatial-first and parallel arrangements, and either gate alone.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ablation.attention.fused import cbam_forward

CHANNEL_POOLS = ("avg", "max", "lp", "lse")
SPATIAL_POOLS = ("avg", "max")
ORDERS = ("channel-first", "spatial-first", "parallel")
GATES = ("channel", "spatial")

CBAM_DEFAULTS: dict[str, Any] = {
    "reduction": 16,
    "channel_pool": ("avg", "max"),
    "spatial_pool": ("avg", "max"),
    "kernel_size": 7,
    "order": "channel-first",
    "gates": ("channel", "spatial"),
    "spatial_norm": False,
}


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
        # The official code and timm put a BatchNorm here; the paper does not. The official
        # code starts its scale at 0: the gate opens at a uniform 0.5 and is learned from there.
        self.norm = nn.BatchNorm2d(1) if norm else nn.Identity()
        if norm:
            nn.init.zeros_(self.norm.weight)

    def forward(self, f: Tensor) -> Tensor:
        maps = torch.cat([spatial_pool(f, kind) for kind in self.pools], dim=1)
        return torch.sigmoid(self.norm(self.conv(maps)))  # (B, 1, H, W), broadcast over C


_REFERENCE = contextvars.ContextVar("cbam_reference_path", default=False)


@contextlib.contextmanager
def reference_path() -> Iterator[None]:
    """Run every CBAM through `reference_forward` inside the block: FLOP counts then follow the
    equations, not the fast path's implementation (which pools with matrix products)."""
    token = _REFERENCE.set(True)
    try:
        yield
    finally:
        _REFERENCE.reset(token)


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
            }
        )
        self.channels = channels
        self.knobs = knobs
        # Not a knob (the result is the same): in inference, the output may be written over
        # the input, like nn.ReLU(inplace=True). The backbones set it where the input is a
        # BatchNorm's output that nothing else reads.
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

    def forward(self, f: Tensor) -> Tensor:
        # The fast path (fused.py): the same equations, with the memory-bound pooling and
        # gating in one autograd function; `reference_forward` is the readable composition.
        if _REFERENCE.get():
            return self.reference_forward(f)
        return cbam_forward(self, f)

    def reference_forward(self, f: Tensor) -> Tensor:
        """Eq. (1) composed from the gate modules with plain autograd (the fast path's check)."""
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
    """All seven CBAM knobs, checked, defaults filled in, pools and gates as tuples.

    Raises ValueError naming the knob and its allowed values.
    """
    unknown = sorted(set(knobs) - set(CBAM_DEFAULTS))
    if unknown:
        raise ValueError(f"unknown CBAM knob {unknown[0]!r}; allowed: {', '.join(CBAM_DEFAULTS)}")
    merged = {**CBAM_DEFAULTS, **knobs}
    reduction = merged["reduction"]
    if not _is_int(reduction) or reduction < 1:
        raise ValueError(f"reduction must be an integer >= 1; got {reduction!r}")
    kernel_size = merged["kernel_size"]
    if not _is_int(kernel_size) or kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(
            f"kernel_size must be an odd integer >= 1 (3, 7, ...); got {kernel_size!r}"
        )
    order = merged["order"]
    if order not in ORDERS:
        raise ValueError(f"order must be one of {', '.join(ORDERS)}; got {order!r}")
    spatial_norm = merged["spatial_norm"]
    if not isinstance(spatial_norm, bool):
        raise ValueError(f"spatial_norm must be true or false; got {spatial_norm!r}")
    return {
        "reduction": reduction,
        "channel_pool": _subset("channel_pool", merged["channel_pool"], CHANNEL_POOLS),
        "spatial_pool": _subset("spatial_pool", merged["spatial_pool"], SPATIAL_POOLS),
        "kernel_size": kernel_size,
        "order": order,
        "gates": _subset("gates", merged["gates"], GATES),
        "spatial_norm": spatial_norm,
    }


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _subset(knob: str, value: Any, allowed: tuple[str, ...]) -> tuple[str, ...]:
    expected = f"a non-empty list of distinct values among {', '.join(allowed)}"
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"{knob} must be {expected}; got {value!r}")
    for item in value:
        if item not in allowed:
            raise ValueError(f"{knob} must be {expected}; got unknown {item!r}")
    if len(set(value)) != len(value):
        raise ValueError(f"{knob} must be {expected}; got a duplicate in {list(value)!r}")
    return tuple(value)

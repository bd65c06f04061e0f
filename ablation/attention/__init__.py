"""Attention modules a backbone plugs in by name: none, se (Squeeze-and-Excitation), cbam.

CBAM's knobs are ablation.vocabulary.cbam's; its fast backends live in `fast/` and run only
where a model's CBAM modules are switched to them (`set_cbam_backend`, `train.cbam_backend`).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ablation.attention.cbam import (
    CBAM,
    CBAM_DEFAULTS,
    CHANNEL_POOLS,
    GATES,
    ORDERS,
    SPATIAL_POOLS,
    ChannelGate,
    SpatialGate,
    normalize_cbam_knobs,
)
from ablation.attention.se import SqueezeExcitation
from ablation.vocabulary.attention import ATTENTIONS
from ablation.vocabulary.cbam import CBAM_BACKENDS


__all__ = [
    "ATTENTIONS",
    "CBAM",
    "CBAM_BACKENDS",
    "CBAM_DEFAULTS",
    "CHANNEL_POOLS",
    "GATES",
    "ORDERS",
    "SPATIAL_POOLS",
    "ChannelGate",
    "SpatialGate",
    "SqueezeExcitation",
    "create_attention",
    "normalize_cbam_knobs",
    "set_cbam_backend",
]


def create_attention(name: str, channels: int, **cbam_knobs: Any) -> nn.Module:
    """The attention module `name` for a feature map with `channels` channels.

    CBAM knobs apply to "cbam" only; "se" is the paper's reference SE at r = 16 and "none"
    is nn.Identity(), and both refuse knobs rather than silently drop them.
    """
    if name not in ATTENTIONS:
        raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}; got {name!r}")
    if name == "cbam":
        return CBAM(channels, **cbam_knobs)
    if cbam_knobs:
        raise ValueError(
            f"CBAM knobs ({', '.join(cbam_knobs)}) apply to attention 'cbam' only, not {name!r}"
        )
    if name == "se":
        return SqueezeExcitation(channels)
    return nn.Identity()


def set_cbam_backend(model: nn.Module, backend: str) -> int:
    """Run every CBAM module of `model` on `backend` (one of CBAM_BACKENDS); returns how many.

    The weights and the result stay those of the reference (tests/attention/test_fused.py,
    test_native.py); only the implementation of the forward and backward passes changes.
    """
    if backend not in CBAM_BACKENDS:
        raise ValueError(f"cbam_backend must be one of {', '.join(CBAM_BACKENDS)}; got {backend!r}")
    modules = [m for m in model.modules() if isinstance(m, CBAM)]
    for module in modules:
        module.backend = backend
    return len(modules)

"""Attention modules a backbone plugs in by name: none, se (Squeeze-and-Excitation), cbam.

CBAM's knobs are ablation.vocabulary.cbam's; its fast backends live in `fast/` and run only
where `set_cbam_backend` (from `fast/`, for `train.cbam_backend`) puts them in a model.
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
from ablation.attention.fast import set_cbam_backend
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

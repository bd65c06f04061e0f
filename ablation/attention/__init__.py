"""Attention modules a backbone plugs in by name: none, se (Squeeze-and-Excitation), cbam,
and the zoo (`zoo.py`: timm.layers' gates, SimAM, BAM), whose keywords are `attention_args`.

CBAM's knobs are ablation.vocabulary.cbam's; its fast backends live in `fast/` and run only
where `set_cbam_backend` (from `fast/`, for `train.cbam_backend`) puts them in a model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from ablation.attention.bam import BAM
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
from ablation.attention.simam import SimAM
from ablation.attention.zoo import build_zoo_attention
from ablation.vocabulary.attention import (
    ATTENTIONS,
    BUILT_IN_ATTENTIONS,
    ZOO_ARGUMENTS,
    ZOO_ATTENTIONS,
    ZOO_DISTRIBUTIONS,
)
from ablation.vocabulary.cbam import CBAM_BACKENDS

__all__ = [
    "ATTENTIONS",
    "BAM",
    "BUILT_IN_ATTENTIONS",
    "CBAM",
    "CBAM_BACKENDS",
    "CBAM_DEFAULTS",
    "CHANNEL_POOLS",
    "GATES",
    "ORDERS",
    "SPATIAL_POOLS",
    "ChannelGate",
    "SpatialGate",
    "SimAM",
    "SqueezeExcitation",
    "ZOO_ARGUMENTS",
    "ZOO_ATTENTIONS",
    "ZOO_DISTRIBUTIONS",
    "build_zoo_attention",
    "create_attention",
    "normalize_cbam_knobs",
    "set_cbam_backend",
]


def create_attention(
    name: str,
    channels: int,
    *,
    attention_args: Mapping[str, Any] | None = None,
    **cbam_knobs: Any,
) -> nn.Module:
    """The attention module `name` for a feature map with `channels` channels.

    CBAM knobs apply to "cbam" only; "se" is the paper's reference SE at r = 16 and "none"
    is nn.Identity(), and both refuse knobs rather than silently drop them. `attention_args`
    are a zoo module's keywords (ZOO_ARGUMENTS); the built-ins refuse them (CBAM's knobs are
    `model.cbam`'s). Raises ValueError naming what is wrong.
    """
    if name not in ATTENTIONS:
        raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}; got {name!r}")
    if cbam_knobs and name != "cbam":
        raise ValueError(
            f"CBAM knobs ({', '.join(cbam_knobs)}) apply to attention 'cbam' only, not {name!r}"
        )
    if name in ZOO_ATTENTIONS:
        return build_zoo_attention(name, channels, attention_args)
    if attention_args:
        where = " (its knobs are model.cbam)" if name == "cbam" else ""
        raise ValueError(
            f"attention {name!r} takes no attention_args{where}; got {', '.join(attention_args)}"
        )
    if name == "cbam":
        return CBAM(channels, **cbam_knobs)
    if name == "se":
        return SqueezeExcitation(channels)
    return nn.Identity()

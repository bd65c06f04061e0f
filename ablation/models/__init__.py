"""Backbones by name, each with an attention module (none | se | cbam) in every block."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from ablation.attention import create_attention, normalize_cbam_knobs
from ablation.models.cifar_resnet import build_cifar_resnet
from ablation.models.mobilenet import build_mobilenet_v2
from ablation.models.resnet import build_resnet
from ablation.vocabulary.attention import ATTENTIONS
from ablation.vocabulary.backbones import BACKBONES

# One builder per family of ablation/vocabulary/backbones.py, each called as
# `builder(name, attention, num_classes=..., in_channels=...)`, where `attention(channels)`
# makes the attention module of one block (torchvision's way: inject, do not fork).
_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "cifar-resnet": build_cifar_resnet,
    "resnet": build_resnet,
    "mobilenet": build_mobilenet_v2,
}

__all__ = ["BACKBONES", "build_model"]


def build_model(
    backbone: str,
    attention: str = "none",
    cbam: Mapping[str, Any] | None = None,
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
) -> nn.Module:
    """Backbone `backbone` with attention `attention` in every block, randomly initialised.

    `cbam` holds CBAM knobs (the study file's `model.cbam`); they are checked always and used
    only when attention == "cbam". Raises ValueError naming the bad argument.
    """
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}; got {backbone!r}")
    if attention not in ATTENTIONS:
        raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}; got {attention!r}")
    for arg, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{arg} must be an integer >= 1; got {value!r}")
    knobs = normalize_cbam_knobs(cbam or {})
    make = functools.partial(create_attention, attention, **(knobs if attention == "cbam" else {}))
    build = _BUILDERS[BACKBONES[backbone]]
    return build(backbone, make, num_classes=num_classes, in_channels=in_channels)

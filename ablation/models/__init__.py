"""Backbones by name, each with an attention module in every block.

The backbone is a built-in name (ablation/vocabulary/backbones.py) or a researcher's
`"MODULE:NAME"`, called as `NAME(*, num_classes, in_channels, attention, **backbone_args)`;
the attention is a built-in or zoo name (`ablation.attention.create_attention`) or a
`"MODULE:NAME"` called as `NAME(channels, **attention_args)`. Either way the backbone receives
the attention as one callable `channels -> nn.Module`, so every backbone takes every attention.
A plugin is imported by ablation.vocabulary.plugins (the study's loading has put the study's
folder first on the import path; a Ray worker gets the folder through its runtime env).
"""

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
from ablation.vocabulary.plugins import is_plugin, load_plugin

# One builder per family of ablation/vocabulary/backbones.py, each called as
# `builder(name, attention, num_classes=..., in_channels=...)`, where `attention(channels)`
# makes the attention module of one block (torchvision's way: inject, do not fork).
_BUILDERS: dict[str, Callable[..., nn.Module]] = {
    "cifar-resnet": build_cifar_resnet,
    "resnet": build_resnet,
    "mobilenet": build_mobilenet_v2,
}

__all__ = ["BACKBONES", "attention_factory", "build_backbone", "build_model"]


def build_model(
    backbone: str,
    attention: str = "none",
    cbam: Mapping[str, Any] | None = None,
    *,
    num_classes: int = 1000,
    in_channels: int = 3,
    attention_args: Mapping[str, Any] | None = None,
    backbone_args: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Backbone `backbone` with attention `attention` in every block, randomly initialised.

    `cbam` holds CBAM knobs (the study file's `model.cbam`); they are checked always and used
    only when attention == "cbam". `attention_args` are a zoo or plugin attention's keywords,
    `backbone_args` a plugin backbone's. Raises ValueError naming the bad argument; a plugin
    that cannot be imported raises ablation.vocabulary.plugins.PluginError (a ValueError), and
    one whose constructor raises lets its error through.
    """
    make = attention_factory(attention, cbam, attention_args)
    return build_backbone(
        backbone,
        make,
        num_classes=num_classes,
        in_channels=in_channels,
        backbone_args=backbone_args,
    )


def build_backbone(
    backbone: str,
    attention: Callable[[int], nn.Module],
    *,
    num_classes: int,
    in_channels: int,
    backbone_args: Mapping[str, Any] | None = None,
) -> nn.Module:
    """Backbone `backbone` with `attention(channels)` in every block (`build_model`'s second
    half; the study's plugin check hands it an attention it watches)."""
    for arg, value in (("num_classes", num_classes), ("in_channels", in_channels)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{arg} must be an integer >= 1; got {value!r}")
    make = attention
    if is_plugin(backbone):
        build = load_plugin(backbone)
        model = build(
            num_classes=num_classes,
            in_channels=in_channels,
            attention=make,
            **dict(backbone_args or {}),
        )
        if not isinstance(model, nn.Module):
            raise ValueError(f"backbone {backbone} returned a {type(model).__name__}, not a module")
        return model
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}; got {backbone!r}")
    if backbone_args:
        raise ValueError(f"backbone {backbone!r} takes no backbone_args; got {dict(backbone_args)}")
    build = _BUILDERS[BACKBONES[backbone]]
    return build(backbone, make, num_classes=num_classes, in_channels=in_channels)


def attention_factory(
    attention: str,
    cbam: Mapping[str, Any] | None = None,
    attention_args: Mapping[str, Any] | None = None,
) -> Callable[[int], nn.Module]:
    """The callable `channels -> nn.Module` a backbone calls once per block for `attention`."""
    args = dict(attention_args or {})
    if is_plugin(attention):
        return functools.partial(load_plugin(attention), **args)
    if attention not in ATTENTIONS:
        raise ValueError(f"attention must be one of {', '.join(ATTENTIONS)}; got {attention!r}")
    knobs = normalize_cbam_knobs(cbam or {})
    options: dict[str, Any] = dict(knobs) if attention == "cbam" else {}
    if args:  # a zoo module's keywords (create_attention refuses them for none, se and cbam)
        options["attention_args"] = args
    return functools.partial(create_attention, attention, **options)

"""The attention zoo by name: timm.layers' shape-keeping gates, and SimAM and BAM written here.

One entry per name of ablation.vocabulary.attention.ZOO_ATTENTIONS, built as
`build_zoo_attention(name, channels, attention_args)`; the keywords each takes are
ZOO_ARGUMENTS', named as the module's constructor names them. timm is imported on first use,
so a study without a zoo module never loads it. Papers (one line each):

- eca: Wang et al., "ECA-Net: Efficient Channel Attention for Deep CNNs", CVPR 2020.
- ceca: ECA-Net's gate with circular padding of the channel axis (timm's variant).
- ese: Lee and Park, "CenterMask: Real-Time Anchor-Free Instance Segmentation", CVPR 2020.
- gc, gca: Cao et al., "GCNet: Non-local Networks Meet Squeeze-Excitation Networks", 2019.
- lcbam: Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018 (timm's light one).
- coord: Hou, Zhou, Feng, "Coordinate Attention for Efficient Mobile Network Design", CVPR 2021.
- ge: Hu et al., "Gather-Excite: Exploiting Feature Context in CNNs", NeurIPS 2018 (GE-theta-).
- simam: Yang et al., "SimAM: A Simple, Parameter-Free Attention Module", ICML 2021 (simam.py).
- bam: Park et al., "BAM: Bottleneck Attention Module", BMVC 2018 (bam.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

from torch import nn

from ablation.attention.bam import BAM
from ablation.attention.simam import SimAM
from ablation.vocabulary.attention import ZOO_ARGUMENTS, ZOO_ATTENTIONS

# What each timm name is built with besides the study's keywords. ge: GE-theta-minus (gather by
# average pooling, excite by interpolation and a sigmoid), the one form that builds in timm
# 1.0.31: its MLP (use_mlp, timm's default) and its depthwise gather (extra_params) pass device
# and dtype positionally to ConvMlp / create_conv2d and raise a TypeError.
_TIMM_FIXED: dict[str, dict[str, Any]] = {"ge": {"use_mlp": False}}


def build_zoo_attention(
    name: str, channels: int, attention_args: Mapping[str, Any] | None = None
) -> nn.Module:
    """The zoo module `name` for `channels` channels, with `attention_args` as its keywords.

    Raises ValueError for an unknown name, a keyword the module does not take (naming those it
    takes), or arguments its constructor rejects (with its message).
    """
    if name not in ZOO_ATTENTIONS:
        raise ValueError(f"zoo attention must be one of {', '.join(ZOO_ATTENTIONS)}; got {name!r}")
    args = dict(attention_args or {})
    accepted = ZOO_ARGUMENTS[name]
    unknown = sorted(set(args) - set(accepted))
    if unknown:
        raise ValueError(
            f"attention {name!r} takes no argument {', '.join(map(repr, unknown))}; "
            f"it takes {', '.join(accepted)}"
        )
    try:
        return _constructor(name)(channels, **args)
    except (AssertionError, TypeError, ValueError) as error:
        # timm checks its arguments with bare asserts: say which module and arguments failed.
        reason = str(error) or f"{type(error).__name__} in its constructor"
        message = f"attention {name!r} with {args} for {channels} channels: {reason}"
        raise ValueError(message) from error


def _constructor(name: str) -> Callable[..., nn.Module]:
    if name == "simam":
        return SimAM
    if name == "bam":
        return BAM
    if name in ("eca", "ceca"):
        return functools.partial(_eca, name)
    from timm.layers import get_attn  # here: only studies with a timm module pay its import

    return functools.partial(get_attn(name), **_TIMM_FIXED.get(name, {}))


def _eca(name: str, channels: int, **args: Any) -> nn.Module:
    """ECA (or circular ECA) with the paper's adaptive kernel size, or `kernel_size` fixed.

    timm's constructor ignores `kernel_size` whenever it is given the channels (it derives the
    size from them, psi(C) = |(log2 C + beta) / gamma|_odd, at least 3); without them the
    module is the same 1-D convolution at the size asked for.
    """
    from timm.layers import get_attn

    module = get_attn(name)
    if "kernel_size" not in args:
        return module(channels, **args)
    if args.keys() & {"gamma", "beta"}:
        raise ValueError(
            "kernel_size fixes the kernel, gamma and beta choose it from the channels: give one"
        )
    kernel_size = args["kernel_size"]
    odd = isinstance(kernel_size, int) and not isinstance(kernel_size, bool) and kernel_size % 2
    if not odd or kernel_size < 1:
        raise ValueError(f"kernel_size must be an odd integer >= 1; got {kernel_size!r}")
    return module(None, kernel_size=kernel_size)

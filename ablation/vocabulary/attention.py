"""The attention a backbone can carry (the study file's ``model.attention``), and the keyword
arguments (``model.attention_args``) each zoo module takes."""

from __future__ import annotations

# none: the plain backbone; se: Squeeze-and-Excitation (Hu et al., 2018); cbam: CBAM (Woo et
# al., 2018), tuned by ``model.cbam``. They take no ``model.attention_args``.
BUILT_IN_ATTENTIONS: tuple[str, ...] = ("none", "se", "cbam")

# The zoo (ablation/attention/zoo.py, docs/models.md): name -> the installed distribution its
# code comes from (its version is part of what a trial ran), or None for a module written in
# this package (simam.py, bam.py), whose source the code version already hashes.
ZOO_DISTRIBUTIONS: dict[str, str | None] = {
    "eca": "timm",  # ECA-Net (Wang et al., CVPR 2020)
    "ceca": "timm",  # ECA with circular padding (timm's variant of ECA-Net)
    "ese": "timm",  # effective SE (Lee and Park, CenterMask, CVPR 2020)
    "gc": "timm",  # global context block (Cao et al., GCNet, 2019)
    "gca": "timm",  # GCNet's fusion by addition
    "lcbam": "timm",  # timm's light CBAM (Woo et al., 2018; avg and max pools averaged)
    "coord": "timm",  # Coordinate Attention (Hou et al., CVPR 2021)
    "ge": "timm",  # Gather-Excite, parameter-free GE-theta-minus (Hu et al., NeurIPS 2018)
    "simam": None,  # SimAM (Yang et al., ICML 2021)
    "bam": None,  # BAM (Park et al., BMVC 2018)
}
ZOO_ATTENTIONS: tuple[str, ...] = tuple(ZOO_DISTRIBUTIONS)

# Every name `model.attention` accepts (the schema's literal reads it).
ATTENTIONS: tuple[str, ...] = BUILT_IN_ATTENTIONS + ZOO_ATTENTIONS

# The keywords each zoo module takes in `model.attention_args`, named as its constructor names
# them (timm's, or ours). Only knobs a study file can spell (numbers, booleans): layer types
# stay the module's defaults. `ge` lacks timm's `use_mlp` and `extra_params`, whose code paths
# raise a TypeError in timm 1.0.31 (docs/models.md).
ZOO_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "eca": ("kernel_size", "gamma", "beta"),
    "ceca": ("kernel_size", "gamma", "beta"),
    "ese": ("add_maxpool",),
    "gc": (
        "use_attn",
        "fuse_add",
        "fuse_scale",
        "init_last_zero",
        "rd_ratio",
        "rd_channels",
        "rd_divisor",
    ),
    "gca": ("use_attn", "init_last_zero", "rd_ratio", "rd_channels", "rd_divisor"),
    "lcbam": ("rd_ratio", "rd_channels", "rd_divisor", "spatial_kernel_size", "mlp_bias"),
    "coord": ("rd_ratio", "rd_channels", "rd_divisor", "se_factor", "bias", "has_skip"),
    "ge": ("extent", "add_maxpool"),
    "simam": ("e_lambda",),
    "bam": ("reduction", "dilation", "dilated_convs"),
}

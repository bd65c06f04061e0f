"""`ablation profile --backbone B --attention A [k=v ...] [--json]`: params, GFLOPs, latency.

B and A may be a researcher's `MODULE:NAME`, imported with the current folder first on the
import path; k=v words are spelled as in a study file (`model.cbam.kernel_size=3`,
`model.attention_args.k=5`, `model.backbone_args.width=32`), or bare (CBAM's knobs with
`--attention cbam`, the attention's keywords otherwise).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ablation.attention import normalize_cbam_knobs
from ablation.models import build_model
from ablation.profile import FLOPS_RULE, WARMUP, parse_model_words, profile_model
from ablation.vocabulary.attention import BUILT_IN_ATTENTIONS
from ablation.vocabulary.plugins import is_plugin, load_plugin


def main(args: argparse.Namespace) -> int:
    """`ablation profile`: build the model, profile it, print a table or one JSON object."""
    try:
        words = parse_model_words(args.knobs, args.attention)
        if words.attention_args and args.attention in BUILT_IN_ATTENTIONS:
            # As a study file says it (ablation/study/schema.py): attention_args are for zoo
            # and MODULE:NAME attentions; CBAM's own knobs are model.cbam.
            where = "; its knobs are model.cbam.KNOB" if args.attention == "cbam" else ""
            raise ValueError(
                f"attention {args.attention!r} takes no arguments{where}; got "
                f"{', '.join(words.attention_args)}"
            )
        if words.cbam and args.attention != "cbam":
            raise ValueError(f"model.cbam knobs set CBAM; --attention is {args.attention!r}")
        for flag in ("image_size", "batch_size", "repeats"):
            if getattr(args, flag) < 1:
                raise ValueError(f"--{flag.replace('_', '-')} must be >= 1")
        cbam = normalize_cbam_knobs(words.cbam) if args.attention == "cbam" else None
        for ref in (args.backbone, args.attention):
            if is_plugin(ref):  # as a study beside it would: this folder first on the path
                load_plugin(ref, Path.cwd())
        model = build_model(
            args.backbone,
            args.attention,
            cbam,
            num_classes=args.num_classes,
            in_channels=args.in_channels,
            attention_args=words.attention_args,
            backbone_args=words.backbone_args,
        )
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model = model.to(device)
    except (ValueError, RuntimeError, TypeError) as error:  # TypeError: a plugin's keywords
        print(f"ablation profile: error: {_one_line(error)}", file=sys.stderr)
        return 2
    shape = (args.batch_size, args.in_channels, args.image_size, args.image_size)
    result = profile_model(model, shape, repeats=args.repeats)
    record = {
        "backbone": args.backbone,
        "attention": args.attention,
        "cbam": {k: list(v) if isinstance(v, tuple) else v for k, v in cbam.items()}
        if cbam
        else None,
        "attention_args": words.attention_args,
        "backbone_args": words.backbone_args,
        "input_shape": list(shape),
        "device": str(device),
        **result,
        "flops_rule": FLOPS_RULE,
        "latency_rule": f"median of {args.repeats} forward passes after {WARMUP} warm-up, "
        f"whole batch, torch.inference_mode"
        + (f", {torch.get_num_threads()} CPU threads" if device.type == "cpu" else ""),
    }
    if args.json:
        print(json.dumps(record))
        return 0
    knob_text = " ".join(
        f"{k}={','.join(v) if isinstance(v, list) else v}"
        for k, v in {
            **(record["cbam"] or {}),
            **words.attention_args,
            **{f"backbone_args.{k}": v for k, v in words.backbone_args.items()},
        }.items()
    )
    print(
        f"model      {args.backbone} + {args.attention}" + (f" ({knob_text})" if knob_text else "")
    )
    print(f"input      {'x'.join(map(str, shape))} on {device}")
    print(f"params     {result['params']:,} ({result['params'] / 1e6:.2f}M)")
    print(f"GFLOPs     {result['gflops']:.3f}  [{FLOPS_RULE}]")
    print(f"latency    {result['latency_ms']:.2f} ms  [{record['latency_rule']}]")
    return 0


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__

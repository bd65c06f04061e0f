"""`ablation profile --backbone B --attention A [k=v ...] [--json]`: params, GFLOPs, latency."""

from __future__ import annotations

import argparse
import json
import sys

import torch

from ablation.attention import normalize_cbam_knobs
from ablation.models import build_model
from ablation.profile import FLOPS_RULE, WARMUP, parse_knobs, profile_model


def main(args: argparse.Namespace) -> int:
    """`ablation profile`: build the model, profile it, print a table or one JSON object."""
    try:
        knobs = parse_knobs(args.knobs)
        if knobs and args.attention != "cbam":
            raise ValueError(f"k=v knobs set CBAM knobs; --attention is {args.attention!r}")
        for flag in ("image_size", "batch_size", "repeats"):
            if getattr(args, flag) < 1:
                raise ValueError(f"--{flag.replace('_', '-')} must be >= 1")
        cbam = normalize_cbam_knobs(knobs) if args.attention == "cbam" else None
        model = build_model(
            args.backbone,
            args.attention,
            cbam,
            num_classes=args.num_classes,
            in_channels=args.in_channels,
        )
        device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model = model.to(device)
    except (ValueError, RuntimeError) as error:
        print(f"ablation profile: error: {error}", file=sys.stderr)
        return 2
    shape = (args.batch_size, args.in_channels, args.image_size, args.image_size)
    result = profile_model(model, shape, repeats=args.repeats)
    record = {
        "backbone": args.backbone,
        "attention": args.attention,
        "cbam": {k: list(v) if isinstance(v, tuple) else v for k, v in cbam.items()}
        if cbam
        else None,
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
        for k, v in (record["cbam"] or {}).items()
    )
    print(
        f"model      {args.backbone} + {args.attention}" + (f" ({knob_text})" if knob_text else "")
    )
    print(f"input      {'x'.join(map(str, shape))} on {device}")
    print(f"params     {result['params']:,} ({result['params'] / 1e6:.2f}M)")
    print(f"GFLOPs     {result['gflops']:.3f}  [{FLOPS_RULE}]")
    print(f"latency    {result['latency_ms']:.2f} ms  [{record['latency_rule']}]")
    return 0

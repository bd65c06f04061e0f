"""`ablation report STUDY [--format F] [-o FILE] [--figures DIR]`: the ablation summary, and
its figures as PDF and SVG for papers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ablation.commands.summary import find_summary
from ablation.report.export import render


def main(args: argparse.Namespace) -> int:
    found = find_summary(args, "report")
    if isinstance(found, int):
        return found
    _, summary, runs = found
    if args.figures:
        from ablation.report.figures import write_figures  # matplotlib: only when asked

        written = write_figures(summary, runs, args.figures)
        print(f"wrote {len(written)} figure files to {args.figures}", file=sys.stderr)
    data = render(summary, args.format)
    if args.output:
        path = Path(args.output)
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
        print(f"wrote {path}", file=sys.stderr)
    elif isinstance(data, bytes):
        print("ablation report: parquet is binary; give -o FILE", file=sys.stderr)
        return 2
    else:
        sys.stdout.write(data)
    return 0

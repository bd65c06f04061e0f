"""`ablation report STUDY [--format F] [-o FILE]`: print or write the ablation summary."""

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
    _, summary, _ = found
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

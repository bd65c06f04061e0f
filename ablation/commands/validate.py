"""`ablation validate FILE...`: check study files without running anything."""

from __future__ import annotations

import argparse

from ablation.study import validate_files


def main(args: argparse.Namespace) -> int:
    """Exit 0, or 2 with one `FILE:LINE: key.path: message` line per problem (a missing
    `dataset.root` too, unless --no-data-check)."""
    return validate_files(args.files, check_data=not args.no_data_check)

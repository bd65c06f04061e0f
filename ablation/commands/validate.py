"""`ablation validate FILE...`: check study files without running anything."""

from __future__ import annotations

import argparse

from ablation.study import validate_files


def main(args: argparse.Namespace) -> int:
    """Exit 0, or 2 with one `FILE:LINE: key.path: message` line per problem."""
    return validate_files(args.files)

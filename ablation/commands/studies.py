"""`ablation studies`: every study in the store, one line each (also `ablation status` alone)."""

from __future__ import annotations

import argparse

from ablation.run.status import list_studies
from ablation.track import stores
from ablation.track.reader import open_client


def main(args: argparse.Namespace) -> int:
    """Print one line per study (finished / running / failed counts, last activity, best
    variant), the one that moved last first; exit 0."""
    client = open_client(stores.tracking_uri(args.tracking_uri, None))
    studies = list_studies(client)
    if not studies:
        print("no studies in this store")
    for found in studies:
        print(found.listing_line())
    return 0

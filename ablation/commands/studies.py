"""`ablation studies`: every study in the store, one line each (also `ablation status` alone)."""

from __future__ import annotations

import argparse

from ablation.run.status import list_studies
from ablation.track import stores
from ablation.track.reader import NoStore, open_client


def main(args: argparse.Namespace) -> int:
    """Print one line per study (finished / running / failed counts, last activity, best
    variant), the one that moved last first; exit 0 (also when there are none: the line
    then names the store it looked in, which it never creates)."""
    uri = stores.tracking_uri(args.tracking_uri, None)
    try:
        studies = list_studies(open_client(uri))
    except NoStore as err:
        print(f"no studies: {err}")
        return 0
    if not studies:
        print(f"no studies in the store {stores.shown(uri)}")
    for found in studies:
        print(found.listing_line())
    return 0

"""`ablation status [STUDY]`: trials done / running / failed / left, best so far; without
STUDY, what `ablation studies` prints."""

from __future__ import annotations

import argparse
import sys

from ablation.commands import studies
from ablation.run.status import study_status
from ablation.track import stores
from ablation.track.reader import NoStore, open_client


def main(args: argparse.Namespace) -> int:
    """Exit 0, or 2 when the study is not in the store (the message names the store)."""
    if args.study is None:
        return studies.main(args)
    uri = stores.tracking_uri(args.tracking_uri, None)
    try:
        found = study_status(open_client(uri), args.study)
    except NoStore as err:
        print(f"no study {args.study!r}: {err}", file=sys.stderr)
        return 2
    if found is None:
        print(f"no study {args.study!r} in the store {stores.shown(uri)}", file=sys.stderr)
        return 2
    print(found.line())
    return 0

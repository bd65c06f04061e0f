"""`ablation status [STUDY]`: trials done / running / failed / left, best so far."""

from __future__ import annotations

import argparse
import sys

from mlflow.tracking import MlflowClient

from ablation.run.status import list_studies, study_status
from ablation.track import stores


def main(args: argparse.Namespace) -> int:
    """Exit 0, or 2 when the study is not in the store."""
    client = MlflowClient(stores.tracking_uri(args.tracking_uri, None))
    if args.study is None:
        studies = list_studies(client)
        if not studies:
            print("no studies in this store")
        for found in studies:
            print(found.line())
        return 0
    found = study_status(client, args.study)
    if found is None:
        print(f"no study {args.study!r} in this store", file=sys.stderr)
        return 2
    print(found.line())
    return 0

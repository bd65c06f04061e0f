"""Finding a study's summary for the commands that show one (`report`, `dashboard`)."""

from __future__ import annotations

import argparse
import sys

from ablation.report import StudyNotFound, StudyRuns, Summary, study_summary
from ablation.track import stores


def find_summary(args: argparse.Namespace, command: str) -> tuple[str, Summary, StudyRuns] | int:
    """(tracking URI, summary, runs) of `args.study`, or the exit code after saying why not:
    2 no such study, 1 no trial runs yet."""
    uri = stores.tracking_uri(args.tracking_uri, None)
    try:
        summary, runs = study_summary(uri, args.study)
    except StudyNotFound as err:
        print(f"ablation {command}: {err} ({uri})", file=sys.stderr)
        return 2
    if summary.values.empty:
        print(f"ablation {command}: study {args.study!r} has no trial runs yet", file=sys.stderr)
        return 1
    return uri, summary, runs

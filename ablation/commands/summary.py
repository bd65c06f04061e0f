"""Finding a study's summary for the commands that show one (`report`, `dashboard`)."""

from __future__ import annotations

import argparse
import sys

from ablation.report import StudyNotFound, StudyRuns, Summary, study_summary
from ablation.track import stores
from ablation.track.reader import NoStore


def find_summary(args: argparse.Namespace, command: str) -> tuple[str, Summary, StudyRuns] | int:
    """(tracking URI, summary, runs) of `args.study`, or the exit code after saying why not:
    2 no such study, 1 no trial runs yet."""
    uri = stores.tracking_uri(args.tracking_uri, None)
    try:
        summary, runs = study_summary(uri, args.study)
    except (StudyNotFound, NoStore) as err:
        print(f"ablation {command}: {err}", file=sys.stderr)
        return 2
    if summary.values.empty:
        aside = f" ({runs.set_aside} set aside, of an earlier definition)" if runs.set_aside else ""
        print(
            f"ablation {command}: study {args.study!r} has no finished trials of its current "
            f"definition yet{aside} in the store {stores.shown(uri)}",
            file=sys.stderr,
        )
        return 1
    return uri, summary, runs

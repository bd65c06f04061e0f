"""`ablation dashboard STUDY [-o DIR] [--no-log]`: write DIR/dashboard.html and log it on the
study's parent run (with --no-log, only the file: nothing is written to the store)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ablation.commands.summary import find_summary
from ablation.dashboard import DASHBOARD_FILE, log_dashboard, render_dashboard


def main(args: argparse.Namespace) -> int:
    found = find_summary(args, "dashboard")
    if isinstance(found, int):
        return found
    uri, summary, runs = found
    page = render_dashboard(summary, runs)
    path = Path(args.output_dir or ".") / DASHBOARD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    if args.no_log:
        print(f"wrote {path} (not logged: --no-log)")
        return 0
    log_dashboard(uri, runs.parent.run_id, page)
    print(f"wrote {path}; logged as {DASHBOARD_FILE} on run {runs.parent.run_id}")
    return 0

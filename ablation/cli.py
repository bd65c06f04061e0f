"""The `ablation` command line: argument parsing only; `ablation.commands.<name>.main` runs it.

Exit codes: 0 done, 1 a trial or run failed, 2 the user's input is wrong.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# What --tracking-uri means to each command: which store it writes or reads, and where the
# store comes from when the flag is not given (ablation.track.stores.tracking_uri).
_DEFAULT = "default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db"
_FROM_FILE = (
    "default: the study file's tracking.uri, else MLFLOW_TRACKING_URI, else sqlite:///mlflow.db"
)
SUBMITS = (
    f"the MLflow store the job writes to ({_FROM_FILE}; a relative SQLite path is made "
    "absolute, and the Ray head must reach it)"
)
READS = f"the MLflow store to read the study from, read only ({_DEFAULT})"
READS_ALL = f"the MLflow store to list the studies of, read only ({_DEFAULT})"
LOGS_PAGE = (
    f"the MLflow store to read the study from and, unless --no-log, to log the page on its "
    f"parent run ({_DEFAULT})"
)
SHOWS = f"the MLflow store the UI shows ({_DEFAULT})"
PLANS = (
    "the MLflow store the study's runs are written to; with --dry-run only read, for the "
    f"power plan's finished trials ({_FROM_FILE})"
)
UNUSED = "accepted so every command takes it; validate reads no store"


def _add_tracking(parser: argparse.ArgumentParser, meaning: str) -> None:
    parser.add_argument("--tracking-uri", default=None, metavar="URI", help=meaning)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ablation",
        description="The CBAM ablation service: run ablation studies of attention modules.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check study files; exit 2 with FILE:LINE: key: message")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument(
        "--no-data-check",
        action="store_true",
        help="skip checking that dataset.root exists here (a file for another machine)",
    )
    _add_tracking(p, UNUSED)

    p = sub.add_parser("run", help="run (or continue) a study")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--address", default=None, help="join a Ray cluster (auto, ray://HOST:10001)")
    p.add_argument("--max-concurrent", type=int, default=None, help="trials at once")
    p.add_argument(
        "--optuna-storage", default=None, help="Optuna storage URL (e.g. postgresql://...)"
    )
    p.add_argument("--dry-run", action="store_true", help="print the trial table; start nothing")
    _add_tracking(p, PLANS)

    p = sub.add_parser("submit", help="submit a study to a Ray cluster as a Ray job")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--address", required=True, help="Ray Jobs API address, http://HEAD:8265")
    p.add_argument("--optuna-storage", default=None, help="Optuna storage URL for the job")
    p.add_argument("--no-wait", action="store_true", help="return after submitting")
    _add_tracking(p, SUBMITS)

    p = sub.add_parser("status", help="trials done / running / failed / left, best so far")
    p.add_argument("study", nargs="?", default=None, metavar="STUDY")
    _add_tracking(p, READS)

    p = sub.add_parser(
        "studies", help="every study in the store: counts, last activity, best variant"
    )
    _add_tracking(p, READS_ALL)

    p = sub.add_parser("report", help="the ablation summary of a study")
    p.add_argument("study", metavar="STUDY")
    p.add_argument(
        "--format", default="md", choices=("md", "csv", "latex", "html", "json", "parquet")
    )
    p.add_argument("-o", "--output", default=None, metavar="FILE")
    p.add_argument(
        "--figures",
        default=None,
        metavar="DIR",
        help="also write every figure as DIR/<name>.pdf and .svg (for papers)",
    )
    _add_tracking(p, READS)

    p = sub.add_parser(
        "dashboard",
        help="a self-contained HTML dashboard of a study, also logged on its parent run",
    )
    p.add_argument("study", metavar="STUDY")
    p.add_argument("-o", "--output-dir", default=".", metavar="DIR")
    p.add_argument(
        "--no-log",
        action="store_true",
        help="only write DIR/dashboard.html; log nothing on the study's run (the store is "
        "only read)",
    )
    _add_tracking(p, LOGS_PAGE)

    p = sub.add_parser("profile", help="params, GFLOPs and latency of a backbone + attention")
    p.add_argument("--backbone", required=True)
    p.add_argument("--attention", default="cbam")
    p.add_argument("--image-size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--in-channels", type=int, default=3)
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--repeats", type=int, default=10, help="timed forward passes (median)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if present)")
    p.add_argument(
        "knobs", nargs="*", metavar="k=v", help="CBAM knobs, e.g. reduction=8 order=parallel"
    )

    p = sub.add_parser("ui", help="the MLflow UI on the configured store")
    p.add_argument("--port", type=int, default=5000)
    p.add_argument("--host", default="127.0.0.1")
    _add_tracking(p, SHOWS)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Each command's module is imported only when it runs: `validate` and `status` need
    # neither torch nor Ray, and importing them costs seconds.
    command = importlib.import_module(f"ablation.commands.{args.command}")
    return command.main(args)


if __name__ == "__main__":
    sys.exit(main())

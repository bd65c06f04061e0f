"""Wall time of the light commands (`status`, `report`, `validate`) on a study store.

    python benchmarks/cli_latency.py [--tracking-uri sqlite:///mlflow.db] [--study quickstart]

Each command runs as a fresh process (what a researcher's terminal pays), five times; prints the
median. Target: `status` and `report` under 2.5 s on an idle 2-core machine (issue 14).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def wall(argv: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "ablation.cli", *argv], capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tracking-uri", default=f"sqlite:///{ROOT / 'mlflow.db'}")
    parser.add_argument("--study", default="quickstart")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    uri = ["--tracking-uri", args.tracking_uri]
    for name, argv in (
        ("validate", ["validate", str(ROOT / "experiments" / "quickstart.yaml")]),
        ("status", ["status", args.study, *uri]),
        ("studies", ["status", *uri]),
        ("report", ["report", args.study, *uri]),
    ):
        print(f"{name:9s} {wall(argv, args.repeats):.2f} s (median of {args.repeats})", flush=True)


if __name__ == "__main__":
    main()

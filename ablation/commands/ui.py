"""`ablation ui`: the MLflow UI on the configured store."""

from __future__ import annotations

import argparse
import os
import sys

from ablation.track import stores


def main(args: argparse.Namespace) -> int:
    uri = stores.tracking_uri(args.tracking_uri, None)
    # This interpreter's mlflow: the venv's, whether or not the venv is activated.
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    cmd += ["--host", args.host, "--port", str(args.port)]
    print(" ".join(cmd[1:]), flush=True)
    os.execv(cmd[0], cmd)
    return 0  # not reached

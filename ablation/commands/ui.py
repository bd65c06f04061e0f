"""`ablation ui`: the MLflow UI on the configured store, opening on each study's runs."""

from __future__ import annotations

import argparse
import os
import sys

from mlflow.tracking import MlflowClient

from ablation.track import stores
from ablation.track.landing import prepare_landing, study_names


def ui_url(host: str, port: int) -> str:
    """The address a browser on this machine opens (a wildcard bind is reached on loopback)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{shown}:{port}"


def main(args: argparse.Namespace) -> int:
    uri = stores.tracking_uri(args.tracking_uri, None)
    url = ui_url(args.host, args.port)
    client = MlflowClient(uri)
    links = [prepare_landing(client, name, url) for name in study_names(client)]
    print(f"MLflow UI on {uri}: {url}")
    for found in links:
        if found is not None:
            print("\n".join(found.lines()))
    # This interpreter's mlflow: the venv's, whether or not the venv is activated.
    cmd = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri]
    cmd += ["--host", args.host, "--port", str(args.port)]
    print(" ".join(cmd[1:]), flush=True)
    os.execv(cmd[0], cmd)
    return 0  # not reached

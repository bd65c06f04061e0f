"""`ablation ui`: the MLflow UI on the configured store, opening on each study's runs."""

from __future__ import annotations

import argparse
import os
import sys

from ablation.track import stores
from ablation.track.landing import study_links, study_names
from ablation.track.reader import NoStore, open_client


def ui_url(host: str, port: int) -> str:
    """The address a browser on this machine opens (a wildcard bind is reached on loopback)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{shown}:{port}"


def main(args: argparse.Namespace) -> int:
    uri = stores.tracking_uri(args.tracking_uri, None)
    url = ui_url(args.host, args.port)
    try:  # read only: the store is `ablation run`'s to create and to tag (prepare_landing)
        client = open_client(uri)
    except NoStore as err:
        print(f"ablation ui: {err}", file=sys.stderr)
        return 2
    links = [study_links(client, name, url) for name in study_names(client)]
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

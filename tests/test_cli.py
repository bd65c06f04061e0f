"""The command line as a user meets it: `ablation ui` from a venv that is not activated."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from helpers import free_port


def test_ui_serves_the_store_without_the_venv_on_path(tmp_path, fresh_mlflow_uri):
    port = free_port()
    ablation = Path(sys.executable).parent / "ablation"
    env = {**os.environ, "PATH": "/usr/bin:/bin"}  # no venv: `mlflow` alone would not be found
    proc = subprocess.Popen(
        [str(ablation), "ui", "--port", str(port), "--tracking-uri", fresh_mlflow_uri],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, "mlflow ui did not answer in 120 s"
                time.sleep(1)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()

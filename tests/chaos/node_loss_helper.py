"""Run inside a network namespace whose only interface is `lo` (tests/chaos/test_node_loss.py).

    unshare --net python node_loss_helper.py FOLDER STUDY_FILE

Starts a Ray head (1 CPU) and a worker node (2 CPUs), each with its own temp dir and ports,
runs the study against the head, SIGKILLs every process of the worker node once two trials run,
and exits with the driver's exit code. The MLflow store is FOLDER/mlflow.db.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from chaos_helpers import BIN, free_port, trial_runs


def _ray_start(temp: str, env: dict, *args: str) -> None:
    ports = [
        "--node-manager-port", "--object-manager-port", "--metrics-export-port",
        "--runtime-env-agent-port", "--dashboard-agent-grpc-port",
        "--dashboard-agent-listen-port",
    ]  # fmt: skip
    subprocess.run(
        [str(BIN / "ray"), "start", "--node-ip-address", "127.0.0.1", "--temp-dir", temp,
         "--disable-usage-stats", *args, *[x for p in ports for x in (p, str(free_port()))]],
        env=env, check=True, timeout=240, capture_output=True,
    )  # fmt: skip


def _processes_naming(marker: str) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        if marker in " ".join(proc.info["cmdline"] or []):
            found.append(proc)
            found.extend(proc.children(recursive=True))
    return found


def main(folder: Path, study_file: str) -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    head_tmp = tempfile.mkdtemp(prefix="rayhd", dir="/tmp")
    worker_tmp = tempfile.mkdtemp(prefix="raywk", dir="/tmp")
    gcs = free_port()
    _ray_start(
        head_tmp,
        env,
        "--head",
        "--port",
        str(gcs),
        "--num-cpus",
        "1",
        "--include-dashboard",
        "false",
        "--ray-client-server-port",
        str(free_port()),
    )
    _ray_start(worker_tmp, env, "--address", f"127.0.0.1:{gcs}", "--num-cpus", "2")
    uri = f"sqlite:///{folder}/mlflow.db"
    driver = subprocess.Popen(
        [str(BIN / "ablation"), "run", study_file, "--tracking-uri", uri,
         "--address", f"127.0.0.1:{gcs}"],
        env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and driver.poll() is None:
        running = [r for r in trial_runs(uri, "lost") if r.info.status == "RUNNING"]
        if len(running) >= 2:
            break
        time.sleep(0.3)
    killed = _processes_naming(worker_tmp)
    for proc in killed:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL)
    print(f"killed {len(killed)} processes of the worker node", flush=True)
    code = driver.wait(timeout=400)
    for proc in _processes_naming(head_tmp) + _processes_naming(worker_tmp):
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGKILL)
    return code


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2]))

"""Run inside a network namespace whose only interface is `lo` (tests/chaos/test_node_loss.py).

    unshare --net python node_loss_helper.py FOLDER STUDY_FILE

Starts a Ray head (1 CPU) and a worker node (2 CPUs), each with its own temp dir and ports,
runs the study against the head, SIGKILLs every process of the worker node once two trials run,
and exits with the driver's exit code. The MLflow store is FOLDER/mlflow.db.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script: tests/ (the shared helpers) is not on sys.path by itself.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import BIN, end_processes, free_port, processes_marked, ray_start, trial_runs  # noqa: E402


def main(folder: Path, study_file: str) -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    env = {**os.environ, "RAY_AUTH_MODE": "token"}
    head_tmp = tempfile.mkdtemp(prefix="rayhd", dir="/tmp")
    worker_tmp = tempfile.mkdtemp(prefix="raywk", dir="/tmp")
    gcs = free_port()
    ray_start(
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
    ray_start(worker_tmp, env, "--address", f"127.0.0.1:{gcs}", "--num-cpus", "2")
    uri = f"sqlite:///{folder}/mlflow.db"
    driver = subprocess.Popen(
        [
            str(BIN / "ablation"),
            "run",
            study_file,
            "--tracking-uri",
            uri,
            "--address",
            f"127.0.0.1:{gcs}",
        ],
        env=env,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and driver.poll() is None:
        running = [r for r in trial_runs(uri, "lost") if r.info.status == "RUNNING"]
        if len(running) >= 2:
            break
        time.sleep(0.3)
    killed = processes_marked(worker_tmp)
    end_processes(killed, grace=0)
    print(f"killed {len(killed)} processes of the worker node", flush=True)
    code = driver.wait(timeout=400)
    end_processes(processes_marked(head_tmp) + processes_marked(worker_tmp), grace=0)
    return code


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2]))

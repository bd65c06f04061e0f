"""Run inside a network namespace of its own (tests/deploy/test_slurm_sbatch.py):

    unshare --net python slurm_job_helper.py FOLDER STUDY_FILE

Makes two stand-in Slurm nodes: node1 is this namespace, node2 a second one, joined by a veth
pair (10.77.0.1 and 10.77.0.2; loopback is up in each but Ray is never told about it). Then
runs deploy/slurm/ablation.sbatch twice as Slurm would run a batch script on node1, with
Slurm's variables set and the `srun`/`scontrol` stand-ins of tests/deploy/slurm_standin on PATH:

1. job 1001: SIGTERM to the batch script (what `--signal=B:TERM` sends) once a trial has
   finished and another runs; it must end, leaving no Ray process of the job behind;
2. job 1002, the resubmission: it must finish the study.

Prints one line per fact the test checks and exits 0 when both jobs did what they should.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from helpers import end_processes, processes_marked, trial_runs  # noqa: E402

from ablation.track import names  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
SBATCH = ROOT / "deploy" / "slurm" / "ablation.sbatch"
STANDIN = Path(__file__).with_name("slurm_standin")
NODES = {"node1": "10.77.0.1", "node2": "10.77.0.2"}


def make_nodes(folder: Path) -> tuple[Path, subprocess.Popen[bytes]]:
    """node1 (this namespace) and node2 (a `sleep` holding a new namespace), linked by veth."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    node2 = subprocess.Popen(["unshare", "--net", "sleep", "900"])
    own = os.readlink("/proc/self/ns/net")
    while os.readlink(f"/proc/{node2.pid}/ns/net") == own:
        time.sleep(0.05)
    in_node2 = ["nsenter", "--target", str(node2.pid), "--net"]
    for cmd in (
        ["ip", "link", "add", "slurm0", "type", "veth", "peer", "name", "slurm1"],
        ["ip", "link", "set", "slurm1", "netns", str(node2.pid)],
        ["ip", "addr", "add", f"{NODES['node1']}/24", "dev", "slurm0"],
        ["ip", "link", "set", "slurm0", "up"],
        [*in_node2, "ip", "addr", "add", f"{NODES['node2']}/24", "dev", "slurm1"],
        [*in_node2, "ip", "link", "set", "slurm1", "up"],
        [*in_node2, "ip", "link", "set", "lo", "up"],
    ):
        subprocess.run(cmd, check=True)
    table = folder / "slurm-nodes"
    table.write_text(f"node1 {os.getpid()} {NODES['node1']}\nnode2 {node2.pid} {NODES['node2']}\n")
    return table, node2


# The nodes' Ray files, a short path (Ray's socket paths must stay under 108 bytes), removed
# at the end.
RAY_TMP = tempfile.mkdtemp(prefix="slurm", dir="/tmp")


def slurm_env(job_id: int, folder: Path, table: Path) -> dict[str, str]:
    """The variables Slurm sets for a batch script of a 2-node job with one 1-CPU task per
    node (no GPU) whose batch host is node1, plus the stand-ins on PATH."""
    return {
        **os.environ,
        "PATH": f"{STANDIN}{os.pathsep}{os.environ['PATH']}",
        "STANDIN_SLURM_NODES": str(table),
        "SLURM_JOB_ID": str(job_id),
        "SLURM_JOBID": str(job_id),
        "SLURM_JOB_NAME": "ablation",
        "SLURM_JOB_NODELIST": "node[1-2]",
        "SLURM_NODELIST": "node[1-2]",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_NNODES": "2",
        "SLURM_NTASKS": "2",
        "SLURM_TASKS_PER_NODE": "1(x2)",
        "SLURM_JOB_CPUS_PER_NODE": "1(x2)",
        "SLURM_CPUS_ON_NODE": "1",
        "SLURM_CPUS_PER_TASK": "1",
        "SLURM_NODEID": "0",
        "SLURMD_NODENAME": "node1",
        "SLURM_SUBMIT_DIR": str(folder),
        "SLURM_SUBMIT_HOST": "login1",
        "SLURM_CLUSTER_NAME": "standin",
        # Nobody looks at it here; it costs seconds of a loaded machine's CPU at each start.
        "ABLATION_RAY_HEAD_OPTIONS": "--include-dashboard=false",
        "ABLATION_RAY_TMPDIR": RAY_TMP,
    }


def job(job_id: int, folder: Path, table: Path, study: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["bash", str(SBATCH), study],
        env=slurm_env(job_id, folder, table),
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def node_processes(job_id: int) -> list:
    return [p for n in NODES for p in processes_marked(f"{RAY_TMP}/ray-{job_id}-{n}")]


def trial_actors_on(job_id: int, node: str) -> int:
    """Trial actors among node's Ray processes (a worker's title while it runs a trial)."""
    found = 0
    for proc in processes_marked(f"{RAY_TMP}/ray-{job_id}-{node}"):
        try:
            title = " ".join(proc.cmdline())
        except Exception:  # ended meanwhile
            continue
        found += title.startswith("ray::") and "IDLE" not in title
    return found


def main(folder: Path, study_file: str) -> int:
    table, node2 = make_nodes(folder)
    uri = f"sqlite:///{folder}/ablation-store/mlflow.db"
    study = Path(study_file).stem
    ok = True
    try:
        t0 = time.monotonic()
        first = job(1001, folder, table, study_file)
        deadline = time.monotonic() + 240
        seen_on = set()
        while time.monotonic() < deadline and first.poll() is None:
            seen_on |= {n for n in NODES if trial_actors_on(1001, n)}
            status = [r.info.status for r in trial_runs(uri, study)]
            if "FINISHED" in status and "RUNNING" in status and len(seen_on) == 2:
                break
            time.sleep(0.5)
        print(f"job 1001 ran trials on: {' '.join(sorted(seen_on))}", flush=True)
        print(f"job 1001 SIGTERM after {time.monotonic() - t0:.0f}s", flush=True)
        token = Path(os.environ["HOME"], ".ablation", "ray-token-1001")
        print(f"job 1001 token file mode {oct(token.stat().st_mode & 0o777)}", flush=True)
        first.send_signal(signal.SIGTERM)
        out, _ = first.communicate(timeout=180)
        print(out, flush=True)
        print(f"job 1001 exit {first.returncode} after {time.monotonic() - t0:.0f}s", flush=True)
        time.sleep(3)
        left = node_processes(1001)
        print(f"job 1001 left {len(left)} Ray processes", flush=True)
        print(f"job 1001 left its token file: {token.exists()}", flush=True)
        runs = trial_runs(uri, study)
        done = [r for r in runs if r.data.tags.get(names.STATUS) == names.STATUS_FINISHED]
        print(f"job 1001 finished {len(done)} trials", flush=True)

        t0 = time.monotonic()
        second = job(1002, folder, table, study_file)
        out, _ = second.communicate(timeout=300)
        print(out, flush=True)
        print(f"job 1002 exit {second.returncode} after {time.monotonic() - t0:.0f}s", flush=True)
        ok = first.returncode == 1 and second.returncode == 0 and not left
    finally:
        end_processes(node_processes(1001) + node_processes(1002), grace=0)
        node2.kill()
        shutil.rmtree(RAY_TMP, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), sys.argv[2]))

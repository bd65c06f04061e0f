"""Two full drivers on one study, started together, N times (default 20).

    .venv/bin/python benchmarks/lease_race.py [N]

Each round starts `ablation run` twice at once on a fresh store with a 1-trial study; prints
per round the exit codes and the count of FINISHED child runs. Wanted: exit codes {0, 2},
the refusal naming the lease holder, exactly 1 FINISHED run, every round.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

STUDY = {
    "study": "race",
    "dataset": {"name": "digits", "image_size": 16, "train_samples": 100, "val_samples": 50},
    "model": {"backbone": "resnet20", "attention": "cbam"},
    "train": {"epochs": 1, "batch_size": 50, "optimizer": {"name": "sgd", "lr": 0.05}},
    "seeds": [0],
    "resources": {"cpus_per_trial": 1, "max_concurrent": 1, "max_retries": 0},
}


def one_round(folder: Path) -> tuple[list[int], int, bool]:
    path = folder / "race.yaml"
    path.write_text(yaml.safe_dump(STUDY, sort_keys=False))
    uri = f"sqlite:///{folder}/mlflow.db"
    cmd = [str(Path(sys.executable).with_name("ablation")), "run", str(path), "--tracking-uri", uri]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    codes = [p.returncode for p in procs]
    refused = any("is being run by another driver" in o for o in outs)
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("race")
    runs = client.search_runs([exp.experiment_id]) if exp else []
    finished = [r for r in runs if r.data.tags.get("ablation.status") == "FINISHED"]
    return codes, len(finished), refused


def main(rounds: int) -> int:
    bad = 0
    for i in range(rounds):
        with tempfile.TemporaryDirectory() as folder:
            codes, finished, refused = one_round(Path(folder))
        ok = sorted(codes) == [0, 2] and finished == 1 and refused
        bad += not ok
        print(
            f"round {i + 1}: exit codes {codes}, FINISHED runs {finished}, "
            f"refused {refused}: {'ok' if ok else 'WRONG'}",
            flush=True,
        )
    print(f"{rounds - bad} of {rounds} rounds as wanted")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20))

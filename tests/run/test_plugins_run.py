"""Each plugin kind end to end on the embedded default: `ablation run` from a working directory
other than the study's folder trains a study whose data set, backbone and attention are the
researcher's own (experiments/plugin-example, trimmed), on a real in-process Ray and SQLite
MLflow store; the parent run keeps the plugin sources; `report` does not import them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import yaml
from helpers import trial_runs
from mlflow.tracking import MlflowClient

from ablation.track import names

EXAMPLE = Path(__file__).resolve().parents[2] / "experiments" / "plugin-example"


def trimmed_example(folder: Path, study: str) -> Path:
    """The example's modules and a one-seed, one-epoch study of them in `folder`."""
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("__pycache__"))
    path = folder / "study.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(
        study=study,
        seeds=[0],
        factors={"model.attention": ["none", "my_gates:PooledGate"]},
        variants=[],
        resources={"cpus_per_trial": 1, "max_concurrent": 2, "max_retries": 0},
    )
    data["dataset"]["args"].update(train_samples=128, val_samples=64)
    data["train"]["epochs"] = 1
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_own_data_backbone_and_attention_train_from_another_folder(tmp_path, ablation_processes):
    path = trimmed_example(tmp_path / "lab", "own-everything")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = ablation_processes("run", str(path), "--tracking-uri", uri, env=env, cwd=elsewhere)
    out, _ = proc.communicate(timeout=540)
    assert proc.returncode == 0, out
    runs = trial_runs(uri, "own-everything")
    assert len(runs) == 2
    assert all(r.data.tags[names.STATUS] == names.STATUS_FINISHED for r in runs), out
    assert {r.data.params["model.attention"] for r in runs} == {"none", "my_gates:PooledGate"}
    assert {r.data.params["model.backbone"] for r in runs} == {"tiny_nets:tiny_net"}
    assert {r.data.params["dataset.name"] for r in runs} == {"my_data:stripes"}

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("own-everything")
    (parent,) = client.search_runs(
        [experiment.experiment_id], f"tags.`{names.ROLE}` = '{names.ROLE_STUDY}'"
    )
    digest = parent.data.tags[names.PLUGINS_DIGEST]
    kept_in = f"{names.PLUGINS_ARTIFACT_DIR}/{digest}/{names.STUDY_ARTIFACT_DIR}"
    kept = {a.path.rsplit("/", 1)[-1] for a in client.list_artifacts(parent.info.run_id, kept_in)}
    assert {"my_gates.py", "tiny_nets.py", "my_data.py"} <= kept
    local = client.download_artifacts(parent.info.run_id, names.PLUGINS_ARTIFACT, str(tmp_path))
    recorded = yaml.safe_load(Path(local).read_text())
    assert recorded["my_gates:PooledGate"]["kind"] == "folder"

    # `report` reads the store only: it runs with the plugin folder gone.
    shutil.rmtree(tmp_path / "lab")
    report = ablation_processes("report", "own-everything", "--tracking-uri", uri, env=env)
    text, _ = report.communicate(timeout=300)
    assert report.returncode == 0, text
    assert "my_gates:PooledGate" in text

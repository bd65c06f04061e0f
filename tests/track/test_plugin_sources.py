"""The parent run keeps every version of a study's plugin sources under `plugins/<digest>/`
(ablation/track/writer.py): a rerun after an edit adds one and keeps the earlier code, on a
real SQLite MLflow store."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from mlflow.tracking import MlflowClient

from ablation.run.plan import study_plan
from ablation.study import load_study
from ablation.track import names
from ablation.track.writer import StudyWriter

GATE = """
from torch import nn


class Gate(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, x):
        return x * self.conv(x).sigmoid()
"""


def test_an_edited_plugin_keeps_its_earlier_sources(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))  # the study folder is put first
    gates = tmp_path / "gates_kept.py"
    gates.write_text(GATE)
    path = tmp_path / "kept.yaml"
    study = {
        "study": "kept",
        "dataset": {"name": "digits", "image_size": 8},
        "model": {"backbone": "resnet20", "attention": "gates_kept:Gate"},
        "train": {"epochs": 1},
    }
    path.write_text(yaml.safe_dump(study))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)

    def open_and_list() -> tuple[str, set[str]]:
        loaded = load_study(path)
        writer = StudyWriter(uri)
        run_id, _ = writer.open_study(loaded, study_plan(loaded))
        digest = client.get_run(run_id).data.tags[names.PLUGINS_DIGEST]
        kept = client.list_artifacts(run_id, names.PLUGINS_ARTIFACT_DIR)
        return digest, {a.path for a in kept}

    first, kept = open_and_list()
    assert kept == {f"plugins/{first}"}
    gates.write_text(GATE.replace("channels, 1)", "channels, 3, padding=1)"))
    second, kept = open_and_list()
    assert second != first and kept == {f"plugins/{first}", f"plugins/{second}"}
    (parent,) = client.search_runs([client.get_experiment_by_name("kept").experiment_id])
    for digest, text in ((first, "channels, 1)"), (second, "channels, 3, padding=1)")):
        local = client.download_artifacts(
            parent.info.run_id, f"plugins/{digest}/study/gates_kept.py", str(tmp_path / digest)
        )
        assert text in Path(local).read_text()
    again, _ = open_and_list()  # unchanged sources: the same digest, nothing added
    assert again == second

"""The light commands' SQLite reader answers as MLflow's client does, on a real store."""

from __future__ import annotations

import math
import sqlite3

import pytest
from mlflow.tracking import MlflowClient

from ablation.run.status import list_studies, study_status
from ablation.track import names
from ablation.track.reader import SqliteReader, UnsupportedStore, open_client, sqlite_path
from ablation.track.search import search_runs

VARIANTS = [
    {"name": "none", "effect": 0.0},
    {"name": "cbam", "effect": -1.0, "levels": {"model.attention": "cbam"}},
]


@pytest.fixture
def store(fresh_mlflow_uri, synthetic_study_frames, log_synthetic_study):
    trials, history = synthetic_study_frames(VARIANTS, [0, 1, 2], statuses={("cbam", 2): "FAILED"})
    parent = log_synthetic_study(fresh_mlflow_uri, "reader-study", trials, history, baseline="none")
    return fresh_mlflow_uri, parent


def _plain(run) -> tuple:
    i, d = run.info, run.data
    metrics = {k: (None if math.isnan(v) else v) for k, v in d.metrics.items()}
    return (
        i.run_id,
        i.run_name,
        i.status,
        i.start_time,
        i.end_time,
        str(i.experiment_id),
        d.tags,
        d.params,
        metrics,
    )


def test_runs_tags_params_metrics_and_histories_match_mlflow(store):
    uri, parent = store
    reader, client = open_client(uri), MlflowClient(uri)
    assert isinstance(reader, SqliteReader)
    exp = reader.get_experiment_by_name("reader-study")
    assert exp.experiment_id == client.get_experiment_by_name("reader-study").experiment_id
    assert reader.get_experiment_by_name("no-such-study") is None
    assert sorted(e.name for e in reader.search_experiments()) == sorted(
        e.name for e in client.search_experiments()
    )

    children = f"tags.`{names.PARENT_RUN_ID}` = '{parent}'"
    ours = list(search_runs(reader, [exp.experiment_id], children))
    theirs = list(search_runs(client, [exp.experiment_id], children))
    assert len(ours) == 6
    key = lambda r: r.info.run_id  # noqa: E731
    assert [_plain(r) for r in sorted(ours, key=key)] == [
        _plain(r) for r in sorted(theirs, key=key)
    ]
    run_id = ours[0].info.run_id
    for metric in names.EPOCH_METRICS:
        want = [(m.step, m.value) for m in client.get_metric_history(run_id, metric)]
        assert [(m.step, m.value) for m in reader.get_metric_history(run_id, metric)] == want


def test_status_lines_are_the_same_through_either_client(store):
    uri, _ = store
    reader, client = open_client(uri), MlflowClient(uri)
    assert (
        study_status(reader, "reader-study").line() == study_status(client, "reader-study").line()
    )
    now = 1e12
    assert [s.listing_line(now) for s in list_studies(reader)] == [
        s.listing_line(now) for s in list_studies(client)
    ]


def test_other_stores_and_unknown_files_get_mlflows_client(tmp_path, store):
    assert sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("http://127.0.0.1:5000") is None
    assert isinstance(open_client("http://127.0.0.1:9"), MlflowClient)
    odd = tmp_path / "odd.db"
    sqlite3.connect(odd).execute("CREATE TABLE runs (x)").connection.commit()
    with pytest.raises(UnsupportedStore, match="lacks"):
        SqliteReader(odd)  # open_client then leaves the file to MLflow's own checks
    with pytest.raises(UnsupportedStore):
        open_client(store[0]).search_runs(["1"], "metrics.val_loss < 1")


def test_an_odd_file_name_and_another_workspace(store, tmp_path, monkeypatch):
    import shutil

    odd = tmp_path / "a dir#1" / "ml flow%.db"
    odd.parent.mkdir()
    shutil.copyfile(sqlite_path(store[0]), odd)
    reader = open_client(f"sqlite:///{odd}")
    assert isinstance(reader, SqliteReader)
    assert reader.get_experiment_by_name("reader-study") is not None
    monkeypatch.setenv("MLFLOW_WORKSPACE", "team-b")  # not the default: MLflow's client decides
    with pytest.raises(UnsupportedStore, match="workspace"):
        SqliteReader(odd)

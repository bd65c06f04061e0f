"""The production path: an `mlflow server` on PostgreSQL and the Optuna study on PostgreSQL.

Needs the PostgreSQL at 127.0.0.1:5432 (trust auth, database `test`); each test gets fresh
databases, dropped afterwards.
"""

from __future__ import annotations

import uuid

import optuna
import psycopg2
import pytest
from helpers import write_study
from mlflow.tracking import MlflowClient

from ablation.run.driver import run_study
from ablation.study import load_study
from ablation.track import names

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}


def _admin(sql: str) -> None:
    conn = psycopg2.connect(dbname="test", **PG)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


@pytest.fixture
def databases():
    """Two fresh databases (MLflow, Optuna) as SQLAlchemy URLs; dropped afterwards."""
    try:
        _admin("select 1")
    except psycopg2.OperationalError as err:
        pytest.skip(f"no PostgreSQL at 127.0.0.1:5432: {err}")
    made = [f"abl_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("mlflow", "optuna")]
    for name in made:
        _admin(f'create database "{name}"')
    try:
        # psycopg2 is the driver installed here (SQLAlchemy 2.1 defaults to psycopg 3).
        yield [f"postgresql+psycopg2://{PG['user']}@{PG['host']}:{PG['port']}/{n}" for n in made]
    finally:
        for name in made:
            _admin(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def mlflow_server(databases, start_mlflow_server):
    """(URL of a real `mlflow server` on the fresh MLflow database, the Optuna database URL)."""
    return start_mlflow_server(databases[0]), databases[1]


def test_tiny_study_on_mlflow_server_and_optuna_on_postgresql(mlflow_server, tmp_path):
    url, optuna_url = mlflow_server
    path = write_study(
        tmp_path,
        "on-postgres",
        train={"epochs": 1, "batch_size": 64, "optimizer": {"name": "sgd", "lr": 0.05}},
    )
    result = run_study(load_study(path), tracking_uri=url, optuna_storage=optuna_url)
    assert result.exit_code == 0
    assert result.count(names.STATUS_FINISHED) == 4

    client = MlflowClient(url)
    exp = client.get_experiment_by_name("on-postgres")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags[names.ROLE] == names.ROLE_STUDY]
    children = [r for r in runs if r.data.tags[names.ROLE] == names.ROLE_TRIAL]
    assert len(parents) == 1 and len(children) == 4
    assert client.list_artifacts(parents[0].info.run_id, "study")  # proxied artifact upload
    for run in children:
        assert run.data.tags[names.PARENT_RUN_ID] == parents[0].info.run_id
        assert len(client.get_metric_history(run.info.run_id, "val_top1_error")) == 1

    ostudy = optuna.load_study(study_name="on-postgres", storage=optuna_url)
    assert sorted(t.state.name for t in ostudy.get_trials()) == ["COMPLETE"] * 4
    assert not (tmp_path / "optuna.db").exists()

    # Continues: no work.
    again = run_study(load_study(path), tracking_uri=url, optuna_storage=optuna_url)
    assert again.count("DONE") == 4 and again.ray_seconds == 0

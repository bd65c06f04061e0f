"""The production path: an `mlflow server` on PostgreSQL and the Optuna study on PostgreSQL.

Needs the PostgreSQL at 127.0.0.1:5432 (trust auth, database `test`); each test gets fresh
databases, dropped afterwards.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import optuna
import psycopg2
import pytest
from conftest import write_study
from mlflow.tracking import MlflowClient

from ablation.run.driver import run_study
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
def mlflow_server(databases, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path / "mlflow-server.log", "w")  # noqa: SIM115 - closed below
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"), "server",
            "--backend-store-uri", databases[0],
            "--artifacts-destination", str(tmp_path / "artifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp_path / "mlflow-server.log").read_text()[-3000:])
            time.sleep(0.5)
        yield url, databases[1]
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_tiny_study_on_mlflow_server_and_optuna_on_postgresql(mlflow_server, tmp_path):
    url, optuna_url = mlflow_server
    path = write_study(
        tmp_path,
        "on-postgres",
        train={"epochs": 1, "batch_size": 64, "optimizer": {"name": "sgd", "lr": 0.05}},
    )
    result = run_study(path, tracking_uri=url, optuna_storage=optuna_url)
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

    again = run_study(path, tracking_uri=url, optuna_storage=optuna_url)  # continues: no work
    assert again.count("DONE") == 4 and again.ray_seconds == 0

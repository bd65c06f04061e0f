"""The compose services' own commands, started natively on loopback (no Docker engine here).

Each service runs the command and environment docker-compose.yml gives it, interpolated with
test secrets as Compose would do from .env, with only what differs outside the compose network
swapped: host names -> 127.0.0.1, fixed ports -> free ones, paths -> a temporary directory.
  postgres: the local server (127.0.0.1:5432, trust auth) instead of the image; the init script
            creates fresh roles and databases, dropped at the end;
  mlflow:   deploy/mlflow_entrypoint.py -> `mlflow server --app-name basic-auth` on them;
  ray-head: `ray start --head --block` with token auth, HOME and --temp-dir in tmp (never ~/.ray);
  optuna-dashboard: deploy/optuna_dashboard.py on the Optuna database;
then `ablation submit` of a tiny study to that head, with MLflow credentials from the environment.
"""

from __future__ import annotations

import base64
import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
from compose_file import ROOT, interpolate, load_raw, native_command, service_environment
from helpers import end_processes, free_port, processes_marked, write_study

PG = {"PGHOST": "127.0.0.1", "PGPORT": "5432", "PGUSER": "postgres"}
VENV_BIN = Path(sys.executable).parent

pytestmark = pytest.mark.skipif(
    subprocess.run(["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"]).returncode != 0,
    reason="needs the local PostgreSQL at 127.0.0.1:5432",
)


def http(
    url: str,
    *,
    auth: tuple[str, str] | None = None,
    token: str | None = None,
    method: str = "GET",
    body: dict | None = None,
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, method=method)
    if auth:
        basic = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        request.add_header("Authorization", f"Basic {basic}")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, data=data, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_for(url: str, process: subprocess.Popen, log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{url}: exited {process.returncode}\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError):
            if http(url)[0] == 200:
                return
        time.sleep(1)
    pytest.fail(f"{url}: not up after {seconds}s\n{log.read_text()[-3000:]}")


def run_healthcheck(service: dict, port_map: dict[int, int], seconds: float = 60) -> int:
    """A service's compose health check, run here with its container port mapped to ours, and
    retried for a while as Docker does during `start_period`. Returns the last exit code."""
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD", test
    command = list(test[1:])
    for inside, outside in port_map.items():
        command = [c.replace(f"127.0.0.1:{inside}/", f"127.0.0.1:{outside}/") for c in command]
    deadline = time.monotonic() + seconds
    while True:
        code = subprocess.run(command, capture_output=True, timeout=30).returncode
        if code == 0 or time.monotonic() > deadline:
            return code
        time.sleep(2)


class Processes:
    """The processes this test starts. Each runs in its own session, carrying a marker in its
    environment, so teardown finds every descendant (Ray's workers, the job's driver) by pid."""

    def __init__(self, marker: str):
        self.marker = marker
        self.started: list[subprocess.Popen] = []

    def start(self, command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
        env = {**env, "ABLATION_DEPLOY_TEST": self.marker}
        out = open(log, "wb")  # noqa: SIM115 - lives as long as the process
        process = subprocess.Popen(
            command,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=log.parent,
        )
        self.started.append(process)
        return process

    def stop_all(self) -> None:
        for process in reversed(self.started):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 8
        for process in self.started:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
        end_processes(processes_marked(f"ABLATION_DEPLOY_TEST={self.marker}"), grace=2)


def psql(sql: str, database: str = "postgres") -> None:
    subprocess.run(
        ["psql", "-v", "ON_ERROR_STOP=1", "-q", "-d", database, "-c", sql],
        env={**os.environ, **PG},
        check=True,
        capture_output=True,
    )


def load_deploy_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "deploy" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- the stack ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Secrets, names and the compose file interpolated with them (a user's .env, in effect)."""
    tmp = tmp_path_factory.mktemp("stack")
    suffix = uuid.uuid4().hex[:8]
    secrets = {
        "POSTGRES_PASSWORD": "unused-with-trust-auth",
        "MLFLOW_DB_PASSWORD": "db p@ss:w%rd/" + suffix,  # needs quoting in URLs and the ini
        "OPTUNA_DB_PASSWORD": "optuna p@ss/" + suffix,
        "MLFLOW_ADMIN_PASSWORD": "admin-password-" + suffix,
        "MLFLOW_RUNNER_PASSWORD": "runner-password-" + suffix,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": uuid.uuid4().hex,
        "RAY_AUTH_TOKEN": uuid.uuid4().hex + uuid.uuid4().hex,
        "MLFLOW_DB_USER": f"mlflow_{suffix}",
        "OPTUNA_DB_USER": f"optuna_{suffix}",
        "MLFLOW_RUNNER_USERNAME": "ablation",
    }
    names = {
        "MLFLOW_DB_NAME": f"mlflow_{suffix}",
        "MLFLOW_AUTH_DB_NAME": f"mlflow_auth_{suffix}",
        "OPTUNA_DB_NAME": f"optuna_{suffix}",
    }
    doc = interpolate(load_raw(), secrets)
    processes = Processes(suffix)
    # Short, for Ray's temp dir: its sockets live under it (107 bytes at most), and pytest's
    # tmp paths are long (longer still under xdist).
    short = Path(tempfile.mkdtemp(prefix="stack", dir="/tmp"))
    yield {
        "tmp": tmp,
        "short": short,
        "secrets": secrets,
        "names": names,
        "doc": doc,
        "processes": processes,
    }
    processes.stop_all()
    shutil.rmtree(short, ignore_errors=True)


@pytest.fixture(scope="module")
def databases(stack):
    """deploy/postgres-init.sh, as the postgres image runs it, against the local server."""
    env = {**os.environ, **PG, **service_environment(stack["doc"], "postgres"), **stack["names"]}
    env["POSTGRES_USER"] = "postgres"
    volume = next(v for v in stack["doc"]["services"]["postgres"]["volumes"] if "initdb" in v)
    script = ROOT / volume.split(":")[0]
    done = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=60)
    yield done
    for database in stack["names"].values():
        with contextlib.suppress(subprocess.CalledProcessError):
            psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    for role in ("MLFLOW_DB_USER", "OPTUNA_DB_USER"):
        with contextlib.suppress(subprocess.CalledProcessError):
            psql(f'DROP ROLE IF EXISTS "{stack["secrets"][role]}"')


@pytest.fixture(scope="module")
def mlflow_server(stack, databases):
    """The mlflow service: its command and environment, on loopback. Before it starts, the auth
    store holds the admin with an *old* password, so the start-up must change it."""
    assert databases.returncode == 0, databases.stderr
    tmp, service = stack["tmp"], stack["doc"]["services"]["mlflow"]
    port = free_port()
    env = {**os.environ, **service_environment(stack["doc"], "mlflow"), **stack["names"]}
    env.update(
        {
            "MLFLOW_DB_HOST": "127.0.0.1",
            "MLFLOW_HOST": "127.0.0.1",
            "MLFLOW_PORT": str(port),
            "MLFLOW_WORKERS": "1",
            "MLFLOW_AUTH_CONFIG_PATH": str(tmp / "mlflow-auth" / "basic_auth.ini"),
            "MLFLOW_ARTIFACTS_DESTINATION": str(tmp / "mlflow-artifacts"),
            "HOME": str(tmp),
        }
    )
    entrypoint = load_deploy_script("mlflow_entrypoint")
    auth_uri = entrypoint.postgres_uri(env["MLFLOW_AUTH_DB_NAME"], env)
    old = {**env, "MLFLOW_AUTH_ADMIN_PASSWORD": "an-old-admin-password"}
    assert entrypoint.sync_users(auth_uri, old)["admin"] == "created"

    log = tmp / "mlflow.log"
    process = stack["processes"].start(native_command(service["command"], sys.executable), env, log)
    wait_for(f"http://127.0.0.1:{port}/health", process, log, seconds=150)
    return {"url": f"http://127.0.0.1:{port}", "port": port, "log": log, "service": service}


@pytest.fixture(scope="module")
def ray_head(stack, mlflow_server):
    """The ray-head service's `ray start --head --block`, ports and addresses made local."""
    tmp, service = stack["tmp"], stack["doc"]["services"]["ray-head"]
    ports = {name: free_port() for name in ("gcs", "dashboard", "agent", "client")}
    override = {
        "--port": ports["gcs"],
        "--dashboard-host": "127.0.0.1",
        "--dashboard-port": ports["dashboard"],
        "--num-cpus": 2,  # no GPU workers here: the head runs the trials
    }
    command = []
    for part in service["command"]:
        flag = part.split("=")[0]
        command.append(f"{flag}={override[flag]}" if flag in override else part)
    assert command[:3] == ["ray", "start", "--head"] and "--block" in command
    command[0] = str(VENV_BIN / "ray")
    command += [
        f"--temp-dir={stack['short'] / 'ray'}",
        "--node-ip-address=127.0.0.1",
        f"--dashboard-agent-listen-port={ports['agent']}",
        f"--ray-client-server-port={ports['client']}",
    ]
    env = {**os.environ, **service_environment(stack["doc"], "ray-head")}
    env.update(
        {
            "HOME": str(tmp / "home"),  # anything Ray writes under ~ stays in tmp
            "PATH": f"{VENV_BIN}:{os.environ['PATH']}",  # job entrypoints find `ablation`
            "MLFLOW_TRACKING_URI": mlflow_server["url"],  # instead of http://mlflow:5000
            "ABLATION_TORCH_THREADS": "1",
        }
    )
    (tmp / "home").mkdir(exist_ok=True)
    log = tmp / "ray-head.log"
    process = stack["processes"].start(command, env, log)
    dashboard = f"http://127.0.0.1:{ports['dashboard']}"
    wait_for(f"{dashboard}/api/gcs_healthz", process, log, seconds=120)
    return {"dashboard": dashboard, "ports": ports, "service": service, "log": log}


@pytest.fixture(scope="module")
def optuna_dashboard(stack, databases):
    assert databases.returncode == 0, databases.stderr
    service = stack["doc"]["services"]["optuna-dashboard"]
    port = free_port()
    env = {**os.environ, **service_environment(stack["doc"], "optuna-dashboard")}
    env.update(
        {
            "OPTUNA_DB_HOST": "127.0.0.1",
            "OPTUNA_DB_NAME": stack["names"]["OPTUNA_DB_NAME"],
            "OPTUNA_DASHBOARD_HOST": "127.0.0.1",
            "OPTUNA_DASHBOARD_PORT": str(port),
        }
    )
    log = stack["tmp"] / "optuna-dashboard.log"
    process = stack["processes"].start(native_command(service["command"], sys.executable), env, log)
    wait_for(f"http://127.0.0.1:{port}/", process, log, seconds=60)
    return {"url": f"http://127.0.0.1:{port}", "port": port, "service": service, "env": env}


# ---- tests -------------------------------------------------------------------------------------


def test_init_script_creates_the_databases_owned_by_their_roles(stack, databases):
    assert databases.returncode == 0, databases.stderr
    owners = subprocess.run(
        ["psql", "-Atc", "SELECT datname, pg_get_userbyid(datdba) FROM pg_database"],
        env={**os.environ, **PG},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    secrets, names = stack["secrets"], stack["names"]
    assert f"{names['MLFLOW_DB_NAME']}|{secrets['MLFLOW_DB_USER']}" in owners
    assert f"{names['MLFLOW_AUTH_DB_NAME']}|{secrets['MLFLOW_DB_USER']}" in owners
    assert f"{names['OPTUNA_DB_NAME']}|{secrets['OPTUNA_DB_USER']}" in owners


def test_mlflow_refuses_requests_without_credentials(mlflow_server):
    search = f"{mlflow_server['url']}/api/2.0/mlflow/experiments/search?max_results=1"
    assert http(search)[0] == 401
    assert http(search, auth=("admin", "a-wrong-password-123"))[0] == 401
    # /health stays open for the compose health check, which passes.
    assert http(f"{mlflow_server['url']}/health")[0] == 200
    assert run_healthcheck(mlflow_server["service"], {5000: mlflow_server["port"]}) == 0


def test_mlflow_admin_password_was_changed_at_start_up(stack, mlflow_server):
    search = f"{mlflow_server['url']}/api/2.0/mlflow/experiments/search?max_results=1"
    assert http(search, auth=("admin", "an-old-admin-password"))[0] == 401
    assert http(search, auth=("admin", stack["secrets"]["MLFLOW_ADMIN_PASSWORD"]))[0] == 200
    assert "user 'admin': password changed" in mlflow_server["log"].read_text()


def test_mlflow_runner_user_logs_runs_but_is_no_admin(stack, mlflow_server):
    from mlflow.tracking import MlflowClient

    runner = ("ablation", stack["secrets"]["MLFLOW_RUNNER_PASSWORD"])
    users = f"{mlflow_server['url']}/api/2.0/mlflow/users/update-admin"
    assert (
        http(users, auth=runner, method="PATCH", body={"username": "ablation", "is_admin": True})[0]
        == 403
    )
    env = {"MLFLOW_TRACKING_USERNAME": runner[0], "MLFLOW_TRACKING_PASSWORD": runner[1]}
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        client = MlflowClient(mlflow_server["url"])
        experiment = client.create_experiment(f"deploy-auth-{uuid.uuid4().hex[:6]}")
        run = client.create_run(experiment)
        client.log_metric(run.info.run_id, "x", 1.0)
        client.log_text(run.info.run_id, "proxied", "note.txt")  # through --serve-artifacts
        assert client.get_run(run.info.run_id).data.metrics == {"x": 1.0}
    stored = list((stack["tmp"] / "mlflow-artifacts").rglob("note.txt"))
    assert [p.read_text() for p in stored] == ["proxied"]


def test_ray_head_requires_its_token(stack, ray_head):
    jobs = f"{ray_head['dashboard']}/api/jobs/"
    assert http(jobs)[0] == 401
    assert http(jobs, token="not-the-token")[0] in (401, 403)
    assert http(jobs, token=stack["secrets"]["RAY_AUTH_TOKEN"])[0] == 200
    assert (
        run_healthcheck(ray_head["service"], {8265: int(ray_head["dashboard"].rsplit(":")[-1])})
        == 0
    )
    # The worker's health check asks its node's dashboard agent; the head's answers the same way.
    worker = stack["doc"]["services"]["ray-worker"]
    assert run_healthcheck(worker, {52365: ray_head["ports"]["agent"]}) == 0


def test_optuna_dashboard_serves_the_optuna_database(optuna_dashboard):
    import optuna

    name = f"deploy-optuna-{uuid.uuid4().hex[:6]}"
    storage = load_deploy_script("optuna_dashboard_server").optuna_storage_url(
        optuna_dashboard["env"]
    )
    optuna.create_study(study_name=name, storage=storage)
    status, body = http(f"{optuna_dashboard['url']}/api/studies")
    assert status == 200
    assert [s["study_name"] for s in json.loads(body)["study_summaries"]] == [name]
    assert run_healthcheck(optuna_dashboard["service"], {8080: optuna_dashboard["port"]}) == 0


def test_ablation_submit_runs_a_study_whose_runs_reach_mlflow(
    stack, mlflow_server, ray_head, optuna_dashboard
):
    if not (ROOT / "ablation" / "run" / "submit.py").exists():
        pytest.skip("ablation/run/submit.py is not written yet (the runner's `ablation submit`)")
    from mlflow.tracking import MlflowClient

    tmp = stack["tmp"]
    name = f"deploy-smoke-{uuid.uuid4().hex[:6]}"
    train = {"epochs": 1, "batch_size": 64, "optimizer": {"name": "sgd", "lr": 0.05}}
    study = write_study(tmp, name, train=train, seeds=[0])
    credentials = {
        "MLFLOW_TRACKING_URI": mlflow_server["url"],
        "MLFLOW_TRACKING_USERNAME": "ablation",
        "MLFLOW_TRACKING_PASSWORD": stack["secrets"]["MLFLOW_RUNNER_PASSWORD"],
    }
    env = {
        **os.environ,
        **credentials,
        "HOME": str(tmp / "client-home"),
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN": stack["secrets"]["RAY_AUTH_TOKEN"],
    }
    (tmp / "client-home").mkdir(exist_ok=True)
    # The Optuna study on the stack's PostgreSQL database, as the optuna role.
    optuna_storage = load_deploy_script("optuna_dashboard_server").optuna_storage_url(
        optuna_dashboard["env"]
    )
    submit = [str(VENV_BIN / "ablation"), "submit", str(study), "--address", ray_head["dashboard"]]
    done = subprocess.run(
        [*submit, "--optuna-storage", optuna_storage],
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"

    with pytest.MonkeyPatch.context() as mp:
        for key, value in credentials.items():
            mp.setenv(key, value)
        client = MlflowClient(mlflow_server["url"])
        experiment = client.get_experiment_by_name(name)
        assert experiment is not None, done.stdout[-2000:]
        runs = client.search_runs([experiment.experiment_id], "tags.`ablation.role` = 'trial'")
    assert len(runs) == 2
    assert {r.data.tags["ablation.status"] for r in runs} == {"FINISHED"}
    for run in runs:
        error = run.data.metrics["val_top1_error"]
        assert 0.0 <= error <= 100.0
    assert {r.data.params["model.cbam.kernel_size"] for r in runs} == {"3", "7"}
    # The job's Optuna study is on the stack's database: optuna-dashboard shows it.
    status, body = http(f"{optuna_dashboard['url']}/api/studies")
    assert status == 200
    assert name in [s["study_name"] for s in json.loads(body)["study_summaries"]]


@pytest.fixture(scope="module", autouse=True)
def _no_home_ray_touched():
    """Nothing here may write the user's ~/.ray (the token file lives there)."""
    home_ray = Path.home() / ".ray"
    before = sorted(p.name for p in home_ray.iterdir()) if home_ray.is_dir() else None
    yield
    after = sorted(p.name for p in home_ray.iterdir()) if home_ray.is_dir() else None
    assert before == after, f"~/.ray changed: {before} -> {after}"

"""docker-compose.yml, Dockerfile and .env.example, checked statically (no Docker engine here).

The Compose schema is `compose_spec.json` beside this file: the Compose Specification's JSON
schema as shipped in the `docker-compose==1.29.2` wheel on PyPI (`compose/config/compose_spec.json`,
Copyright Docker, Inc., Apache License 2.0), unchanged. It is the 2021 revision of the spec, so
the compose file keeps to the keys that revision knows (the project name comes from
COMPOSE_PROJECT_NAME, not a top-level `name:`). What a schema cannot see is checked below.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
from compose_file import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    IMAGE_WORKDIR,
    ROOT,
    MissingVariable,
    interpolate,
    load_raw,
    read_env_file,
    referenced_variables,
    service_environment,
)

SCHEMA = json.loads((Path(__file__).parent / "compose_spec.json").read_text())
SERVICES = {"postgres", "mlflow", "ray-head", "ray-worker", "optuna-dashboard"}
PUBLISHED = {"mlflow": 5000, "ray-head": 8265, "optuna-dashboard": 8080}
SECRETS = {
    "POSTGRES_PASSWORD",
    "MLFLOW_DB_PASSWORD",
    "OPTUNA_DB_PASSWORD",
    "MLFLOW_ADMIN_PASSWORD",
    "MLFLOW_RUNNER_PASSWORD",
    "MLFLOW_FLASK_SERVER_SECRET_KEY",
    "RAY_AUTH_TOKEN",
}
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$", re.I)
# A value that is a bare reference to a variable, with no default to fall back on.
BARE_REFERENCE = re.compile(r"^\$\{[A-Za-z_][A-Za-z0-9_]*(?::?\?[^}]*)?\}$")


def validate(doc: dict) -> list[str]:
    validator = jsonschema.Draft201909Validator(SCHEMA)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)
    ]


@pytest.fixture(scope="module")
def raw() -> dict:
    return load_raw()


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    """.env.example with every secret filled in, as a user's .env would be."""
    env = read_env_file()
    env.update({name: f"test-{name.lower()}-0123456789" for name in SECRETS})
    return env


@pytest.fixture(scope="module")
def resolved(raw, example_env) -> dict:
    return interpolate(raw, example_env)


def test_compose_file_is_valid_against_the_compose_schema(raw, resolved):
    assert validate(raw) == []
    assert validate(resolved) == []


def test_the_schema_check_rejects_a_broken_file(raw):
    # The check above only means something if the validator bites: a misspelt key and a
    # wrongly typed value are both refused.
    broken = copy.deepcopy(raw)
    broken["services"]["mlflow"]["helthcheck"] = broken["services"]["mlflow"].pop("healthcheck")
    broken["services"]["ray-worker"]["deploy"]["resources"]["reservations"]["devices"] = "all"
    errors = validate(broken)
    assert any("helthcheck" in e for e in errors), errors
    assert any("devices" in e for e in errors), errors


def test_the_stack_has_its_five_services(raw):
    assert set(raw["services"]) == SERVICES


def test_every_service_has_a_health_check_and_a_restart_policy(resolved):
    for name, service in resolved["services"].items():
        check = service.get("healthcheck")
        assert check and not check.get("disable"), f"{name}: no health check"
        test = check["test"]
        assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, f"{name}: {test}"
        assert service.get("restart") in ("always", "unless-stopped", "on-failure"), name


def test_dependencies_wait_for_health(resolved):
    for name, service in resolved["services"].items():
        for dependency, how in (service.get("depends_on") or {}).items():
            assert dependency in SERVICES, f"{name} depends on unknown {dependency}"
            assert how == {"condition": "service_healthy"}, f"{name} -> {dependency}: {how}"


def test_images_and_builds_exist(resolved):
    for name, service in resolved["services"].items():
        assert service.get("image") or service.get("build"), name
        build = service.get("build")
        if build:
            context = ROOT / build["context"]
            assert context.is_dir(), f"{name}: no build context {context}"
            assert (context / build.get("dockerfile", "Dockerfile")).is_file(), name
        else:
            # A pulled image is pinned to a release, never a moving `latest`.
            image = service["image"]
            assert ":" in image and not image.endswith(":latest"), f"{name}: {image}"
    # One image for the Ray nodes and the Python servers.
    built = {n for n, s in resolved["services"].items() if s.get("build")}
    assert built == SERVICES - {"postgres"}
    assert len({resolved["services"][n]["image"] for n in built}) == 1


def _deploy_files(raw: dict) -> dict[str, Path]:
    """Every deploy/ file a service mounts or runs, by where it is referenced."""
    files = {}
    for name, service in raw["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./deploy/"):
                files[f"{name} volume {source}"] = ROOT / source
        for part in service.get("command") or []:
            if part.startswith(f"{IMAGE_WORKDIR}/deploy/"):
                files[f"{name} command {part}"] = ROOT / part.removeprefix(f"{IMAGE_WORKDIR}/")
    return files


def test_referenced_deploy_scripts_exist_and_are_executable(raw):
    files = _deploy_files(raw)
    assert len(files) >= 3  # postgres init, mlflow entrypoint, optuna-dashboard
    for where, path in files.items():
        assert path.is_file(), f"{where}: missing"
        assert os.access(path, os.X_OK), f"{where}: not executable"
        assert path.read_text().startswith("#!"), f"{where}: no shebang"


def _published(service: dict) -> list[tuple[str | None, int]]:
    """(host ip or None, container port) of each published port, short or long syntax."""
    out = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            out.append((port.get("host_ip"), int(port["target"])))
            continue
        parts = str(port).split(":")
        host_ip = parts[0] if len(parts) == 3 else None
        out.append((host_ip, int(parts[-1].split("/")[0])))
    return out


@pytest.mark.parametrize("bind", [None, "from .env.example"])
def test_published_ports_bind_loopback_by_default(raw, example_env, bind):
    env = dict(example_env)
    if bind is None:
        env.pop("BIND_ADDRESS")  # the compose file's own default
    doc = interpolate(raw, env)
    published = {n: _published(s) for n, s in doc["services"].items() if s.get("ports")}
    assert {n: [p for _, p in ports] for n, ports in published.items()} == {
        n: [p] for n, p in PUBLISHED.items()
    }
    for name, ports in published.items():
        for host_ip, _ in ports:
            assert host_ip == "127.0.0.1", f"{name} binds {host_ip or 'every address'}"


def test_no_secret_is_written_inline(raw):
    text = COMPOSE_FILE.read_text()
    for name in raw["services"]:
        for key, value in service_environment(raw, name).items():
            if SECRET_KEY.search(key):
                assert BARE_REFERENCE.match(value), f"{name}: {key}={value!r} is not a ${{VAR}}"
            for password in re.findall(r"://[^:/@\s]+:([^@\s]+)@", value):
                assert BARE_REFERENCE.match(password), f"{name}: {key} has a password inline"
    # Secrets are never given a fallback value anywhere in the file.
    for secret in SECRETS:
        assert not re.search(r"\$\{" + secret + r":?-", text), f"{secret} has a default"
    assert "env_file" not in text  # each service gets only the variables it names


def test_a_missing_secret_stops_compose_with_its_name(raw):
    env = read_env_file()  # the example as shipped: every secret empty
    assert {k for k, v in env.items() if not v} == SECRETS
    with pytest.raises(MissingVariable) as missing:
        interpolate(raw, env)
    assert str(missing.value).strip("'\"").split(":")[0] in SECRETS
    for secret in SECRETS:  # each one alone is enough to refuse
        filled = {**env, **{s: "x" * 16 for s in SECRETS - {secret}}}
        with pytest.raises(MissingVariable, match=secret):
            interpolate(raw, filled)


def test_env_example_documents_every_variable(raw):
    used = referenced_variables(json.dumps(raw))  # values only: comments are not interpolated
    documented = set(read_env_file())
    assert used - documented == set(), "used in docker-compose.yml, missing from .env.example"
    assert documented - used == {"COMPOSE_PROJECT_NAME"}, "documented but unused"
    text = ENV_EXAMPLE.read_text()
    for name in documented:  # every variable has a comment in its block
        block = text.split(f"\n{name}=")[0].rstrip().splitlines()
        assert block and (block[-1].startswith("#") or "=" in block[-1]), name


def test_workers_reserve_gpus_and_can_scale(resolved):
    worker = resolved["services"]["ray-worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    for name, service in resolved["services"].items():
        assert "container_name" not in service, f"{name}: a fixed name blocks --scale"
    assert "ports" not in worker, "a fixed host port blocks --scale"
    assert worker["command"][:2] == ["ray", "start"]
    assert "--address=ray-head:6379" in worker["command"] and "--block" in worker["command"]
    assert "ray-head" in worker["depends_on"]


def test_ray_head_serves_the_jobs_api_with_token_auth(resolved):
    head = resolved["services"]["ray-head"]
    command = head["command"]
    for flag in (
        "--head",
        "--block",
        "--port=6379",
        "--dashboard-host=0.0.0.0",
        "--dashboard-port=8265",
    ):
        assert flag in command, flag
    for name in ("ray-head", "ray-worker"):
        env = resolved["services"][name]["environment"]
        assert env["RAY_AUTH_MODE"] == "token", name
        assert env["RAY_AUTH_TOKEN"] == "test-ray_auth_token-0123456789", name


def test_mlflow_runs_on_postgres_with_auth_and_an_artifact_volume(resolved):
    mlflow = resolved["services"]["mlflow"]
    env = mlflow["environment"]
    assert env["MLFLOW_DB_HOST"] == "postgres"
    assert env["MLFLOW_AUTH_ADMIN_PASSWORD"] == "test-mlflow_admin_password-0123456789"
    volumes = {v.split(":")[1]: v.split(":")[0] for v in mlflow["volumes"]}
    assert volumes[env["MLFLOW_ARTIFACTS_DESTINATION"]] in resolved["volumes"]
    postgres = resolved["services"]["postgres"]
    data = {v.split(":")[1]: v.split(":")[0] for v in postgres["volumes"]}
    assert data["/var/lib/postgresql/data"] in resolved["volumes"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


# ---- Dockerfile ------------------------------------------------------------------------------


def dockerfile_instructions(path: Path = ROOT / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions, current = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        current += " " + stripped.removesuffix("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, args = current.strip().partition(" ")
            instructions.append((keyword.upper(), args.strip()))
            current = ""
    assert not current, "Dockerfile ends inside a continued line"
    return instructions


def test_dockerfile_builds_the_package_on_a_python_base():
    instructions = dockerfile_instructions()
    keywords = [k for k, _ in instructions]
    known = {
        "FROM",
        "ARG",
        "ENV",
        "RUN",
        "COPY",
        "WORKDIR",
        "USER",
        "ENTRYPOINT",
        "CMD",
        "LABEL",
        "EXPOSE",
        "HEALTHCHECK",
        "SHELL",
        "VOLUME",
    }
    assert set(keywords) <= known, set(keywords) - known
    assert keywords[0] in ("FROM", "ARG") and "FROM" in keywords
    assert keywords.count("FROM") == 1  # one image for every service
    assert all(k == "ARG" for k in keywords[: keywords.index("FROM")])
    runs = " && ".join(a for k, a in instructions if k == "RUN")
    assert re.search(r"pip install [^&]*(\"?\.(\[[a-z,]+\])?\"?)(\s|$)", runs), (
        "package not installed"
    )
    assert '".[server]"' in runs  # the MLflow auth app and optuna-dashboard
    # torch comes from pyproject's pin, CUDA build: no CPU-only index forced.
    assert "cpu" not in runs.lower().replace("--no-cache", "")


def test_dockerfile_runs_unprivileged_and_bakes_in_no_secret():
    instructions = dockerfile_instructions()
    keywords = [k for k, _ in instructions]
    users = [a for k, a in instructions if k == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert keywords.index("USER") < keywords.index("CMD")
    for keyword, args in instructions:
        if keyword in ("ENV", "ARG", "LABEL"):
            for name in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", args) or [args.split()[0]]:
                assert not SECRET_KEY.search(name), f"{keyword} {name}: secrets come at run time"
        if keyword == "ADD":
            pytest.fail("ADD: use COPY (no remote fetch, no auto-extraction)")
        if keyword == "COPY":
            sources = [s for s in shlex.split(args) if not s.startswith("--")][:-1]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the build context"


def test_dockerignore_keeps_secrets_and_stores_out_of_the_context():
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    for needed in (".env", ".git", ".venv", "*.db", "mlruns", "mlartifacts"):
        assert needed in patterns, needed

#!/usr/bin/env python3
"""Start the MLflow tracking server of the cluster stack: PostgreSQL, proxied artifacts, basic-auth.

The `mlflow` service of docker-compose.yml runs this; the deploy tests run it natively. It

1. builds the backend and auth database URIs from `MLFLOW_DB_*` (the password is URL-quoted and
   travels in the environment, never on a command line a `ps` would show);
2. writes the basic-auth config (database on PostgreSQL, default permission) to a private file
   and points `MLFLOW_AUTH_CONFIG_PATH` at it;
3. makes the auth store match the environment before the server starts: the admin user gets the
   password of `MLFLOW_AUTH_ADMIN_PASSWORD` (created on the first start, *changed* on every later
   start where it differs, so rotating a password = edit .env, restart), and the runner user the
   job's workers log in as gets `MLFLOW_RUNNER_PASSWORD` without admin rights;
4. execs `mlflow server --app-name basic-auth ...`; arguments given to this script are appended.

Environment (see .env.example): MLFLOW_DB_PASSWORD, MLFLOW_AUTH_ADMIN_PASSWORD and
MLFLOW_FLASK_SERVER_SECRET_KEY are required; everything else has a default.
"""

from __future__ import annotations

import os
import stat
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

REQUIRED = ("MLFLOW_DB_PASSWORD", "MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY")


def postgres_uri(database: str, env: dict[str, str]) -> str:
    """A SQLAlchemy URI for `database` on the stack's PostgreSQL, credentials quoted."""
    user = quote(env.get("MLFLOW_DB_USER", "mlflow"), safe="")
    password = quote(env["MLFLOW_DB_PASSWORD"], safe="")
    host = env.get("MLFLOW_DB_HOST", "postgres")
    port = env.get("MLFLOW_DB_PORT", "5432")
    return f"postgresql+psycopg2://{user}:{password}@{host}:{port}/{quote(database, safe='')}"


def auth_config_text(auth_db_uri: str, env: dict[str, str]) -> str:
    """The basic_auth.ini MLflow reads. No password in it: admin bootstrap comes from the env."""
    # configparser interpolates '%', and a quoted password is full of them.
    database_uri = auth_db_uri.replace("%", "%%")
    return (
        "[mlflow]\n"
        f"default_permission = {env.get('MLFLOW_AUTH_DEFAULT_PERMISSION', 'READ')}\n"
        f"database_uri = {database_uri}\n"
        f"admin_username = {env.get('MLFLOW_AUTH_ADMIN_USERNAME', 'admin')}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # Without a cache every request re-runs the password hash (deliberately slow): with
        # many trials logging, that is most of the server's CPU. A changed password is seen by
        # every worker within this many seconds.
        f"auth_cache_ttl_seconds = {env.get('MLFLOW_AUTH_CACHE_TTL_SECONDS', '60')}\n"
    )


def write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, stat.S_IRUSR | stat.S_IWUSR)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)


def ensure_user(store, username: str, password: str, *, is_admin: bool) -> str:
    """Create the user, or bring its password and admin flag in line. Returns what was done."""
    if not store.has_user(username, use_primary=True):
        store.create_user(username, password, is_admin=is_admin)
        return "created"
    done = []
    if not store.authenticate_user(username, password, use_primary=True):
        store.update_user(username, password=password)
        done.append("password changed")
    if store.get_user(username).is_admin != is_admin:
        store.update_user(username, is_admin=is_admin)
        done.append("admin flag set" if is_admin else "admin flag cleared")
    return ", ".join(done) or "unchanged"


def sync_users(auth_db_uri: str, env: dict[str, str]) -> dict[str, str]:
    """Make the auth store's admin and runner users match the environment."""
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore()
    store.init_db(auth_db_uri)  # creates or migrates the auth schema
    admin = env.get("MLFLOW_AUTH_ADMIN_USERNAME", "admin")
    actions = {admin: ensure_user(store, admin, env["MLFLOW_AUTH_ADMIN_PASSWORD"], is_admin=True)}
    runner = env.get("MLFLOW_RUNNER_USERNAME", "")
    if runner and env.get("MLFLOW_RUNNER_PASSWORD"):
        if runner == admin:
            raise SystemExit("MLFLOW_RUNNER_USERNAME must differ from MLFLOW_AUTH_ADMIN_USERNAME")
        actions[runner] = ensure_user(store, runner, env["MLFLOW_RUNNER_PASSWORD"], is_admin=False)
    store.engine.dispose()
    return actions


def server_command(env: dict[str, str], extra: list[str]) -> list[str]:
    # `python -m mlflow`: the interpreter running this script has mlflow, whatever PATH says.
    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--app-name",
        "basic-auth",
        "--serve-artifacts",
        "--artifacts-destination",
        env.get("MLFLOW_ARTIFACTS_DESTINATION", "/var/lib/mlflow/artifacts"),
        "--host",
        env.get("MLFLOW_HOST", "0.0.0.0"),
        "--port",
        env.get("MLFLOW_PORT", "5000"),
        "--workers",
        env.get("MLFLOW_WORKERS", "2"),
        *extra,
    ]


def main(argv: list[str]) -> None:
    env = dict(os.environ)
    missing = [name for name in REQUIRED if not env.get(name)]
    if missing:
        raise SystemExit(f"mlflow: set {', '.join(missing)} (see .env.example)")
    backend_uri = postgres_uri(env.get("MLFLOW_DB_NAME", "mlflow"), env)
    auth_uri = postgres_uri(env.get("MLFLOW_AUTH_DB_NAME", "mlflow_auth"), env)

    config_path = Path(
        env.get("MLFLOW_AUTH_CONFIG_PATH")
        or Path(tempfile.gettempdir()) / f"mlflow-auth-{os.getuid()}" / "basic_auth.ini"
    )
    write_private(config_path, auth_config_text(auth_uri, env))
    for user, action in sync_users(auth_uri, env).items():
        print(f"mlflow-entrypoint: user {user!r}: {action}", flush=True)

    env["MLFLOW_AUTH_CONFIG_PATH"] = str(config_path)
    env["MLFLOW_BACKEND_STORE_URI"] = backend_uri
    env.pop("MLFLOW_RUNNER_PASSWORD", None)  # the server never needs it
    command = server_command(env, argv)
    print("mlflow-entrypoint: " + " ".join(command), flush=True)
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    main(sys.argv[1:])

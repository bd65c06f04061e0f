#!/usr/bin/env python3
"""Serve optuna-dashboard on the stack's Optuna database (the `optuna-dashboard` service).

The storage URL is built from `OPTUNA_DB_*` here rather than passed as an argument, so the
database password stays out of the process list and `docker inspect`'s command line.
optuna-dashboard has no login of its own: docker-compose.yml publishes it on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import sys
from urllib.parse import quote


def optuna_storage_url(env: dict[str, str]) -> str:
    """The SQLAlchemy URL of the Optuna database, credentials quoted."""
    user = quote(env.get("OPTUNA_DB_USER", "optuna"), safe="")
    password = quote(env["OPTUNA_DB_PASSWORD"], safe="")
    host = env.get("OPTUNA_DB_HOST", "postgres")
    port = env.get("OPTUNA_DB_PORT", "5432")
    database = quote(env.get("OPTUNA_DB_NAME", "optuna"), safe="")
    return f"postgresql+psycopg2://{user}:{password}@{host}:{port}/{database}"


def main() -> None:
    env = dict(os.environ)
    if not env.get("OPTUNA_DB_PASSWORD"):
        raise SystemExit("optuna-dashboard: set OPTUNA_DB_PASSWORD (see .env.example)")
    import optuna
    from optuna_dashboard import run_server

    # RDBStorage creates the schema on an empty database, so the dashboard may start first.
    storage = optuna.storages.RDBStorage(optuna_storage_url(env))
    host = env.get("OPTUNA_DASHBOARD_HOST", "0.0.0.0")
    port = int(env.get("OPTUNA_DASHBOARD_PORT", "8080"))
    print(f"optuna-dashboard: serving on {host}:{port}", flush=True)
    run_server(storage, host=host, port=port)


if __name__ == "__main__":
    sys.exit(main())

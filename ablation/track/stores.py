"""Where a run keeps things: the MLflow store, the Optuna storage, Tune's results directory.

Pure functions of URIs and paths. The embedded default keeps all three side by side: with
`sqlite:///DIR/mlflow.db`, Optuna uses `sqlite:///DIR/optuna.db` and Tune `DIR/ray_results`.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
OPTUNA_FILE = "optuna.db"
RESULTS_DIR = "ray_results"
OPTUNA_STORAGE_ENV = "ABLATION_OPTUNA_STORAGE"


def tracking_uri(cli: str | None, study_uri: str | None) -> str:
    """--tracking-uri, else the study's tracking.uri, else MLFLOW_TRACKING_URI, else the default."""
    return cli or study_uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI


def sqlite_dir(uri: str) -> Path | None:
    """The directory of a `sqlite:///` store's file (relative paths stay relative), else None."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///")).parent


def optuna_storage(
    tracking: str, cli: str | None, study_storage: str | None
) -> tuple[str, str | None]:
    """(storage URL, a note to print or None): --optuna-storage, search.storage, the
    ABLATION_OPTUNA_STORAGE environment variable (how `submit` and the cluster image pass it,
    keeping its password off command lines), else beside the MLflow store; for a store that is
    no SQLite file, a local `optuna.db`, with a note."""
    chosen = cli or study_storage or os.environ.get(OPTUNA_STORAGE_ENV)
    if chosen:
        return chosen, None
    folder = sqlite_dir(tracking)
    if folder is not None:
        return f"sqlite:///{folder / OPTUNA_FILE}", None
    note = (
        f"note: the MLflow store {_host(tracking)} is a server; the Optuna study goes to the "
        f"local file {OPTUNA_FILE} (give --optuna-storage or search.storage to share it)"
    )
    return f"sqlite:///{OPTUNA_FILE}", note


def results_dir(tracking: str) -> Path:
    """Tune's storage path (checkpoints, trial logs): beside a SQLite store, else ./ray_results."""
    folder = sqlite_dir(tracking)
    return ((folder if folder is not None else Path(".")) / RESULTS_DIR).resolve()


def _host(uri: str) -> str:
    scheme, sep, rest = uri.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}" if sep else uri

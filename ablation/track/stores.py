"""Where a run keeps things: the MLflow store, the Optuna storage, Tune's results directory.

Functions of URIs and paths. The embedded default keeps all three side by side: with
`sqlite:///DIR/mlflow.db`, Optuna uses `sqlite:///DIR/optuna.db` and Tune `DIR/ray_results`.
`unwritable` checks them before a run starts; `creation_lock` serialises the creation of a
SQLite store's tables between processes (MLflow's and Optuna's migrations are not safe when
two processes create one store at once).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
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
        # Absolute, as recorded on the parent run: `ablation report` run from another
        # directory still finds it (for the Optuna importance table).
        return f"sqlite:///{folder.resolve() / OPTUNA_FILE}", None
    note = (
        f"note: the MLflow store {_host(tracking)} is a server; the Optuna study goes to the "
        f"local file {OPTUNA_FILE} (give --optuna-storage or search.storage to share it)"
    )
    return f"sqlite:///{OPTUNA_FILE}", note


def results_dir(tracking: str) -> Path:
    """Tune's storage path (checkpoints, trial logs): beside a SQLite store, else ./ray_results."""
    folder = sqlite_dir(tracking)
    return ((folder if folder is not None else Path(".")) / RESULTS_DIR).resolve()


def shown(uri: str) -> str:
    """The store as a message names it: a local one by its absolute path (a relative
    `sqlite:///mlflow.db` depends on the folder a command ran in), a server without its
    password."""
    if uri.startswith("sqlite:///"):
        rest, _, query = uri.removeprefix("sqlite:///").partition("?")
        if rest and rest != ":memory:":
            return f"sqlite:///{Path(rest).resolve()}" + (f"?{query}" if query else "")
        return uri
    if uri.startswith("file:") or ("://" not in uri and uri):
        return str(Path(uri.removeprefix("file://").removeprefix("file:")).resolve())
    return _host(uri)


def _host(uri: str) -> str:
    scheme, sep, rest = uri.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}" if sep else uri


class UnwritablePath(ValueError):
    """A store's or the results' folder that cannot be created or written; str() is one line."""


def unwritable(folders: dict[str, Path | None]) -> list[str]:
    """One line per folder (`what -> folder`, None skipped) that cannot be created or written.

    Probes by writing (and removing) a temporary file in the folder, or in its nearest existing
    ancestor when the folder is still to be created: permission bits say nothing for root, and
    nothing is left behind either way.
    """
    problems = []
    for what, folder in folders.items():
        if folder is None:
            continue
        folder = Path(folder).absolute()
        probe = folder
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir():
            problems.append(f"{what} {folder}: {probe} is not a directory")
            continue
        try:
            fd, name = tempfile.mkstemp(prefix=".ablation-probe-", dir=probe)
        except OSError as err:
            reason = err.strerror or type(err).__name__
            problems.append(f"{what} {folder}: cannot write in {probe} ({reason})")
            continue
        os.close(fd)
        os.unlink(name)
    return problems


def check_writable(tracking: str, storage: str) -> None:
    """Raise UnwritablePath (one line) unless the MLflow store's folder, the Optuna storage's
    and Tune's results folder can all be created and written."""
    problems = unwritable(
        {
            "the MLflow store's folder": sqlite_dir(tracking),
            "the Optuna storage's folder": sqlite_dir(storage),
            "Tune's results folder": results_dir(tracking),
        }
    )
    for uri in (tracking, storage):
        db = sqlite_dir(uri)
        if db is not None:
            file = Path(uri.removeprefix("sqlite:///"))
            if file.exists() and not os.access(file, os.R_OK | os.W_OK):
                problems.append(f"the store {file}: not readable and writable")
    if problems:
        raise UnwritablePath("; ".join(problems))


@contextlib.contextmanager
def creation_lock(uri: str) -> Iterator[None]:
    """Hold an exclusive lock file beside a SQLite store (`DB.lock`) while its tables are
    created or migrated; other URIs (a server, PostgreSQL) need none. The lock is released by
    the OS should the process die while holding it."""
    if sqlite_dir(uri) is None:
        yield
        return
    db = Path(uri.removeprefix("sqlite:///"))
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{db}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)

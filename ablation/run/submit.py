"""`ablation submit FILE --address http://HEAD:8265`: run a study as a Ray job on a cluster.

The job's entrypoint is `ablation run <file> --tracking-uri ... --address auto` on the head;
its working dir is a temporary folder holding the study file and the packages and modules of
its `MODULE:NAME` plugins found beside it (the cluster's image has the package installed, and
any installed plugin). There the job's driver validates the study and ships the plugins on to
its workers (ablation.run.ray_session), as a local run does. MLflow credentials, the Optuna
storage URL and the Ray auth token travel as the job's environment variables, taken from the
submitting environment and never printed.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from ablation.track import stores

# Passed on to the job when set here.
FORWARDED_ENV = (
    "MLFLOW_TRACKING_URI",
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "RAY_AUTH_TOKEN",
    stores.OPTUNA_STORAGE_ENV,
)
_ENDED = ("SUCCEEDED", "FAILED", "STOPPED")


def job_tracking_uri(cli: str | None, study_uri: str | None) -> tuple[str, str | None]:
    """(the URI the job uses, a note or None). A relative SQLite path is made absolute: the job
    runs in another directory (and a SQLite file must be on a path the head can reach)."""
    uri = stores.tracking_uri(cli, study_uri)
    folder = stores.sqlite_dir(uri)
    if folder is None:
        return uri, None
    absolute = f"sqlite:///{Path(uri.removeprefix('sqlite:///')).resolve()}"
    return absolute, (
        f"note: the job writes to the SQLite store {absolute}: the Ray head must see that "
        "path (for a cluster, use an MLflow server: --tracking-uri http://...)"
    )


def copy_plugins(sources: list[Path], folder: Path) -> None:
    """Copy the plugin packages (folders, less caches) and module files into `folder`."""
    for source in sources:
        if source.is_dir():
            shutil.copytree(
                source, folder / source.name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(source, folder / source.name)


def submit_job(client: object, *, wait: float = 90.0, **job: object) -> str:
    """Submit, retrying while a freshly started head has no job agent up yet."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return client.submit_job(**job)
        except RuntimeError as err:
            if "No available agent" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(2)


def stream_job(client: object, job_id: str, poll: float = 1.0) -> str:
    """Print the job's log as it grows; returns its final status."""
    shown = 0
    while True:
        status = str(client.get_job_status(job_id).value)
        logs = client.get_job_logs(job_id)
        if len(logs) > shown:
            sys.stdout.write(logs[shown:])
            sys.stdout.flush()
            shown = len(logs)
        if status in _ENDED:
            return status
        time.sleep(poll)


def shown_uri(uri: str) -> str:
    """The URI without a password, for printing."""
    scheme, sep, rest = uri.partition("://")
    if sep and "@" in rest:
        creds, _, host = rest.rpartition("@")
        return f"{scheme}://{creds.split(':', 1)[0]}@{host}"
    return uri

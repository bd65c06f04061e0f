"""`ablation submit FILE --address http://HEAD:8265`: run a study as a Ray job on a cluster."""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from mlflow.tracking import MlflowClient
from ray.exceptions import AuthenticationError
from ray.job_submission import JobSubmissionClient

from ablation.run.ray_session import auth_refusal, use_token_from_env
from ablation.run.submit import (
    FORWARDED_ENV,
    copy_plugins,
    job_tracking_uri,
    shown_uri,
    stream_job,
    submit_job,
)
from ablation.study import load_for_command
from ablation.study.plugins import plugin_folders
from ablation.track import stores


def main(args: argparse.Namespace) -> int:
    """Submit, print the job id and how to follow it; unless --no-wait, stream its logs until
    it ends. Exit 0 when the job succeeded (or was submitted, with --no-wait), 1 otherwise,
    2 for a bad study file or a cluster that refused the token (one line)."""
    study = load_for_command(args.file)
    if study is None:
        return 2
    uri, note = job_tracking_uri(args.tracking_uri, study.tracking.uri)
    if note:
        print(note)
    study_file = Path(args.file)
    command = [
        "ablation",
        "run",
        study_file.name,
        "--tracking-uri",
        uri,
        "--address",
        "auto",
    ]
    env = {k: os.environ[k] for k in FORWARDED_ENV if os.environ.get(k)}
    if args.optuna_storage:  # in the job's environment, not its command line (a password)
        env[stores.OPTUNA_STORAGE_ENV] = args.optuna_storage
    env["MLFLOW_TRACKING_URI"] = uri
    env.setdefault("PYTHONUNBUFFERED", "1")
    if stores.sqlite_dir(uri) is not None:
        # A new local store is created here, before the job's driver opens it: two processes
        # creating one store's tables at once break MLflow's migration.
        with stores.creation_lock(uri):
            MlflowClient(uri).search_experiments(max_results=1)

    use_token_from_env()  # RAY_AUTH_TOKEN (or _PATH) alone is enough
    try:
        client = JobSubmissionClient(args.address)
        with tempfile.TemporaryDirectory(prefix="ablation-job-") as folder:
            shutil.copy2(study_file, Path(folder) / study_file.name)
            copy_plugins(plugin_folders(study), Path(folder))  # imported beside the study there
            job_id = submit_job(
                client,
                entrypoint=shlex.join(command),
                runtime_env={"working_dir": folder, "env_vars": env},
                metadata={"study": study.study},
            )
    except AuthenticationError as err:
        refused = auth_refusal(args.address, err)
        print(f"ablation submit: {refused or err}", file=sys.stderr)
        return 2
    print(f"submitted study {study.study} as Ray job {job_id}")
    print(f"  follow: ray job logs --address {args.address} --follow {job_id}")
    print(f"  status: ablation status {study.study} --tracking-uri {shown_uri(uri)}")
    if args.no_wait:
        return 0
    status = stream_job(client, job_id)
    print(f"Ray job {job_id}: {status}")
    return 0 if status == "SUCCEEDED" else 1

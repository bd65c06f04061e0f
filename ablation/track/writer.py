"""The MLflow writer: what the driver records for a study and its trials.

Only the driver process writes (SQLite stores break under concurrent writers, and one writer
keeps "exactly one child run per trial" easy to hold). Everything goes through `MlflowClient`
with explicit run ids and batched calls; nothing touches the global `mlflow` run stack, so no
`MLFLOW_RUN_ID` ever leaks into Ray workers.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from ablation.track import names
from ablation.track.plan import StudyPlan, load_plan
from ablation.track.search import search_runs
from ablation.vocabulary.plugins import plugin_source

_MAX_TAG_CHARS = 5000  # MLflow's limit on a tag value
_VERSIONED_PACKAGES = ("ablation", "torch", "torchvision", "ray", "optuna", "mlflow", "numpy")


class StudyMetric(Protocol):
    """The study's metric: its name and which way it improves."""

    @property
    def name(self) -> str: ...

    @property
    def mode(self) -> str: ...


class LoadedStudy(Protocol):
    """What the writer reads of a loaded `ablation.study.Study` (a layer above track/)."""

    @property
    def study(self) -> str: ...

    @property
    def design(self) -> str: ...

    @property
    def baseline(self) -> str | None: ...

    @property
    def description(self) -> str: ...

    @property
    def metric(self) -> StudyMetric: ...

    @property
    def path(self) -> str | None: ...

    @property
    def source(self) -> bytes | None: ...

    @property
    def folder(self) -> Path | None: ...

    def plugins(self) -> list[str]: ...


class PlannedTrial(Protocol):
    """What the writer records of an `ablation.study.TrialSpec`: one variant run with a seed."""

    @property
    def trial_id(self) -> str: ...

    @property
    def variant(self) -> str: ...

    @property
    def seed(self) -> int: ...

    @property
    def levels(self) -> Mapping[str, Any]: ...

    @property
    def config(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class TrialRun:
    """A trial's child run as found in the store."""

    run_id: str
    trial_id: str
    status: str  # the ablation.status tag (FINISHED, STOPPED, FAILED, KILLED, RUNNING)
    metrics: dict[str, float]


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested plain data as MLflow params: dotted keys, JSON for every non-string leaf."""
    out: dict[str, str] = {}
    for key, value in config.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{dotted}."))
        else:
            out[dotted] = value if isinstance(value, str) else json.dumps(value)
    return out


def numeric(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The finite-or-not float values of a metrics record (drops strings, dicts, bools)."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def git_commit(where: Path) -> str | None:
    """The HEAD commit of the git checkout holding `where`, or None outside one."""
    try:
        out = subprocess.run(
            ["git", "-C", str(where), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def package_versions() -> dict[str, str]:
    versions = {}
    for package in _VERSIONED_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _default_artifact_location(tracking_uri: str, experiment: str) -> str | None:
    """For a SQLite store, artifacts beside the database file (not the current directory)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    db = Path(tracking_uri.removeprefix("sqlite:///")).resolve()
    return (db.parent / "mlartifacts" / experiment).as_uri()


class StudyWriter:
    """Writes one study: its experiment, its parent run, one child run per trial."""

    def __init__(self, tracking_uri: str) -> None:
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri)
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        self.previous_plan: StudyPlan | None = None

    # -- the study ---------------------------------------------------------------------------

    def open_study(
        self,
        study: LoadedStudy,
        plan: StudyPlan,
        *,
        optuna_storage: str | None = None,
    ) -> tuple[str, bool]:
        """Find (to continue) or create the study's parent run; returns (run id, resumed).

        `study`: the loaded Study (its file's bytes become the study artifact); `plan`: what
        the parent records once as `plan.json` (again when the file changed, or when the parent
        has none yet).
        """
        name = study.study
        experiment = self.client.get_experiment_by_name(name)
        if experiment is None:
            self.experiment_id = self.client.create_experiment(
                name, artifact_location=_default_artifact_location(self.tracking_uri, name)
            )
        else:
            self.experiment_id = experiment.experiment_id
            if experiment.lifecycle_stage == "deleted":
                self.client.restore_experiment(self.experiment_id)

        digest = plan.study_hash
        parents = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{names.ROLE}` = '{names.ROLE_STUDY}'",
            order_by=["attributes.start_time DESC"],
        )
        # Prefer the parent of this exact file; else the study's latest parent (the file was
        # edited: its trials keep their ids wherever the edit did not change them).
        same = [r for r in parents if r.data.tags.get(names.STUDY_HASH) == digest]
        parent = (same or parents or [None])[0]
        tags = self._study_tags(study, digest, optuna_storage)
        if parent is None:
            run = self.client.create_run(self.experiment_id, run_name=name, tags=tags)
            self.parent_run_id = run.info.run_id
            resumed = False
        else:
            self.parent_run_id = parent.info.run_id
            self.client.update_run(self.parent_run_id, status="RUNNING")
            self.client.log_batch(self.parent_run_id, tags=[RunTag(k, v) for k, v in tags.items()])
            resumed = True
        changed = not resumed or parent.data.tags.get(names.STUDY_HASH) != digest
        if changed:
            self._log_study_file(study)
        self._log_plugin_sources(study)  # every time: a plugin changes without the study file
        # The plan the study ran under until now (what a rerun compares the edit with); the
        # new one replaces it whenever it differs (the file, or the trial ids: new code).
        self.previous_plan = self.recorded_plan() if resumed else None
        if self.previous_plan != plan:
            self.log_plan(plan)
        return self.parent_run_id, resumed

    def log_plan(self, plan: StudyPlan) -> None:
        """Record `plan` as the parent's `plan.json`, replacing the one before."""
        self.client.log_text(self.parent_run_id, plan.to_json(), names.PLAN_ARTIFACT)

    def recorded_plan(self) -> StudyPlan | None:
        """The parent's `plan.json`, or None (none yet, or one this code cannot read)."""
        if not self._has_plan():
            return None
        try:
            return load_plan(self.client, self.parent_run_id)
        except (OSError, ValueError):
            return None

    def _log_study_file(self, study: LoadedStudy) -> None:
        """The study file's bytes as loaded, under its own name in the study folder."""
        file_name = Path(study.path).name if study.path else f"{study.study}.yaml"
        with tempfile.TemporaryDirectory() as folder:
            local = Path(folder) / file_name
            local.write_bytes(study.source)
            self.client.log_artifact(
                self.parent_run_id, str(local), artifact_path=names.STUDY_ARTIFACT_DIR
            )

    def _log_plugin_sources(self, study: LoadedStudy) -> None:
        """The sources of the study's MODULE:NAME plugins, so the study can be reproduced from
        MLflow alone: under `plugins/<digest>/` (the digest hashes what the trial ids hashed of
        each plugin), those under the study's folder in `study/`, an editable or path
        install's in `installed/`, with that version's `plugins.json` (what the trial ids
        hashed of each; an installed release: its name and version). An edit adds a folder
        and keeps the earlier ones, as the earlier trials' code; the parent's tag
        PLUGINS_DIGEST and the root's `plugins.json` name the current one."""
        refs = study.plugins()
        if not refs:
            return
        sources = [plugin_source(ref, study.folder) for ref in refs]
        record = {s.ref: {"kind": s.kind, **s.identity()} for s in sources}
        text = json.dumps(record, indent=2, sort_keys=True)
        digest = hashlib.sha256(text.encode()).hexdigest()[:16]
        under = f"{names.PLUGINS_ARTIFACT_DIR}/{digest}"
        with tempfile.TemporaryDirectory() as folder:
            for source in sources:
                part = names.STUDY_ARTIFACT_DIR if source.kind == "folder" else "installed"
                for path in source.files:
                    local = Path(folder) / part / path.relative_to(source.root)
                    local.parent.mkdir(parents=True, exist_ok=True)
                    local.write_bytes(path.read_bytes())
            (Path(folder) / names.PLUGINS_ARTIFACT).write_text(text)
            self.client.log_artifacts(self.parent_run_id, folder, under)
        self.client.log_text(self.parent_run_id, text, names.PLUGINS_ARTIFACT)
        self.client.set_tag(self.parent_run_id, names.PLUGINS_DIGEST, digest)

    def _has_plan(self) -> bool:
        listed = self.client.list_artifacts(self.parent_run_id)
        return any(a.path == names.PLAN_ARTIFACT for a in listed)

    def _study_tags(
        self, study: LoadedStudy, digest: str, optuna_storage: str | None
    ) -> dict[str, str]:
        tags = {
            names.ROLE: names.ROLE_STUDY,
            names.STUDY_HASH: digest,
            names.DESIGN: study.design,
            names.BASELINE: study.baseline or "",
            names.METRIC: study.metric.name,
            names.METRIC_MODE: study.metric.mode,
            names.STUDY_FILE: str(study.path or ""),
            "mlflow.note.content": study.description or "",
        }
        if optuna_storage:
            tags[names.OPTUNA_STORAGE] = _redact(optuna_storage)
        commit = git_commit(Path(__file__).resolve().parent)
        if commit:
            tags[names.GIT_COMMIT] = commit
        for package, version in package_versions().items():
            tags[f"{names.VERSION_PREFIX}{package}"] = version
        return tags

    def log_looks(self, looks: list[dict[str, Any]]) -> None:
        """Sequential seeds: every look so far (plain records), replacing the earlier list.

        Rewritten whole after each look: the looks are a replay from the finished trials, so
        the latest list is the whole record (a kill and rerun writes the same looks again).
        """
        text = json.dumps({"looks": looks}, indent=2, allow_nan=False)
        self.client.log_text(self.parent_run_id, text, names.LOOKS_ARTIFACT)

    def set_total(self, total: int) -> None:
        """How many trials the study has (read by `ablation status` for "left")."""
        self.client.set_tag(self.parent_run_id, names.TRIALS_TOTAL, str(total))

    def close_study(self, status: str) -> None:
        """Mark the parent run FINISHED, FAILED or KILLED."""
        if self.parent_run_id:
            self.client.set_terminated(self.parent_run_id, status=status)

    # -- the trials --------------------------------------------------------------------------

    def trial_runs(self) -> dict[str, list[TrialRun]]:
        """The parent's live child runs, by trial id (normally one each)."""
        runs: dict[str, list[TrialRun]] = {}
        for run in search_runs(
            self.client,
            [self.experiment_id],
            f"tags.`{names.PARENT_RUN_ID}` = '{self.parent_run_id}'",
        ):
            trial_id = run.data.tags.get(names.TRIAL_ID)
            if trial_id:
                runs.setdefault(trial_id, []).append(_trial_run(run))
        return runs

    def find_finished_elsewhere(self, trial_ids: Iterable[str]) -> dict[str, TrialRun]:
        """For each trial id, a FINISHED child run of another study in this store, if any."""
        experiments = [e.experiment_id for e in self.client.search_experiments()]
        found: dict[str, TrialRun] = {}
        for trial_id in trial_ids:
            for run in search_runs(
                self.client,
                experiments,
                f"tags.`{names.TRIAL_ID}` = '{trial_id}' "
                f"and tags.`{names.STATUS}` = '{names.STATUS_FINISHED}'",
                limit=5,
            ):
                if run.data.tags.get(names.PARENT_RUN_ID) != self.parent_run_id:
                    found[trial_id] = _trial_run(run)
                    break
        return found

    def start_trial(
        self, spec: PlannedTrial, *, extra_tags: Mapping[str, str] | None = None
    ) -> str:
        """Create the trial's child run (RUNNING) with its params and tags; returns its id."""
        tags = {
            names.PARENT_RUN_ID: self.parent_run_id,
            names.ROLE: names.ROLE_TRIAL,
            names.TRIAL_ID: spec.trial_id,
            names.VARIANT: spec.variant,
            names.SEED: str(spec.seed),
            names.STATUS: names.STATUS_RUNNING,
            **{f"{names.FACTOR_PREFIX}{k}": json.dumps(v) for k, v in spec.levels.items()},
            **(extra_tags or {}),
        }
        run = self.client.create_run(
            self.experiment_id, run_name=names.run_name(spec.variant, spec.seed), tags=tags
        )
        params = [Param(k, v) for k, v in flatten(spec.config).items()]
        params.append(Param("seed", str(spec.seed)))
        self.client.log_batch(run.info.run_id, params=params)  # MLflow splits it into batches
        return run.info.run_id

    def log_epoch(self, run_id: str, metrics: Mapping[str, Any], epoch: int) -> None:
        """One epoch's metrics, as one batch, at step = epoch."""
        now = int(time.time() * 1000)
        values = numeric(metrics)
        values.pop("epoch", None)
        self._log_metrics(run_id, values, epoch, now)

    def finish_trial(
        self,
        run_id: str,
        final: Mapping[str, Any],
        *,
        status: str,
        epoch: int,
        error: str | None = None,
    ) -> None:
        """Final metrics at step = last epoch, the ablation.status tag, and the run's end.

        `status` is FINISHED, STOPPED (early-stopped: a normal end, MLflow FINISHED), FAILED
        or KILLED; MLflow's own run status follows.
        """
        now = int(time.time() * 1000)
        values = {k: v for k, v in numeric(final).items() if k in names.FINAL_METRICS}
        values["epochs_completed"] = float(epoch)
        self._log_metrics(run_id, values, epoch, now)
        tags = [RunTag(names.STATUS, status)]
        if error:
            tags.append(RunTag(names.ERROR, error[-_MAX_TAG_CHARS:]))
        self.client.log_batch(run_id, tags=tags)
        mlflow_status = {
            names.STATUS_FINISHED: "FINISHED",
            names.STATUS_STOPPED: "FINISHED",
            names.STATUS_FAILED: "FAILED",
        }.get(status, "KILLED")
        self.client.set_terminated(run_id, status=mlflow_status)

    def discard(self, run_id: str) -> None:
        """Delete a stale child run (left RUNNING, KILLED or FAILED by an earlier driver)."""
        self.client.delete_run(run_id)

    def copy_reused(self, spec: PlannedTrial, source: TrialRun) -> str:
        """A FINISHED child run copied from another study's run of the same trial id."""
        run_id = self.start_trial(spec, extra_tags={names.REUSED_FROM: source.run_id})
        metrics: list[Metric] = []
        for key in self.client.get_run(source.run_id).data.metrics:
            metrics.extend(
                Metric(key, m.value, m.timestamp, m.step)
                for m in self.client.get_metric_history(source.run_id, key)
            )
        self.client.log_batch(run_id, metrics=metrics)
        self.client.log_batch(run_id, tags=[RunTag(names.STATUS, names.STATUS_FINISHED)])
        self.client.set_terminated(run_id, status="FINISHED")
        return run_id

    # -- helpers -----------------------------------------------------------------------------

    def _log_metrics(self, run_id: str, values: Mapping[str, float], step: int, ts: int) -> None:
        metrics = [Metric(k, v, ts, step) for k, v in values.items()]
        self.client.log_batch(run_id, metrics=metrics)


def _trial_run(run: Any) -> TrialRun:
    tags = run.data.tags
    return TrialRun(
        run_id=run.info.run_id,
        trial_id=tags.get(names.TRIAL_ID, ""),
        status=tags.get(names.STATUS, names.STATUS_RUNNING),
        metrics=dict(run.data.metrics),
    )


def _redact(url: str) -> str:
    """A storage URL without its password (scheme://user:secret@host -> scheme://user:***@host)."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in creds else url

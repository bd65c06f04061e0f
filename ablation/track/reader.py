"""Reading a study store quickly: the read-only commands' way into MLflow's SQLite store.

`status`, `studies` and `report` only read runs, tags, params and metrics. Importing MLflow's
client costs about 2 s on a 2-core machine (it pulls in its GenAI, tracing and data modules),
more than the whole command should take. For a ``sqlite:///`` store, `open_client` returns a
`SqliteReader`: the subset of `MlflowClient` those commands call, answered from MLflow's own
tables (experiments, runs, tags, params, latest_metrics, metrics) through the standard
library's sqlite3, read-only. Any other store (a server, PostgreSQL), or a SQLite file whose
tables are not what this reader knows, gets the real `MlflowClient`.

The objects returned look like MLflow's where the commands read them (``run.info.run_id``,
``run.data.tags``, ...); nothing here writes.
"""

from __future__ import annotations

import logging
import math
import os
import re
import shutil
import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote, urlparse

from ablation.track.stores import shown

# The columns this reader relies on, per table (MLflow's schema since 2.x, unchanged in 3.17).
_SCHEMA = {
    "experiments": {"experiment_id", "name", "artifact_location", "lifecycle_stage"},
    "runs": {
        "run_uuid",
        "name",
        "status",
        "start_time",
        "end_time",
        "lifecycle_stage",
        "artifact_uri",
        "experiment_id",
    },
    "tags": {"key", "value", "run_uuid"},
    "params": {"key", "value", "run_uuid"},
    "latest_metrics": {"key", "value", "step", "timestamp", "is_nan", "run_uuid"},
    "metrics": {"key", "value", "step", "timestamp", "is_nan", "run_uuid"},
}
# The one filter the commands search with: tags.`key` = 'value'.
_TAG_FILTER = re.compile(r"^\s*tags\.`([^`]+)`\s*=\s*'((?:[^']|'')*)'\s*$")


class UnsupportedStore(Exception):
    """This SQLite file or this query is not one the reader answers (use MlflowClient)."""


class NoStore(LookupError):
    """The local store a reading command was pointed at does not exist; str() names it."""


def open_client(tracking_uri: str) -> Any:
    """A client for reading `tracking_uri`: a `SqliteReader` where it can, else MlflowClient.

    Raises NoStore for a local store (a SQLite file, a folder) that does not exist: MLflow's
    client would create an empty one, and a command that only reads must leave none behind.
    """
    path = sqlite_path(tracking_uri) or _file_store(tracking_uri)
    if path is not None and not path.exists():
        raise NoStore(f"no MLflow store at {shown(tracking_uri)} (nothing was created)")
    if sqlite_path(tracking_uri) is not None:
        try:
            return SqliteReader(sqlite_path(tracking_uri))
        except UnsupportedStore:
            pass
    # Creating or migrating tables is logged at INFO; not for the terminal of a reading command.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri)


def sqlite_path(tracking_uri: str) -> Path | None:
    """The file of a ``sqlite:///`` URI (None for anything else, in-memory included)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    rest = tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(rest) if rest and rest != ":memory:" else None


class _Page(list):
    """A result page, as MLflow's PagedList: everything at once, no next page."""

    token = None


class SqliteReader:
    """`MlflowClient`'s read calls used by the light commands, on MLflow's SQLite tables."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise UnsupportedStore(f"{path} does not exist")
        try:
            # Read-only; as_uri() percent-encodes what a URI would misread (?, #, spaces).
            self._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
            for table, columns in _SCHEMA.items():
                have = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
                if not columns <= have:
                    raise UnsupportedStore(f"table {table} lacks {sorted(columns - have)}")
                if table == "experiments":
                    workspaces = "workspace" in have
        except sqlite3.Error as err:
            raise UnsupportedStore(str(err)) from err
        # MLflow 3.17's workspaces: this reader knows the default one only.
        if os.environ.get("MLFLOW_WORKSPACE", "default") != "default":
            raise UnsupportedStore("a workspace other than the default one")
        where = "workspace = 'default'" if workspaces else "1 = 1"
        self._experiments = f"experiments WHERE {where}"
        self.path = path

    # -- experiments ---------------------------------------------------------------------------
    def _experiment(self, row: tuple) -> SimpleNamespace:
        exp_id, name, location, stage = row
        return SimpleNamespace(
            experiment_id=str(exp_id),
            name=name,
            artifact_location=location,
            lifecycle_stage=stage,
        )

    def get_experiment_by_name(self, name: str) -> SimpleNamespace | None:
        row = self._db.execute(
            "SELECT experiment_id, name, artifact_location, lifecycle_stage "
            f"FROM {self._experiments} AND name = ?",
            (name,),
        ).fetchone()
        return self._experiment(row) if row else None

    def search_experiments(self, **_: Any) -> _Page:
        rows = self._db.execute(
            "SELECT experiment_id, name, artifact_location, lifecycle_stage "
            f"FROM {self._experiments} AND lifecycle_stage = 'active' ORDER BY experiment_id"
        )
        return _Page(self._experiment(r) for r in rows)

    # -- runs ----------------------------------------------------------------------------------
    def search_runs(
        self,
        experiment_ids: list[str],
        filter_string: str = "",
        *,
        order_by: list[str] | None = None,
        max_results: int | None = None,
        **_: Any,
    ) -> _Page:
        """Active runs of the experiments whose tag matches ``tags.`key` = 'value'``."""
        match = _TAG_FILTER.match(filter_string or "")
        if not match:
            raise UnsupportedStore(f"filter not supported here: {filter_string!r}")
        key, value = match.group(1), match.group(2).replace("''", "'")
        direction = "ASC"
        for term in order_by or []:
            if term.split()[0] not in ("attributes.start_time", "start_time"):
                raise UnsupportedStore(f"order not supported here: {term!r}")
            direction = "DESC" if term.upper().endswith("DESC") else "ASC"
        marks = ",".join("?" * len(experiment_ids))
        ids = [
            r[0]
            for r in self._db.execute(
                f"SELECT r.run_uuid FROM runs r JOIN tags t ON t.run_uuid = r.run_uuid "
                f"WHERE r.experiment_id IN ({marks}) AND r.lifecycle_stage = 'active' "
                f"AND t.key = ? AND t.value = ? ORDER BY r.start_time {direction}, r.run_uuid",
                [*map(int, experiment_ids), key, value],
            )
        ]
        if max_results is not None:
            ids = ids[:max_results]
        return _Page(self._runs(ids))

    def get_run(self, run_id: str) -> SimpleNamespace:
        runs = self._runs([run_id])
        if not runs:
            raise LookupError(f"no run {run_id} in {self.path}")
        return runs[0]

    def _runs(self, ids: list[str]) -> list[SimpleNamespace]:
        if not ids:
            return []
        runs: dict[str, SimpleNamespace] = {}
        for chunk in _chunks(ids):
            marks = ",".join("?" * len(chunk))
            for row in self._db.execute(
                "SELECT run_uuid, name, status, start_time, end_time, lifecycle_stage, "
                f"artifact_uri, experiment_id FROM runs WHERE run_uuid IN ({marks})",
                chunk,
            ):
                run_id, name, status, start, end, stage, artifact_uri, exp_id = row
                info = SimpleNamespace(
                    run_id=run_id,
                    run_uuid=run_id,
                    run_name=name,
                    status=status,
                    start_time=start,
                    end_time=end,
                    lifecycle_stage=stage,
                    artifact_uri=artifact_uri,
                    experiment_id=str(exp_id),
                )
                data = SimpleNamespace(tags={}, params={}, metrics={})
                runs[run_id] = SimpleNamespace(info=info, data=data)
            for table, attr in (("tags", "tags"), ("params", "params")):
                for run_id, key, value in self._db.execute(
                    f"SELECT run_uuid, key, value FROM {table} WHERE run_uuid IN ({marks})", chunk
                ):
                    getattr(runs[run_id].data, attr)[key] = value
            for run_id, key, value, is_nan in self._db.execute(
                "SELECT run_uuid, key, value, is_nan FROM latest_metrics "
                f"WHERE run_uuid IN ({marks})",
                chunk,
            ):
                runs[run_id].data.metrics[key] = math.nan if is_nan else float(value)
        return [runs[i] for i in ids if i in runs]

    # -- metrics and artifacts -----------------------------------------------------------------
    def get_metric_history(self, run_id: str, key: str) -> list[SimpleNamespace]:
        return self.metric_histories([run_id], [key]).get((run_id, key), [])

    def metric_histories(
        self, run_ids: list[str], keys: list[str]
    ) -> dict[tuple[str, str], list[SimpleNamespace]]:
        """Every logged point of these metrics of these runs, by (run_id, key), in step order."""
        out: dict[tuple[str, str], list[SimpleNamespace]] = {}
        key_marks = ",".join("?" * len(keys))
        for chunk in _chunks(run_ids):
            marks = ",".join("?" * len(chunk))
            for run_id, key, step, timestamp, value, is_nan in self._db.execute(
                "SELECT run_uuid, key, step, timestamp, value, is_nan FROM metrics "
                f"WHERE run_uuid IN ({marks}) AND key IN ({key_marks}) "
                "ORDER BY run_uuid, key, step, timestamp",
                [*chunk, *keys],
            ):
                point = SimpleNamespace(
                    key=key,
                    step=step,
                    timestamp=timestamp,
                    value=math.nan if is_nan else float(value),
                )
                out.setdefault((run_id, key), []).append(point)
        return out

    def download_artifacts(self, run_id: str, path: str, dst_path: str) -> str:
        """Copy one artifact of a run whose artifacts are local files; else ask MLflow."""
        run = self.get_run(run_id)
        root = _local_dir(run.info.artifact_uri or "")
        if root is None:
            from mlflow.tracking import MlflowClient

            return MlflowClient(f"sqlite:///{self.path}").download_artifacts(run_id, path, dst_path)
        source = root / path
        if not source.is_file():
            raise FileNotFoundError(f"no artifact {path} in {root}")
        target = Path(dst_path) / path
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return str(target)


def _file_store(uri: str) -> Path | None:
    """The folder of a file store (`file:...`, or a path such as ./mlruns), else None."""
    if uri.startswith("file:") or ("://" not in uri and "/" in uri):
        return _local_dir(uri)
    return None


def _local_dir(uri: str) -> Path | None:
    """The folder of a local artifact URI (``file://...`` or a plain path), else None."""
    if uri.startswith("file:"):
        return Path(unquote(urlparse(uri).path))
    if "://" not in uri and uri:
        return Path(uri)
    return None


def _chunks(items: list[str], size: int = 500) -> list[list[str]]:
    """SQLite caps the parameters of one statement; ask in chunks."""
    return [items[i : i + size] for i in range(0, len(items), size)]

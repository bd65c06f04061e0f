"""Where a researcher lands in the MLflow UI: the study's training runs, not the GenAI overview.

MLflow 3.17's UI picks its product from three things (read from its UI bundle,
`mlflow/server/js/build/static/js`): the URL query `workflowType` (else the browser's
`mlflow.workflowType` local-storage value, which starts as `genai` in a fresh profile), the
experiment tag `mlflow.experimentKind`, and the route (`#/experiments/ID/runs`). An experiment
tag alone is not enough in a fresh profile, so the link carries all three, plus a shared view:
the experiment tag `mlflow.sharedViewState.<key>` holds a JSON view state (the runs table's
columns, parent runs expanded, sort order) that the URL query `viewStateShareKey=<key>` applies.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ablation.track import names
from ablation.track.search import RunStore, search_runs

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

EXPERIMENT_KIND = "mlflow.experimentKind"
MODEL_TRAINING = "custom_model_development"  # MLflow's ExperimentKind for training runs
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."
WORKFLOW = "machine_learning"  # MLflow's workflowType of the model-training UI


@dataclass(frozen=True)
class StudyLinks:
    """The two links `ablation run` and `ablation ui` print for one study."""

    study: str
    runs: str  # the runs table: parent run with its trials nested, factor/metric columns
    dashboard: str | None  # the parent run's dashboard artifact (None before a parent run)

    def lines(self) -> list[str]:
        out = [f"  {self.study} runs:      {self.runs}"]
        if self.dashboard:
            out.append(f"  {self.study} dashboard: {self.dashboard}")
        return out


def view_state(client: RunStore, experiment_id: str, parent: Any | None) -> dict[str, Any]:
    """The runs table's view: study metric, factor tags and variant as columns, trials grouped
    by variant, newest first (MLflow's shared view-state format)."""
    columns = []
    if parent is not None:
        metric, _ = names.study_metric(parent.data.tags)
        columns.append(f"metrics.`{metric}`")
        children = f"tags.`{names.PARENT_RUN_ID}` = '{parent.info.run_id}'"
        factors = set()
        for run in search_runs(client, [experiment_id], children):
            factors.update(k for k in run.data.tags if k.startswith(names.FACTOR_PREFIX))
        columns += [f"tags.`{names.VARIANT}`", f"tags.`{names.SEED}`"]
        columns += [f"tags.`{k}`" for k in sorted(factors)]
    # MLflow does not share which parent runs are expanded (runsExpanded), so the trials are
    # grouped by variant instead: one row per variant with the metric's mean, its seeds inside.
    return {
        "orderByKey": "attributes.start_time",
        "orderByAsc": False,
        "selectedColumns": columns,
        "groupBy": {
            "aggregateFunction": "average",
            "groupByKeys": [{"mode": "tag", "groupByData": names.VARIANT}],
        },
    }


def _latest_parent(client: RunStore, experiment_id: str) -> Any | None:
    found = client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{names.ROLE}` = '{names.ROLE_STUDY}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return found[0] if found else None


def prepare_landing(client: MlflowClient, study: str, ui_url: str) -> StudyLinks | None:
    """Mark the study's experiment as model training, store its runs-table view, and return
    the links into `ui_url` (e.g. http://127.0.0.1:5000); None when the study is not there.
    `ablation run` calls it; `ablation ui` only reads (`study_links`)."""
    view = _view(client, study)
    if view is None:
        return None
    experiment, parent, state, key = view
    eid = experiment.experiment_id
    tags = experiment.tags or {}
    if tags.get(EXPERIMENT_KIND) != MODEL_TRAINING:
        client.set_experiment_tag(eid, EXPERIMENT_KIND, MODEL_TRAINING)
    if SHARED_VIEW_PREFIX + key not in tags:
        client.set_experiment_tag(eid, SHARED_VIEW_PREFIX + key, state)
    return _links(study, eid, parent, key, ui_url)


def study_links(client: RunStore, study: str, ui_url: str) -> StudyLinks | None:
    """The links `prepare_landing` returns, read without writing to the store (the view the
    runs link names is the one the study's last `ablation run` stored)."""
    view = _view(client, study)
    if view is None:
        return None
    experiment, parent, _, key = view
    return _links(study, experiment.experiment_id, parent, key, ui_url)


def _view(client: RunStore, study: str) -> tuple[Any, Any | None, str, str] | None:
    """(the study's experiment, its latest parent run, the runs-table view as JSON, its key)."""
    experiment = client.get_experiment_by_name(study)
    if experiment is None:
        return None
    parent = _latest_parent(client, experiment.experiment_id)
    state = json.dumps(view_state(client, experiment.experiment_id, parent), sort_keys=True)
    # The key names the view's content: a changed study gets a new key, an old link keeps its view.
    key = "ablation-" + hashlib.sha256(state.encode()).hexdigest()[:12]
    return experiment, parent, state, key


def _links(study: str, eid: str, parent: Any | None, key: str, ui_url: str) -> StudyLinks:
    base = ui_url.rstrip("/")
    runs = f"{base}/#/experiments/{eid}/runs?workflowType={WORKFLOW}&viewStateShareKey={key}"
    dashboard = None
    if parent is not None:
        dashboard = (
            f"{base}/#/experiments/{eid}/runs/{parent.info.run_id}/artifacts/"
            f"{names.DASHBOARD_ARTIFACT}?workflowType={WORKFLOW}"
        )
    return StudyLinks(study, runs, dashboard)


def study_names(client: RunStore) -> list[str]:
    """The experiments of the store that hold a study's parent run."""
    out = []
    for experiment in client.search_experiments():
        if _latest_parent(client, experiment.experiment_id) is not None:
            out.append(experiment.name)
    return out

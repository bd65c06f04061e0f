"""The MLflow link lands on the study's training runs in a fresh browser profile (real
`mlflow server`, real headless Chromium), not on MLflow's GenAI overview."""

from __future__ import annotations

import html
import re
import tempfile

import pytest
from helpers import CHROMIUM, chromium
from mlflow.tracking import MlflowClient

from ablation.track.landing import (
    EXPERIMENT_KIND,
    MODEL_TRAINING,
    SHARED_VIEW_PREFIX,
    prepare_landing,
    study_links,
    study_names,
)
from ablation.track.reader import open_client


def _study(synthetic_study_frames, log_synthetic_study, uri: str) -> str:
    variants = [
        {"name": "baseline", "effect": 0.0, "levels": {"model.cbam.order": "channel-first"}},
        {"name": "parallel", "effect": -1.0, "levels": {"model.cbam.order": "parallel"}},
    ]
    trials, history = synthetic_study_frames(variants, [0, 1])
    return log_synthetic_study(uri, "landing", trials, history, baseline="baseline")


def test_links_mark_the_experiment_and_store_its_view(
    fresh_mlflow_uri, synthetic_study_frames, log_synthetic_study
):
    parent = _study(synthetic_study_frames, log_synthetic_study, fresh_mlflow_uri)
    client = MlflowClient(fresh_mlflow_uri)
    assert study_names(client) == ["landing"]
    links = prepare_landing(client, "landing", "http://127.0.0.1:5000/")
    exp = client.get_experiment_by_name("landing")
    assert exp.tags[EXPERIMENT_KIND] == MODEL_TRAINING
    key = links.runs.rpartition("viewStateShareKey=")[2]
    view = exp.tags[SHARED_VIEW_PREFIX + key]
    assert "groupBy" in view and "tags.`factor.model.cbam.order`" in view
    assert "metrics.`val_top1_error`" in view
    assert links.runs.startswith(f"http://127.0.0.1:5000/#/experiments/{exp.experiment_id}/runs?")
    assert "workflowType=machine_learning" in links.runs
    assert f"/runs/{parent}/artifacts/dashboard.html" in links.dashboard
    # Idempotent: the same study gives the same link and no new tags.
    assert prepare_landing(client, "landing", "http://127.0.0.1:5000").runs == links.runs
    assert prepare_landing(client, "nope", "http://127.0.0.1:5000") is None
    # `ablation ui`'s links: the same, read through the read-only client.
    assert study_links(open_client(fresh_mlflow_uri), "landing", "http://127.0.0.1:5000") == links


def _dom(url: str, budget_ms: int = 15000) -> str:
    with tempfile.TemporaryDirectory() as profile:  # a fresh browser profile
        out = chromium(
            url,
            profile,
            f"--virtual-time-budget={budget_ms}",
            "--window-size=1600,1000",
            "--dump-dom",
            timeout=120,
        )
    # The page's text: tags and scripts out, whitespace folded.
    body = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", out.stdout, flags=re.S)
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", body)))


@pytest.mark.skipif(CHROMIUM is None, reason="needs chromium")
def test_the_link_opens_the_runs_table_in_a_fresh_browser(
    fresh_mlflow_uri, synthetic_study_frames, log_synthetic_study, start_mlflow_server
):
    _study(synthetic_study_frames, log_synthetic_study, fresh_mlflow_uri)
    url = start_mlflow_server(fresh_mlflow_uri)
    links = prepare_landing(MlflowClient(fresh_mlflow_uri), "landing", url)
    dom = _dom(links.runs)
    # The runs table, trials grouped by variant, with the study's run names and factor column ...
    assert "Model training" in dom and "Runs" in dom
    assert "baseline/seed=0" in dom and "parallel/seed=1" in dom, dom[-3000:]
    assert "Group: baseline" in dom and "factor.model.cbam.order" in dom
    # ... not the GenAI overview.
    assert "Detect Issues" not in dom and "Judges" not in dom and "Sessions" not in dom

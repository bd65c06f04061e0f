"""The MLflow adapter against a real SQLite store written per the names contract."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ablation.cli import build_parser
from ablation.commands.report import main as report_command
from ablation.report import load_runs, summarize, summary_of_runs
from ablation.report.runs import StudyNotFound


def L(kernel: str, pool: str) -> dict:
    return {"model.cbam.kernel_size": kernel, "model.cbam.channel_pool": pool}


VARIANTS = [
    {"name": "none", "effect": 0.0},
    {"name": "k3-avg", "effect": -1.0, "levels": L("3", "avg")},
    {"name": "k7-avg+max", "effect": -2.0, "levels": L("7", "avg+max")},
]


@pytest.fixture
def store(fresh_mlflow_uri, synthetic_study_frames, log_synthetic_study):
    uri = fresh_mlflow_uri
    trials, history = synthetic_study_frames(
        VARIANTS, [0, 1, 2], statuses={("k3-avg", 2): "FAILED", ("k7-avg+max", 1): "STOPPED"}
    )
    parent = log_synthetic_study(uri, "pool-study", trials, history, baseline="none")
    return uri, parent, trials, history


def test_load_runs_reads_back_what_the_runner_writes(store):
    uri, parent, trials, history = store
    runs = load_runs(uri, "pool-study")

    assert runs.parent.run_id == parent
    assert runs.parent.baseline == "none"
    assert runs.parent.metric == "val_top1_error" and runs.parent.metric_mode == "min"
    assert runs.parent.design == "full-factorial"
    assert runs.parent.factors == ["model.cbam.channel_pool", "model.cbam.kernel_size"]

    got = runs.trials.set_index("trial_id").sort_index()
    want = trials.set_index("trial_id").sort_index()
    assert got.index.tolist() == want.index.tolist()
    assert got.variant.tolist() == want.variant.tolist()
    assert got.seed.tolist() == want.seed.tolist()
    assert got.status.tolist() == want.status.tolist()
    assert got.loc[want.status == "FAILED", "error"].str.contains("loss is nan").all()
    # Factor tags are JSON of the level; the frame carries the display label.
    assert set(got["factor.model.cbam.channel_pool"].dropna()) == {"avg", "avg+max"}
    assert got["factor.model.cbam.kernel_size"].isna().sum() == 3  # the named baseline
    np.testing.assert_allclose(got.params.dropna(), want.params.dropna())
    np.testing.assert_allclose(got.epochs_completed, want.epochs_completed)

    h = runs.history.sort_values(["trial_id", "epoch"]).reset_index(drop=True)
    w = history.sort_values(["trial_id", "epoch"]).reset_index(drop=True)
    assert len(h) == len(w)
    for m in ("val_top1_error", "train_loss", "lr"):
        np.testing.assert_allclose(h[m], w[m])
    assert h.epoch.tolist() == w.epoch.tolist()


def test_summary_from_the_store_equals_the_summary_from_the_frames(store):
    uri, _, trials, history = store
    s_store = summary_of_runs(load_runs(uri, "pool-study"), importance=False)
    s_frames = summarize(trials, history, baseline="none")
    a = s_store.comparisons.set_index("variant").sort_index()
    b = s_frames.comparisons.set_index("variant").sort_index()
    pd.testing.assert_series_equal(a.mean_diff, b.mean_diff)
    assert a.verdict.tolist() == b.verdict.tolist()
    v = s_store.variants.set_index("variant")
    assert v.loc["k3-avg", "n_failed"] == 1 and v.loc["k7-avg+max", "n_stopped"] == 1


def test_report_command_writes_and_fails_cleanly(store, tmp_path, capsys):
    uri = store[0]
    out = tmp_path / "r.json"
    figures = tmp_path / "figs"
    args = build_parser().parse_args(
        [
            "report",
            "pool-study",
            "--format",
            "json",
            "-o",
            str(out),
            "--tracking-uri",
            uri,
            "--figures",
            str(figures),
        ]
    )
    assert report_command(args) == 0
    assert json.loads(out.read_text())["study"] == "pool-study"
    pdfs = sorted(p.name for p in figures.glob("*.pdf"))
    assert "forest.pdf" in pdfs and {p.stem for p in figures.glob("*.svg")} == {
        p.removesuffix(".pdf") for p in pdfs
    }
    assert all(p.read_bytes().startswith(b"%PDF") for p in figures.glob("*.pdf"))

    args = build_parser().parse_args(["report", "pool-study", "--tracking-uri", uri])
    assert report_command(args) == 0
    assert "| Description | Params |" in capsys.readouterr().out

    args = build_parser().parse_args(["report", "nope", "--tracking-uri", uri])
    assert report_command(args) == 2
    with pytest.raises(StudyNotFound):
        load_runs(uri, "nope")


def test_order_and_metric_epoch_come_from_the_plan_on_the_parent_run(store):
    from mlflow.tracking import MlflowClient

    from ablation.track import names
    from ablation.track.plan import StudyPlan

    uri, parent, _, _ = store
    runs = load_runs(uri, "pool-study")  # a parent without a plan: one line says what to do
    (note,) = [n for n in runs.notes if "plan" in n]
    assert "rerun `ablation run FILE`" in note
    assert runs.parent.epoch is None and runs.parent.variant_order == []

    plan = StudyPlan(
        study="pool-study",
        study_hash="0" * 16,
        design="full-factorial",
        baseline="none",
        metric="val_top1_error",
        metric_mode="min",
        metric_epoch=2,
        factor_levels={"model.cbam.kernel_size": ["7", "3"]},
        factor_values={"model.cbam.kernel_size": [7, 3]},
        variants=["none", "k7-avg+max", "k3-avg"],
        seeds=[0, 1, 2],
    )
    MlflowClient(uri).log_text(parent, plan.to_json(), names.PLAN_ARTIFACT)
    runs = load_runs(uri, "pool-study")
    assert not [n for n in runs.notes if "plan" in n]
    assert runs.parent.epoch == 2
    assert runs.parent.factor_levels == {"model.cbam.kernel_size": ["7", "3"]}
    assert runs.parent.variant_order == plan.variants
    assert runs.trials.drop_duplicates("variant").variant.tolist() == plan.variants
    assert StudyPlan.from_json(plan.to_json()) == plan


def test_the_parent_run_reads_the_study_settings_from_its_plan():
    from ablation.report.runs import ParentRun
    from ablation.track.plan import StudyPlan

    tags = dict(
        run_id="r",
        experiment_id="1",
        study="s",
        baseline="none",
        metric="val_top1_error",
        metric_mode="min",
        design="full-factorial",
        factors=[],
        optuna_storage=None,
    )
    bare = ParentRun(**tags)
    assert (bare.epoch, bare.factor_levels, bare.variant_order) == (None, {}, [])
    assert bare.decision is None and bare.sequential_seeds is None
    plan = StudyPlan(
        study="s",
        study_hash="0" * 16,
        design="full-factorial",
        baseline="none",
        metric="val_top1_error",
        metric_mode="min",
        metric_epoch=3,
        variants=["none", "cbam"],
        decision={"min_effect": 1.0},
        sequential_seeds={"start": 3, "max": 6},
    )
    planned = ParentRun(**tags, plan=plan)
    assert (planned.epoch, planned.variant_order) == (3, ["none", "cbam"])
    assert planned.decision == {"min_effect": 1.0} and planned.sequential_seeds == (3, 6)

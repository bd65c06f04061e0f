"""`run_study` end to end on a real in-process Ray, a real SQLite MLflow store and Optuna file."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import optuna
import pytest
from helpers import write_study
from mlflow.tracking import MlflowClient

from ablation.run.driver import run_study
from ablation.study import load_study
from ablation.track import names
from ablation.track.plan import StudyPlan


def _children(client: MlflowClient, study: str) -> tuple[object, list]:
    exp = client.get_experiment_by_name(study)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get(names.ROLE) == names.ROLE_STUDY]
    children = [r for r in runs if r.data.tags.get(names.ROLE) == names.ROLE_TRIAL]
    assert len(parents) == 1
    return parents[0], children


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    """The tiny study (2 variants x 2 seeds), run once with 2 trials at a time."""
    folder = tmp_path_factory.mktemp("tiny")
    path = write_study(folder, "tiny")
    uri = f"sqlite:///{folder}/mlflow.db"
    result = run_study(load_study(path), tracking_uri=uri)
    return folder, path, uri, result


def test_tiny_study_records_parent_children_epochs_and_optuna(finished_study):
    folder, path, uri, result = finished_study
    assert result.exit_code == 0
    assert result.concurrency == 2
    assert result.count(names.STATUS_FINISHED) == 4

    client = MlflowClient(uri)
    parent, children = _children(client, "tiny")
    assert parent.info.status == "FINISHED"
    assert parent.data.tags[names.DESIGN] == "full-factorial"
    assert parent.data.tags[names.METRIC] == "val_top1_error"
    assert parent.data.tags[names.STUDY_HASH]
    assert parent.data.tags[f"{names.VERSION_PREFIX}torch"]
    assert [a.path for a in client.list_artifacts(parent.info.run_id, "study")] == [
        "study/tiny.yaml"
    ]
    logged = client.download_artifacts(parent.info.run_id, "study/tiny.yaml", str(folder / "dl"))
    assert Path(logged).read_bytes() == path.read_bytes()
    plan = StudyPlan.from_json(
        Path(
            client.download_artifacts(parent.info.run_id, names.PLAN_ARTIFACT, str(folder))
        ).read_text()
    )
    assert plan.study_hash == parent.data.tags[names.STUDY_HASH]
    assert plan.study_hash == hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    assert plan.variants == ["kernel_size=7", "kernel_size=3"]  # the baseline first
    assert plan.factor_levels == {"model.cbam.kernel_size": ["3", "7"]}
    assert plan.factor_values == {"model.cbam.kernel_size": [3, 7]}
    assert (plan.metric, plan.metric_mode, plan.metric_epoch) == ("val_top1_error", "min", None)
    assert plan.seeds == [0, 1] and plan.design == "full-factorial"

    assert len(children) == 4
    assert {r.info.run_name for r in children} == {
        f"kernel_size={k}/seed={s}" for k in (3, 7) for s in (0, 1)
    }
    for run in children:
        tags, params = run.data.tags, run.data.params
        assert tags[names.PARENT_RUN_ID] == parent.info.run_id
        assert tags[names.STATUS] == names.STATUS_FINISHED
        assert run.info.status == "FINISHED"
        assert tags[names.SEED] in ("0", "1")
        assert tags["factor.model.cbam.kernel_size"] == params["model.cbam.kernel_size"]
        assert params["dataset.name"] == "digits" and params["train.epochs"] == "2"
        history = client.get_metric_history(run.info.run_id, "val_top1_error")
        assert [m.step for m in sorted(history, key=lambda m: m.step)] == [1, 2]
        assert all(0 <= m.value <= 100 for m in history)
        assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 2
        for key in ("params", "gflops", "latency_ms", "train_seconds"):
            assert run.data.metrics[key] > 0
        assert run.data.metrics["epochs_completed"] == 2

    ostudy = optuna.load_study(study_name="tiny", storage=f"sqlite:///{folder}/optuna.db")
    trials = ostudy.get_trials()
    assert len(trials) == 4
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    by_id = {r.data.tags[names.TRIAL_ID]: r for r in children}
    assert {t.user_attrs["trial_id"] for t in trials} == set(by_id)
    for t in trials:
        assert t.value == by_id[t.user_attrs["trial_id"]].data.metrics["val_top1_error"]


def test_rerun_continues_without_training_and_other_study_reuses(finished_study, tmp_path):
    folder, path, uri, first = finished_study
    again = run_study(load_study(path), tracking_uri=uri)
    assert again.exit_code == 0 and again.ray_seconds == 0
    assert again.count("DONE") == 4
    client = MlflowClient(uri)
    assert len(_children(client, "tiny")[1]) == 4

    # Another study with one variant in common (kernel_size=7, seed 0): copied, not trained.
    other = write_study(tmp_path, "other", factors={"model.cbam.kernel_size": [7]}, seeds=[0])
    reused = run_study(load_study(other), tracking_uri=uri)
    assert reused.exit_code == 0 and reused.ray_seconds == 0
    assert reused.count("REUSED") == 1
    (child,) = _children(client, "other")[1]
    source = next(t for t in first.trials if t.variant == "kernel_size=7" and t.seed == 0)
    assert child.data.tags[names.REUSED_FROM] == source.run_id
    assert len(client.get_metric_history(child.info.run_id, "val_top1_error")) == 2


def test_status_counts_a_finished_study(finished_study, capsys):
    from ablation.cli import main

    folder, path, uri, _ = finished_study
    assert main(["status", "tiny", "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert "tiny [FINISHED]: 4/4 done, 0 running, 0 failed, 0 left" in out
    assert "best kernel_size=" in out
    assert main(["status", "--tracking-uri", uri]) == 0
    assert "tiny [FINISHED]" in capsys.readouterr().out
    assert main(["status", "nope", "--tracking-uri", uri]) == 2


def test_a_diverging_variant_fails_with_its_error_and_the_rest_complete(tmp_path):
    path = write_study(
        tmp_path,
        "diverge",
        factors={},
        variants=[{"name": "absurd-lr", "train.optimizer.lr": 1.0e12}],
        baseline="base",
        seeds=[0],
        train={"epochs": 1, "batch_size": 64, "optimizer": {"name": "sgd", "lr": 0.05}},
    )
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = run_study(load_study(path), tracking_uri=uri)
    assert result.exit_code == 1
    statuses = {t.variant: t.status for t in result.trials}
    assert statuses == {"base": names.STATUS_FINISHED, "absurd-lr": names.STATUS_FAILED}
    client = MlflowClient(uri)
    parent, children = _children(client, "diverge")
    assert parent.info.status == "FAILED"
    failed = next(r for r in children if r.data.tags[names.VARIANT] == "absurd-lr")
    assert failed.info.status == "FAILED"
    assert failed.data.tags[names.STATUS] == names.STATUS_FAILED
    assert "finite" in failed.data.tags[names.ERROR].lower()
    ostudy = optuna.load_study(study_name="diverge", storage=f"sqlite:///{tmp_path}/optuna.db")
    states = sorted(t.state.name for t in ostudy.get_trials())
    assert states == ["COMPLETE", "FAIL"]


def test_dry_run_prints_the_trials_and_bad_files_exit_2(tmp_path, capsys):
    from ablation.cli import main

    good = write_study(tmp_path, "dry")
    assert main(["run", str(good), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "kernel_size=3" in out and "kernel_size=7" in out
    assert not (tmp_path / "mlflow.db").exists()

    bad = tmp_path / "bad.yaml"
    bad.write_text(good.read_text().replace("resnet20", "resnet21"))
    assert main(["run", str(bad), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert f"{bad}:" in err and "model.backbone" in err


def test_dry_run_of_the_plugin_example(tmp_path, monkeypatch, capsys):
    # Its data set is the researcher's own: its shape and size come from calling it.
    from ablation.cli import main

    example = Path(__file__).resolve().parents[2] / "experiments" / "plugin-example" / "study.yaml"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert main(["run", str(example), "--dry-run"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "trial_id" in out and out.count("my-gate-k5") >= 3  # two trials and a time line
    assert "10 trials: about" in out


def test_dry_run_of_a_module_of_an_editable_install(tmp_path, capsys):
    # `ablation.attention.simam` comes from this repository's `pip install -e`.
    from ablation.cli import main

    path = write_study(
        tmp_path,
        "editable",
        model={"backbone": "resnet20", "attention": "ablation.attention.simam:SimAM"},
        seeds=[0],
    )
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err
    assert main(["run", str(path), "--dry-run"]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "editable.yaml: OK" in out and "trial_id" in out and "s per trial" in out


def test_a_postgresql_storage_without_its_driver_is_one_line_naming_the_extra(
    tmp_path, capsys, monkeypatch
):
    # Neither driver importable, as after a plain `pip install .` (None in sys.modules blocks
    # an import); nothing is started or written.
    from ablation.cli import main

    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.setitem(sys.modules, "psycopg2", None)
    path = write_study(tmp_path, "nodriver")
    storage = "postgresql://optuna@127.0.0.1:5432/test"
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    argv = ["run", str(path), "--optuna-storage", storage, "--tracking-uri", uri]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install '.[server]'" in err[0], err
    assert not (tmp_path / "mlflow.db").exists()


def test_asha_stops_a_clearly_worse_trial_and_records_it_stopped(tmp_path):
    # One trial at a time, the well-tuned one first: at the first rung the starved learning
    # rates fall below ASHA's cut-off (the rung's median at reduction factor 2) and stop.
    path = write_study(
        tmp_path,
        "asha",
        train={"epochs": 3, "batch_size": 64, "optimizer": {"name": "sgd", "lr": 0.05}},
        factors={"train.optimizer.lr": [0.05, 0.00001, 0.000001]},
        seeds=[0],
        early_stopping={"scheduler": "asha", "grace_epochs": 1, "reduction_factor": 2},
        resources={"cpus_per_trial": 1, "max_concurrent": 1, "max_retries": 0},
    )
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = run_study(load_study(path), tracking_uri=uri)
    assert result.exit_code == 0
    _, children = _children(MlflowClient(uri), "asha")
    by_lr = {float(r.data.params["train.optimizer.lr"]): r for r in children}
    assert len(by_lr) == 3
    best = by_lr[0.05]
    assert best.data.tags[names.STATUS] == names.STATUS_FINISHED
    assert best.data.metrics["epochs_completed"] == 3
    stopped = [r for r in children if r.data.tags[names.STATUS] == names.STATUS_STOPPED]
    assert stopped, {lr: r.data.tags[names.STATUS] for lr, r in by_lr.items()}
    for run in stopped:
        assert run.data.metrics["epochs_completed"] < 3
        assert run.info.status != "RUNNING"

"""One study, one definition: rerunning an edited study file never mixes its trials with the
earlier definition's, and says so before a trial starts (real Ray, SQLite MLflow, Optuna)."""

from __future__ import annotations

import contextlib
import dataclasses
import io

import pytest
from helpers import write_study

from ablation.cli import main
from ablation.report import load_runs, summary_of_runs
from ablation.report.notebook import open_study
from ablation.run.driver import run_study
from ablation.run.plan import change_message, newly_set_aside
from ablation.run.status import study_status
from ablation.study import load_study
from ablation.track.plan import StudyPlan
from ablation.track.reader import open_client

TRAIN = {"batch_size": 64, "optimizer": {"name": "sgd", "lr": 0.05}}


def _run(folder, uri, *, epochs: int, seeds: list[int], **more):
    path = write_study(folder, "edited", train={**TRAIN, "epochs": epochs}, seeds=seeds, **more)
    out = io.StringIO()
    result = run_study(load_study(path), tracking_uri=uri, out=out)
    assert result.exit_code == 0, out.getvalue()
    return result, out.getvalue()


def _dry_run(folder, uri, *, epochs: int, seeds: list[int], **more) -> str:
    """The dry run of the edited file: what it says, and that it wrote nothing to the store."""
    path = write_study(folder, "edited", train={**TRAIN, "epochs": epochs}, seeds=seeds, **more)
    store = folder / "mlflow.db"
    before = store.stat().st_mtime_ns, store.stat().st_size
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["run", str(path), "--dry-run", "--tracking-uri", uri]) == 0
    assert (store.stat().st_mtime_ns, store.stat().st_size) == before
    return out.getvalue()


@pytest.fixture(scope="module")
def edited_study(tmp_path_factory):
    """2 variants x 2 seeds at epochs 1; the same file at epochs 2; then a third seed added."""
    folder = tmp_path_factory.mktemp("edited")
    uri = f"sqlite:///{folder}/mlflow.db"
    runs = [_run(folder, uri, epochs=1, seeds=[0, 1])]
    dry = _dry_run(folder, uri, epochs=2, seeds=[0, 1])
    runs.append(_run(folder, uri, epochs=2, seeds=[0, 1]))
    after_edit = (load_runs(uri, "edited"), study_status(open_client(uri), "edited"))
    runs.append(_run(folder, uri, epochs=2, seeds=[0, 1, 2]))
    # The same file again (the 4 trials of epochs 1 stay set aside), then only its description
    # and resources edited: neither changes a trial.
    runs.append(_run(folder, uri, epochs=2, seeds=[0, 1, 2]))
    resources = {"cpus_per_trial": 1, "max_concurrent": 1, "max_retries": 0}
    execution = {"description": "edited again", "resources": resources}
    execution_dry = _dry_run(folder, uri, epochs=2, seeds=[0, 1, 2], **execution)
    runs.append(_run(folder, uri, epochs=2, seeds=[0, 1, 2], **execution))
    return uri, runs, after_edit, (dry, execution_dry)


def test_an_edited_definition_is_named_before_it_runs_and_its_trials_are_set_aside(edited_study):
    uri, runs, (loaded, status), (dry, _) = edited_study
    (_, first), (second, said) = runs[0], runs[1]
    assert "changed since its last run" not in first
    assert "study edited: 2 variants x 2 seeds = 4 trials" in first
    # Before any trial of the new definition starts: the key, what is kept and set aside.
    assert "train.epochs: 1 -> 2" in said
    assert "keeps 0 finished trials, sets aside 4 of an earlier definition" in said
    assert said.index("train.epochs") < said.index("1/4 done")
    # The dry run says the same before anything runs, and writes nothing.
    assert "train.epochs: 1 -> 2" in dry and "sets aside 4 of an earlier definition" in dry
    assert second.count("FINISHED") == 4

    # The report: 2 seeds per variant at epochs 2 only, and the set-aside count said apart.
    assert len(loaded.trials) == 4 and loaded.set_aside == 4
    assert set(loaded.history.groupby("trial_id").epoch.max()) == {2}
    summary = summary_of_runs(loaded, importance=False)
    assert summary.variants.set_index("variant")["val_top1_error.n"].tolist() == [2, 2]
    assert any("set aside: 4 trials of an earlier definition" in n for n in summary.notes)

    # status: never more done than planned, and the set-aside trials named apart.
    assert (status.done, status.total, status.set_aside) == (4, 4, 4)
    assert "4/4 done" in status.line() and "set aside: 4 trials" in status.line()


def test_adding_a_seed_keeps_every_finished_trial(edited_study, capsys):
    uri, runs, _, _ = edited_study
    third, said = runs[2]
    assert "seeds: [0, 1] -> [0, 1, 2]" in said
    assert "keeps 4 finished trials" in said
    assert third.count("DONE") == 4 and third.count("FINISHED") == 2

    view = open_study("edited", tracking_uri=uri)
    assert len(view.trials) == 6 and sorted(view.trials.seed) == [0, 0, 1, 1, 2, 2]
    assert main(["status", "edited", "--tracking-uri", uri]) == 0
    line = capsys.readouterr().out
    assert "6/6 done" in line and "set aside: 4 trials of an earlier definition" in line
    assert main(["report", "edited", "--tracking-uri", uri, "--format", "json"]) == 0
    assert '"set aside: 4 trials of an earlier definition' in capsys.readouterr().out


def test_an_unchanged_rerun_or_an_execution_only_edit_says_no_change(edited_study):
    _, runs, _, (_, execution_dry) = edited_study
    (again, said), (_, said_after_resources) = runs[3], runs[4]
    assert "changed since" not in said and again.count("DONE") == 6
    assert "changed since" not in said_after_resources
    assert "changed since" not in execution_dry


def test_changed_code_names_no_key_and_offers_no_restoring():
    """The same file whose trial ids changed (new code): said, set-aside trials counted
    once, and no hint that restoring the file would bring them back."""
    before = StudyPlan(
        "s", "h", "full-factorial", None, "acc", "max", None, trial_ids=["a", "b"], definition={}
    )
    now = dataclasses.replace(before, trial_ids=["c", "d"])
    said = change_message(before, now, kept=0, newly_aside=newly_set_aside(before, now, {"a"}))
    assert "no key of the study file; the code or data that shape results did" in said
    assert "sets aside 1 of an earlier definition" in said and "restoring" not in said
    # A trial set aside by an earlier edit (not in the previous plan) is not counted again.
    assert newly_set_aside(before, now, {"x"}) == 0


def test_design_optuna_reports_every_sampled_variant_and_a_rerun_keeps_them(tmp_path):
    """The sampler's variants join the plan's trial ids as it chooses them: the report shows
    them, and running the same file again keeps every one (nothing set aside)."""
    path = write_study(
        tmp_path,
        "sampled",
        design="optuna",
        factors={"model.cbam.kernel_size": [3, 5, 7]},
        search={"sampler": "random", "n_trials": 2, "seed": 0},
        train={**TRAIN, "epochs": 1},
        seeds=[0],
    )
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    first = run_study(load_study(path), tracking_uri=uri, out=io.StringIO())
    assert first.exit_code == 0 and first.count("FINISHED") == 3
    loaded = load_runs(uri, "sampled")
    assert loaded.trials.variant.nunique() == 3 and loaded.set_aside == 0
    assert set(loaded.trials.trial_id) <= set(loaded.parent.plan.trial_ids)

    out = io.StringIO()
    again = run_study(load_study(path), tracking_uri=uri, out=out)
    assert again.count("DONE") == 3 and "changed since its last run" not in out.getvalue()
    dry = io.StringIO()
    with contextlib.redirect_stdout(dry):
        assert main(["run", str(path), "--dry-run", "--tracking-uri", uri]) == 0
    assert "changed since" not in dry.getvalue()
    reloaded = load_runs(uri, "sampled")
    assert len(reloaded.trials) == 3 and reloaded.set_aside == 0

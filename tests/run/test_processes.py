"""Driver processes against a Ray head started here (`ray_head` of tests/run/conftest.py):
a driver killed mid-study and run again, Ctrl-C, a refused token. `ablation submit` as a Ray job
is tests/run/test_submit_plugins.py's (a study with plugins: the plain case and more)."""

from __future__ import annotations

import signal
import time

import optuna
import pytest
from helpers import trial_runs, write_study
from mlflow.tracking import MlflowClient

from ablation.track import names


def test_driver_killed_mid_study_then_rerun_finishes_every_trial_once(
    ray_head, tmp_path, ablation_processes
):
    path = write_study(
        tmp_path,
        "killed",
        train={"epochs": 2, "batch_size": 32, "optimizer": {"name": "sgd", "lr": 0.05}},
        resources={"cpus_per_trial": 1, "max_concurrent": 1, "max_retries": 0},
    )
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    args = ["run", str(path), "--tracking-uri", uri, "--address", ray_head["gcs"]]
    MlflowClient(uri).search_experiments()  # create the store now: the polling below reads it
    first = ablation_processes(*args, env=ray_head["env"])
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and first.poll() is None:
        statuses = [r.data.tags.get(names.STATUS) for r in trial_runs(uri, "killed")]
        if names.STATUS_FINISHED in statuses:
            break
        time.sleep(0.5)
    assert first.poll() is None, first.communicate()[0]
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    before = trial_runs(uri, "killed")
    finished_before = {
        r.data.tags[names.TRIAL_ID]: r.info.run_id
        for r in before
        if r.data.tags.get(names.STATUS) == names.STATUS_FINISHED
    }
    assert 1 <= len(finished_before) < 4

    second = ablation_processes(*args, env=ray_head["env"])
    out, _ = second.communicate(timeout=300)
    assert second.returncode == 0, out
    after = trial_runs(uri, "killed")
    ids = [r.data.tags[names.TRIAL_ID] for r in after]
    assert len(after) == 4 and len(set(ids)) == 4  # one child run per trial, no duplicates
    assert all(r.data.tags[names.STATUS] == names.STATUS_FINISHED for r in after)
    assert all(r.info.status == "FINISHED" for r in after)
    for trial_id, run_id in finished_before.items():  # kept, not rerun
        assert run_id in {r.info.run_id for r in after if r.data.tags[names.TRIAL_ID] == trial_id}

    ostudy = optuna.load_study(study_name="killed", storage=f"sqlite:///{tmp_path}/optuna.db")
    complete = [t for t in ostudy.get_trials() if t.state.name == "COMPLETE"]
    assert sorted(t.user_attrs["trial_id"] for t in complete) == sorted(ids)


def test_ctrl_c_stops_cleanly_says_how_to_resume_and_the_rerun_completes(
    ray_head, tmp_path, ablation_processes
):
    path = write_study(
        tmp_path,
        "interrupted",
        train={"epochs": 3, "batch_size": 32, "optimizer": {"name": "sgd", "lr": 0.05}},
        seeds=[0],
        resources={"cpus_per_trial": 1, "max_concurrent": 1, "max_retries": 0},
    )
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    args = ["run", str(path), "--tracking-uri", uri, "--address", ray_head["gcs"]]
    MlflowClient(uri).search_experiments()
    first = ablation_processes(*args, env=ray_head["env"])
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and first.poll() is None:
        if any(r.info.status == "RUNNING" for r in trial_runs(uri, "interrupted")):
            break
        time.sleep(0.3)
    assert first.poll() is None, first.communicate()[0]
    first.send_signal(signal.SIGINT)
    out, _ = first.communicate(timeout=120)
    assert first.returncode == 1, out
    assert "continue the study with:" in out and f"run {path}" in out, out
    interrupted = trial_runs(uri, "interrupted")
    assert interrupted and all(r.info.status != "RUNNING" for r in interrupted)

    second = ablation_processes(*args, env=ray_head["env"])
    out, _ = second.communicate(timeout=300)
    assert second.returncode == 0, out
    after = trial_runs(uri, "interrupted")
    ids = [r.data.tags[names.TRIAL_ID] for r in after]
    assert len(after) == 2 and len(set(ids)) == 2, out
    assert all(r.data.tags[names.STATUS] == names.STATUS_FINISHED for r in after)


@pytest.mark.parametrize("token", [None, "not-the-clusters-token"], ids=["missing", "wrong"])
def test_a_missing_or_wrong_token_is_one_line_naming_the_variable_exit_2(
    ray_head, tmp_path, token, ablation_processes
):
    path = write_study(tmp_path, "refused", factors={"model.cbam.kernel_size": [7]})
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    env = {k: v for k, v in ray_head["env"].items() if not k.startswith("RAY_AUTH")}
    if token:
        env["RAY_AUTH_TOKEN"] = token
    said = "Invalid authentication token" if token else "Missing authentication token"
    for args, answer in (
        (["submit", str(path), "--address", ray_head["dashboard"], "--no-wait"], said),
        (["run", str(path), "--address", ray_head["gcs"]], "InvalidAuthToken"),
    ):
        proc = ablation_processes(*args, "--tracking-uri", uri, env=env, cwd=tmp_path)
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 2, out
        lines = [ln for ln in out.splitlines() if ln.startswith(f"ablation {args[0]}:")]
        assert len(lines) == 1, out
        assert "Traceback" not in out and answer in lines[0], out
        hint = "refused the token in RAY_AUTH_TOKEN" if token else "set RAY_AUTH_TOKEN"
        assert hint in lines[0], out
    assert not trial_runs(uri, "refused")  # nothing started

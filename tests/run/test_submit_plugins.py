"""A study with plugins on a real local Ray head (`ray_head` of tests/run/conftest.py):
`ablation submit`, where the plugin modules beside the study file travel with the job and its
driver and workers import them there; and `ablation run --address`, where they reach the
cluster's workers in the job's runtime env."""

from __future__ import annotations

from helpers import trial_runs
from test_plugins_run import trimmed_example

from ablation.track import names


def test_submit_carries_the_plugin_folder_to_the_job(ray_head, tmp_path, ablation_processes):
    path = trimmed_example(tmp_path / "lab", "submitted-plugins")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    proc = ablation_processes(
        "submit",
        str(path),
        "--address",
        ray_head["dashboard"],
        "--tracking-uri",
        uri,
        env=ray_head["env"],
        cwd=elsewhere,
    )
    out, _ = proc.communicate(timeout=540)
    assert proc.returncode == 0, out
    assert "submitted study submitted-plugins as Ray job" in out and "ray job logs" in out, out
    assert ray_head["env"]["RAY_AUTH_TOKEN"] not in out
    runs = trial_runs(uri, "submitted-plugins")
    assert len(runs) == 2
    assert all(r.data.tags[names.STATUS] == names.STATUS_FINISHED for r in runs), out
    assert {r.data.params["model.attention"] for r in runs} == {"none", "my_gates:PooledGate"}


def test_run_with_address_ships_the_plugins_to_the_clusters_workers(
    ray_head, tmp_path, ablation_processes
):
    path = trimmed_example(tmp_path / "lab", "address-plugins")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    uri = f"sqlite:///{tmp_path}/store/mlflow.db"
    args = ["run", str(path), "--tracking-uri", uri, "--address", ray_head["gcs"]]
    proc = ablation_processes(*args, env=ray_head["env"], cwd=elsewhere)
    out, _ = proc.communicate(timeout=540)
    assert proc.returncode == 0, out
    runs = trial_runs(uri, "address-plugins")
    assert len(runs) == 2
    assert all(r.data.tags[names.STATUS] == names.STATUS_FINISHED for r in runs), out

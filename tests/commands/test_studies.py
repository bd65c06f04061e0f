"""`ablation studies` (and `ablation status` alone): one line per study in a real store."""

from __future__ import annotations

import re

from mlflow.tracking import MlflowClient

from ablation.cli import main
from ablation.track import names

VARIANTS = [
    {"name": "baseline", "effect": 0.0},
    {"name": "kernel_size=3", "effect": -5.0},
]


def test_every_study_one_line_counts_last_activity_best(
    fresh_mlflow_uri, synthetic_study_frames, log_synthetic_study, capsys
):
    trials, history = synthetic_study_frames(VARIANTS, [0, 1], statuses={("baseline", 1): "FAILED"})
    log_synthetic_study(fresh_mlflow_uri, "alpha", trials, history, baseline="baseline")
    trials, history = synthetic_study_frames(VARIANTS, [0])
    parent = log_synthetic_study(fresh_mlflow_uri, "beta", trials, history, baseline="baseline")
    client = MlflowClient(fresh_mlflow_uri)
    # beta is still running: one more trial started after everything above.
    exp = client.get_experiment_by_name("beta").experiment_id
    client.create_run(
        exp,
        tags={
            names.PARENT_RUN_ID: parent,
            names.ROLE: names.ROLE_TRIAL,
            names.VARIANT: "baseline",
            names.STATUS: names.STATUS_RUNNING,
        },
    )
    client.create_experiment("not-a-study")

    assert main(["studies", "--tracking-uri", fresh_mlflow_uri]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2, lines
    beta, alpha = lines  # the one that moved last first
    assert beta.startswith("beta [FINISHED]: 2 finished, 1 running, 0 failed"), beta
    assert alpha.startswith("alpha [FINISHED]: 3 finished, 0 running, 1 failed"), alpha
    for line in lines:
        assert re.search(r"last activity \d{4}-\d\d-\d\d \d\d:\d\d UTC \(\d+ s ago\)", line), line
        assert "best kernel_size=3 val_top1_error=" in line, line
    assert "(n=2)" in alpha and "(n=1)" in beta

    assert main(["status", "--tracking-uri", fresh_mlflow_uri]) == 0
    again = capsys.readouterr().out.strip().splitlines()
    assert [_timeless(x) for x in again] == [_timeless(x) for x in lines]


def _timeless(line: str) -> str:
    return re.sub(r"\(\d+ s ago\)", "", line)


def test_an_empty_store_says_so(fresh_mlflow_uri, capsys):
    assert main(["studies", "--tracking-uri", fresh_mlflow_uri]) == 0
    store = fresh_mlflow_uri.removeprefix("sqlite:///")
    assert capsys.readouterr().out.strip() == f"no studies in the store sqlite:///{store}"

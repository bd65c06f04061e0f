"""Sequential seeds end to end: real trials (digits, tiny), the driver adds seeds for the
undecided comparison only, is killed with SIGKILL mid-sequence, and a rerun finishes it with
every (variant, seed) FINISHED once; the parent run records the looks the report replays."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path

import yaml
from helpers import trial_runs
from mlflow.tracking import MlflowClient

from ablation.report import study_summary
from ablation.run.outcome import RunResult
from ablation.run.plan import study_plan
from ablation.run.reconcile import StudyTrials
from ablation.run.search import Ledger
from ablation.run.sequential import SeedSequence
from ablation.stats.sequential import CONTINUE
from ablation.study import all_variants, factor_space, load_study, seed_trials
from ablation.track import names
from ablation.track.plan import StudyPlan
from ablation.track.writer import StudyWriter

START, MAX = 3, 4
BASELINE = "kernel_size=7"
SAME = "kernel_size=3"  # differs from the baseline by less than min_effect: undecided
BROKEN = "broken"  # learns nothing (lr 1e-6): worse than the baseline at the first look

STUDY = {
    "dataset": {"name": "digits", "image_size": 8, "train_samples": 400, "val_samples": 200},
    "model": {"backbone": "resnet20", "attention": "cbam"},
    "train": {"epochs": 1, "batch_size": 32, "optimizer": {"name": "adamw", "lr": 0.01}},
    "design": "one-at-a-time",
    "factors": {"model.cbam.kernel_size": [7, 3]},
    "variants": [{"name": BROKEN, "train.optimizer.lr": 1e-6}],
    # Errors are in percent: 1 point is below what 200 validation images can tell apart in
    # 4 seeds, so kernel_size=3 stays undecided to `max`; broken is ~85 points worse.
    "decision": {"min_effect": 1.0},
    "seeds": {"start": START, "max": MAX},
    "resources": {"cpus_per_trial": 1, "max_concurrent": 2, "max_retries": 0},
}


def _write(folder: Path, name: str, **resources) -> Path:
    path = folder / f"{name}.yaml"
    study = {"study": name, **STUDY, "resources": {**STUDY["resources"], **resources}}
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def test_plan_records_decision_and_sequential_seeds_and_later_seeds_map_to_trials(tmp_path):
    study = load_study(_write(tmp_path, "planned"))
    assert study.seeds == [0, 1, 2]
    plan = StudyPlan.from_json(study_plan(study).to_json())
    assert plan.sequential_seeds == {"start": START, "max": MAX}
    assert plan.decision["min_effect"] == 1.0 and plan.decision["alpha"] == 0.05
    assert plan.seeds == [0, 1, 2]

    later = seed_trials(study, [SAME, BASELINE], [3, 4])
    # Seed by seed, baseline first (the order of expand); ids are those of the same trials.
    assert [(t.variant, t.seed) for t in later] == [
        (BASELINE, 3),
        (SAME, 3),
        (BASELINE, 4),
        (SAME, 4),
    ]
    names_ = [v.name for v in all_variants(study)]
    assert len({t.trial_id for t in seed_trials(study, names_, range(MAX))}) == 3 * MAX
    try:
        seed_trials(study, ["nope"], [0])
    except KeyError as err:
        assert "nope" in str(err)
    else:
        raise AssertionError("an unknown variant must be refused")


def _finished_later_seed(uri: str, study: str) -> bool:
    return any(
        r.data.tags.get(names.STATUS) == names.STATUS_FINISHED
        and int(r.data.tags.get(names.SEED, -1)) >= START
        for r in trial_runs(uri, study)
    )


def test_sequence_adds_seeds_for_the_undecided_only_and_survives_kill_9(
    ray_head, tmp_path, ablation_processes
):
    # One trial at a time: the two trials of the later look end seconds apart, so the kill
    # below lands between them even on a loaded machine (two at once ended together there).
    path = _write(tmp_path, "sequence", max_concurrent=1)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    args = ["run", str(path), "--tracking-uri", uri, "--address", ray_head["gcs"]]
    MlflowClient(uri).search_experiments()  # create the store now: the polling below reads it
    # The killed driver's lease is taken over once its heartbeat is LEASE_TIMEOUT s old.
    env = {**ray_head["env"], "ABLATION_LEASE_TIMEOUT": "3", "ABLATION_LEASE_HEARTBEAT": "1"}
    first = ablation_processes(*args, env=env)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and first.poll() is None:
        if _finished_later_seed(uri, "sequence"):
            break
        time.sleep(0.3)
    assert first.poll() is None, first.communicate()[0]
    first.send_signal(signal.SIGKILL)  # mid-sequence: a seed beyond `start` has finished
    first.wait(30)
    time.sleep(4)
    finished_before = {
        r.data.tags[names.TRIAL_ID]: r.info.run_id
        for r in trial_runs(uri, "sequence")
        if r.data.tags.get(names.STATUS) == names.STATUS_FINISHED
    }
    assert 3 * START < len(finished_before) < 3 * START + 2 * (MAX - START)

    second = ablation_processes(*args, env=env)
    out, _ = second.communicate(timeout=300)
    assert second.returncode == 0, out
    after = trial_runs(uri, "sequence")
    assert all(r.data.tags[names.STATUS] == names.STATUS_FINISHED for r in after), out
    pairs = Counter((r.data.tags[names.VARIANT], int(r.data.tags[names.SEED])) for r in after)
    assert set(pairs.values()) == {1}, pairs  # every (variant, seed) once: no duplicate
    seeds = {v: sorted(s for (w, s) in pairs if w == v) for v in (BASELINE, SAME, BROKEN)}
    # Seeds were added for the undecided comparison (and its baseline) only, up to max.
    assert seeds[BROKEN] == list(range(START))
    assert seeds[SAME] == seeds[BASELINE] == list(range(MAX)), seeds
    for trial_id, run_id in finished_before.items():  # kept, not rerun
        assert run_id in {r.info.run_id for r in after if r.data.tags[names.TRIAL_ID] == trial_id}

    # The parent run: the looks as recorded by the driver, the same the report replays.
    client = MlflowClient(uri)
    summary, runs = study_summary(uri, "sequence")
    local = client.download_artifacts(runs.parent.run_id, names.LOOKS_ARTIFACT, str(tmp_path))
    recorded = json.loads(Path(local).read_text())["looks"]
    assert [look["n"] for look in recorded] == list(range(START, MAX + 1))
    first_look = {c["comparison"]: c["decision"] for c in recorded[0]["comparisons"]}
    assert first_look == {SAME: CONTINUE, BROKEN: "worse"}
    assert all([c["comparison"] for c in look["comparisons"]] == [SAME] for look in recorded[1:])
    assert recorded[-1]["comparisons"][0]["decision"] == "undecided"
    assert recorded[-1]["comparisons"][0]["seeds_needed"] > MAX
    assert runs.parent.sequential_seeds == (START, MAX)
    assert runs.parent.decision["min_effect"] == 1.0
    replayed = summary.looks
    rows = zip(replayed["n"], replayed["variant"], replayed["decision"], strict=True)
    assert list(rows) == [
        (look["n"], c["comparison"], c["decision"])
        for look in recorded
        for c in look["comparisons"]
    ]
    by_variant = summary.comparisons.set_index("variant")["decision"].to_dict()
    assert by_variant == {SAME: "undecided", BROKEN: "worse"}


def test_failed_trials_of_a_look_end_the_sequence_undecided_not_in_a_loop(tmp_path):
    """The driver's side without Ray: the looks' trials, fed their ends by hand (the values a
    callback would pass), over a real MLflow store and Optuna storage."""
    study = load_study(_write(tmp_path, "failing"))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    writer = StudyWriter(uri)
    writer.open_study(study, study_plan(study))
    ledger = Ledger(f"sqlite:///{tmp_path}/optuna.db", study, factor_space(study))
    trials = StudyTrials(
        study, writer, ledger, factor_space(study), RunResult("failing", uri, "", "")
    )
    trials.reconcile()
    sequence = SeedSequence(study, trials, writer)

    first = sequence.next_trials()  # no look yet: the first `start` seeds, as pending
    assert first is not None and {t.trial_id for t in first} == {t.trial_id for t in trials.pending}
    # Errors in percent by seed: broken ~80 points worse, kernel_size=3 within noise.
    value = {BASELINE: [10.0, 11.0, 9.5], SAME: [10.5, 10.0, 10.5], BROKEN: [90.0, 90.5, 90.0]}
    for spec in first:
        sequence.handed_out(spec)
        sequence.ended_trial(spec, names.STATUS_FINISHED, value[spec.variant][spec.seed])
    looked = sequence.next_trials()
    assert looked is not None
    assert [(t.variant, t.seed) for t in looked] == [(BASELINE, 3), (SAME, 3)]
    for spec in looked:
        sequence.handed_out(spec)
        sequence.ended_trial(spec, names.STATUS_FAILED, None)
    assert sequence.next_trials() is None and sequence.ended
    assert "kernel_size=3 undecided" in sequence.note and f"{SAME}/seed=3" in sequence.note
    client = MlflowClient(uri)
    local = client.download_artifacts(writer.parent_run_id, names.LOOKS_ARTIFACT, str(tmp_path))
    recorded = json.loads(Path(local).read_text())["looks"]
    assert [look["n"] for look in recorded] == [START]
    decided = {c["comparison"]: c["decision"] for c in recorded[0]["comparisons"]}
    assert decided == {SAME: CONTINUE, BROKEN: "worse"}

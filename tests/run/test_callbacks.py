"""Tune's trial events read once (`TrialEvents`) and handed to destinations that only write."""

from __future__ import annotations

from types import SimpleNamespace

from ablation.run.callbacks import (
    Assigned,
    Destination,
    ResultDestination,
    TrialEnd,
    TrialEvents,
    TrialState,
)
from ablation.run.markers import FAILED, FINAL
from ablation.run.outcome import RunResult
from ablation.track import names

STUDY = SimpleNamespace(
    design="full-factorial", metric=SimpleNamespace(name="val_top1_error", mode="min", epoch=None)
)


class Recorder(Destination):
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def trial_started(self, trial: TrialState) -> None:
        self.events.append(("started", trial.spec.trial_id, trial.run_id))

    def trial_epoch(self, trial: TrialState, epoch: int, values: dict[str, float]) -> None:
        self.events.append(("epoch", trial.spec.trial_id, epoch, values))

    def trial_ended(self, trial: TrialState, end: TrialEnd) -> None:
        self.events.append(("ended", trial.spec.trial_id, trial.run_id, end))

    def settled(self) -> None:
        self.events.append(("settled",))

    def close(self) -> None:
        self.events.append(("close",))


def _events(*trial_ids: str) -> tuple[TrialEvents, Recorder, Recorder, list[str]]:
    assignments = {
        f"tune-{t}": Assigned(SimpleNamespace(trial_id=t, variant="v", seed=i), number=i)
        for i, t in enumerate(trial_ids)
    }
    opened: list[str] = []

    def open_run(spec: SimpleNamespace) -> str:
        opened.append(spec.trial_id)
        return f"run-{spec.trial_id}"

    first, second = Recorder(), Recorder()
    return (
        TrialEvents(assignments, STUDY, [first, second], open_run=open_run),
        first,
        second,
        opened,
    )


def _trial(trial_id: str) -> SimpleNamespace:
    return SimpleNamespace(trial_id=f"tune-{trial_id}", error_file=None)


def test_every_destination_is_handed_the_same_life_of_a_trial_once():
    events, first, second, opened = _events("a")
    trial = _trial("a")
    events.on_trial_start(0, [], trial)
    events.on_trial_start(1, [], trial)  # a restart after a worker failure: not news
    events.on_trial_result(0, [], trial, {"epoch": 1, "val_top1_error": 40.0, "note": "x"})
    events.on_trial_result(0, [], trial, {"epoch": 1, "val_top1_error": 40.0})  # replayed
    final = {"epoch": 2, "val_top1_error": 30.0, "train_seconds": 5.0, FINAL: 1}
    events.on_trial_result(0, [], trial, final)
    events.on_trial_complete(0, [], trial)
    events.on_trial_complete(0, [], trial)  # once ended, ended
    assert first.events == second.events and opened == ["a"]
    started, epoch1, epoch2, ended, settled = first.events
    assert settled == ("settled",)  # after every destination was handed the end
    assert started == ("started", "a", "run-a")
    assert epoch1 == ("epoch", "a", 1, {"val_top1_error": 40.0})
    assert epoch2[2] == 2
    end = ended[3]
    assert ended[:3] == ("ended", "a", "run-a")
    assert end.status == names.STATUS_FINISHED and end.values == [30.0]
    assert end.epochs == 2 and end.metrics["train_seconds"] == 5.0
    assert events.unfinished() == []


def test_failed_stopped_and_killed_trials():
    events, first, _, opened = _events("failed", "stopped", "never", "killed")
    events.on_trial_start(0, [], _trial("failed"))
    events.on_trial_result(0, [], _trial("failed"), {FAILED: "loss is nan"})
    events.on_trial_complete(0, [], _trial("failed"))
    events.on_trial_start(0, [], _trial("stopped"))
    events.on_trial_result(0, [], _trial("stopped"), {"epoch": 1, "val_top1_error": 50.0})
    events.on_trial_complete(0, [], _trial("stopped"))  # no FINAL report: ASHA stopped it
    events.on_trial_error(0, [], _trial("never"))  # failed before it started: gets its run
    assert events.unfinished() == ["tune-killed"]
    events.end_running()  # handed out, never started: KILLED, and no run
    ends = {e[1]: (e[2], e[3]) for e in first.events if e[0] == "ended"}
    assert ends["failed"][1].status == names.STATUS_FAILED
    assert ends["failed"][1].error == "loss is nan" and ends["failed"][1].values is None
    assert ends["stopped"][1].status == names.STATUS_STOPPED and ends["stopped"][1].epochs == 1
    assert ends["never"] == (
        "run-never",
        TrialEnd(names.STATUS_FAILED, {}, 0, ends["never"][1].error, None),
    )
    assert "no error text" in (ends["never"][1].error or "")
    assert ends["killed"] == (None, TrialEnd(names.STATUS_KILLED, {}, 0))
    assert opened == ["failed", "stopped", "never"]
    # An interrupted run closes the destinations; it settles nothing (no view refreshes).
    assert [e[0] for e in first.events[-2:]] == ["ended", "close"]


def test_the_run_result_gets_each_outcome_with_its_run_id():
    result = RunResult("s", "uri", "storage", "parent")
    state = TrialState(Assigned(SimpleNamespace(trial_id="a", variant="v", seed=3), 0), "run-a")
    metrics = {"train_seconds": 2.0, "trial_seconds": 3.0, "worker_pid": 7.0}
    ResultDestination(result).trial_ended(state, TrialEnd(names.STATUS_FINISHED, metrics, 2))
    (outcome,) = result.trials
    assert (outcome.trial_id, outcome.seed, outcome.run_id, outcome.epochs) == ("a", 3, "run-a", 2)
    assert outcome.seconds == 2.0 and outcome.trial_seconds == 3.0
    assert outcome.timing == {"worker_pid": 7.0}

"""The driver's side of Tune's trial events: one place knows a trial's state, destinations write.

`TrialEvents` is the driver's one Tune Callback. It reads Tune's events as a trial's life:
handed out by the searcher (which records it in `Assignments`), started, reporting epochs, and
ended FINISHED (its last report carries FINAL), FAILED (a FAILED report, or an error Tune gave
up retrying), STOPPED (the scheduler, ASHA, ended it early) or KILLED (the run was interrupted:
`end_running`). A trial that starts gets its child run then (a failed one that never started
gets it when it ends), so every destination is handed the trial's run id. Each destination
writes what it is handed and reads nothing another one writes, so their order does not matter;
a view of the store (the live dashboard) refreshes in `settled`, once every destination has
written the event:

    MlflowDestination    each trial's child run: per-epoch metrics, final metrics and status
    OptunaDestination    each trial's Optuna trial: COMPLETE with its objectives, PRUNED or FAIL
    ProgressDestination  the progress view on the terminal
    ResultDestination    the RunResult the driver returns
    LiveDestination      the parent run's summary and dashboard, refreshed while the study runs
    (SequenceDestination, in ablation.run.sequential: the looks of sequential seeds)
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray.tune import Callback

from ablation.run.markers import FAILED, FINAL
from ablation.run.outcome import RunResult, TrialOutcome
from ablation.run.progress import Printer, Progress
from ablation.run.search import Ledger, objective_values
from ablation.track import names
from ablation.track.writer import StudyWriter, numeric

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

    from ablation.study import Study, TrialSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Assigned:
    """A trial the searcher handed to Tune: its spec and its (RUNNING) Optuna trial number."""

    spec: TrialSpec
    number: int


# Tune trial id -> what the searcher handed out under it.
Assignments = dict[str, Assigned]


@dataclass
class TrialState:
    """A trial in flight: what it was handed out as, its child run, what it reported so far."""

    assigned: Assigned
    run_id: str | None = None  # its MLflow child run (None: handed out, never started)
    started: float = field(default_factory=time.monotonic)
    logged_epoch: int = 0
    history: dict[int, dict[str, float]] = field(default_factory=dict)
    final: dict[str, Any] | None = None
    error: str | None = None

    @property
    def spec(self) -> TrialSpec:
        return self.assigned.spec

    @property
    def name(self) -> str:
        return names.run_name(self.spec.variant, self.spec.seed)

    def end_metrics(self) -> dict[str, Any]:
        """The final metrics; for a trial stopped or failed, those of the last epoch reached."""
        metrics = dict(self.final or {})
        if not self.final and self.history:
            metrics.update(self.history[max(self.history)])
        return metrics

    def epochs(self) -> int:
        """The epochs it completed."""
        return int(self.end_metrics().get("epochs_completed") or self.logged_epoch)


@dataclass(frozen=True)
class TrialEnd:
    """How a trial ended, as every destination is handed it."""

    status: str  # FINISHED, STOPPED, FAILED or KILLED
    metrics: dict[str, Any]  # TrialState.end_metrics()
    epochs: int
    error: str | None = None
    values: list[float] | None = None  # its objective values (FINISHED only; None if not finite)


class Destination:
    """Where a trial's events are written; each method does nothing unless overridden."""

    def trial_started(self, trial: TrialState) -> None:
        """The trial started on a worker (once, however often Tune restarts it)."""

    def trial_epoch(self, trial: TrialState, epoch: int, values: dict[str, float]) -> None:
        """The trial reported a new epoch's metrics."""

    def trial_ended(self, trial: TrialState, end: TrialEnd) -> None:
        """The trial ended (once)."""

    def settled(self) -> None:
        """Every destination has written the events so far (after a trial's end, and on each
        turn of Tune's loop): what reads the store may look now."""

    def close(self) -> None:
        """The run ended or was interrupted: finish what is in flight."""


class TrialEvents(Callback):
    """Tune's trial events, read once as each trial's state and handed to the destinations.

    `open_run(spec)` creates the trial's child run and returns its id (`StudyWriter.start_trial`).
    """

    def __init__(
        self,
        assignments: Assignments,
        study: Study,
        destinations: Sequence[Destination],
        *,
        open_run: Callable[[TrialSpec], str],
    ) -> None:
        self.assignments, self.study = assignments, study
        self.destinations = list(destinations)
        self.open_run = open_run
        self.active: dict[str, TrialState] = {}  # Tune trial id -> state
        self.ended: set[str] = set()

    # Tune pickles its callbacks for Tuner.restore, which a study never uses (it resumes from
    # MLflow and Optuna): nothing of these driver-side objects is worth saving.
    def __getstate__(self) -> dict:
        return {}

    def on_trial_start(self, iteration, trials, trial, **info) -> None:  # noqa: ANN001
        # Tune calls this again when it restarts a trial after a worker failure: once is news.
        tune_id = trial.trial_id
        assigned = self.assignments.get(tune_id)
        if assigned is None or tune_id in self.active or tune_id in self.ended:
            return
        state = self.active[tune_id] = TrialState(assigned)
        state.run_id = self.open_run(assigned.spec)
        for destination in self.destinations:
            destination.trial_started(state)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:  # noqa: ANN001
        state = self.active.get(trial.trial_id)
        if state is None:
            return
        if FAILED in result:
            state.error = str(result[FAILED])
            return
        epoch = int(result.get("epoch", 0))
        if FINAL in result:
            state.final = numeric(result)
        if epoch <= state.logged_epoch:  # replayed after a worker restart: seen already
            return
        values = {k: v for k, v in numeric(result).items() if k in names.EPOCH_METRICS}
        state.history[epoch] = values
        state.logged_epoch = epoch
        for destination in self.destinations:
            destination.trial_epoch(state, epoch, values)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:  # noqa: ANN001
        state = self.active.get(trial.trial_id)
        if state is not None and state.error is not None:
            ended = self._end(trial.trial_id, names.STATUS_FAILED, state.error)
        elif state is not None and state.final is not None:
            ended = self._end(trial.trial_id, names.STATUS_FINISHED)
        else:  # the scheduler (ASHA) stopped it
            ended = self._end(trial.trial_id, names.STATUS_STOPPED)
        if ended:
            self._settled()

    def on_trial_error(self, iteration, trials, trial, **info) -> None:  # noqa: ANN001
        if self._ends(trial.trial_id):
            self._end(trial.trial_id, names.STATUS_FAILED, _error_text(trial))
            self._settled()

    def on_step(self, iteration, trials, **info) -> None:  # noqa: ANN001
        self._settled()

    def on_experiment_end(self, trials, **info) -> None:  # noqa: ANN001
        for destination in self.destinations:
            destination.close()

    def end_running(self) -> None:
        """The run was interrupted: every trial handed out and not ended is KILLED, and the
        destinations close (an interrupted run starts no view's refresh)."""
        for tune_id in list(self.assignments):
            self._end(tune_id, names.STATUS_KILLED)
        for destination in self.destinations:
            destination.close()

    def unfinished(self) -> list[str]:
        """The Tune ids handed out and not ended (Tune stopped early: Ctrl-C)."""
        return [tune_id for tune_id in self.assignments if tune_id not in self.ended]

    def _ends(self, tune_id: str) -> bool:
        return tune_id in self.assignments and tune_id not in self.ended

    def _settled(self) -> None:
        for destination in self.destinations:
            destination.settled()

    def _end(self, tune_id: str, status: str, error: str | None = None) -> bool:
        """The trial ends, once (False after); one that failed before it started gets its
        state (and its run)."""
        if not self._ends(tune_id):
            return False
        self.ended.add(tune_id)
        state = self.active.pop(tune_id, None) or TrialState(self.assignments[tune_id])
        if state.run_id is None and status != names.STATUS_KILLED:
            state.run_id = self.open_run(state.spec)  # a KILLED trial never started: no run
        metrics = state.end_metrics()
        values = None
        if status == names.STATUS_FINISHED:
            values = objective_values(self.study, metrics, state.history)
        end = TrialEnd(status, metrics, state.epochs(), error, values)
        for destination in self.destinations:
            destination.trial_ended(state, end)
        return True


class MlflowDestination(Destination):
    """Each trial's child run, through the StudyWriter (the store's one writer)."""

    def __init__(self, writer: StudyWriter) -> None:
        self.writer = writer

    def trial_epoch(self, trial: TrialState, epoch: int, values: dict[str, float]) -> None:
        assert trial.run_id is not None  # opened when the trial started
        self.writer.log_epoch(trial.run_id, values, epoch)

    def trial_ended(self, trial: TrialState, end: TrialEnd) -> None:
        if trial.run_id is None:  # KILLED before it started: nothing worth a run
            return
        self.writer.finish_trial(
            trial.run_id, end.metrics, status=end.status, epoch=end.epochs, error=end.error
        )


class OptunaDestination(Destination):
    """Each trial's Optuna trial (RUNNING since the searcher handed it out) told how it ended."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    def trial_ended(self, trial: TrialState, end: TrialEnd) -> None:
        number = trial.assigned.number
        if end.status == names.STATUS_FINISHED:
            self.ledger.complete(number, end.values)
        elif end.status == names.STATUS_STOPPED:
            self.ledger.prune(number)
        else:
            self.ledger.fail(number)


class ProgressDestination(Destination):
    """The progress view: trials running, epochs reached, trials done, failures said once."""

    def __init__(self, progress: Progress, printer: Printer, metric: str) -> None:
        self.progress, self.printer, self.metric = progress, printer, metric

    def trial_started(self, trial: TrialState) -> None:
        self.progress.start(trial.spec.trial_id, trial.name)
        self.printer.show()

    def trial_epoch(self, trial: TrialState, epoch: int, values: dict[str, float]) -> None:
        self.progress.epoch(trial.spec.trial_id, trial.name, epoch)
        self.printer.show()

    def trial_ended(self, trial: TrialState, end: TrialEnd) -> None:
        spec, status = trial.spec, end.status
        if status == names.STATUS_KILLED:
            self.progress.running.pop(spec.trial_id, None)
        else:
            seconds = (
                end.metrics.get("train_seconds")
                if trial.final
                else time.monotonic() - trial.started
            )
            self.progress.finish(
                spec.trial_id,
                spec.variant,
                end.metrics.get(self.metric) if status in names.DONE_STATUSES else None,
                seconds=seconds,
                failed=status == names.STATUS_FAILED,
            )
        if status == names.STATUS_FAILED:
            last = (end.error or "").strip().splitlines()[-1:] or [""]
            self.printer.say(f"FAILED {trial.name}: {last[0][:200]}")
        self.printer.show()


class ResultDestination(Destination):
    """The RunResult's outcome of each trial that ran."""

    def __init__(self, result: RunResult) -> None:
        self.result = result

    def trial_ended(self, trial: TrialState, end: TrialEnd) -> None:
        outcome = TrialOutcome.of(
            trial.spec, end.status, trial.run_id, end.metrics, epochs=end.epochs, error=end.error
        )
        self.result.trials.append(outcome)


@dataclass
class LiveRefresh:
    """A refresh of what a researcher watches while the study runs, and how often at most.

    `publish` is the run command's (run/ may not import report/ or dashboard/): it makes the
    summary and dashboard of the study as it stands, marked partial, and logs them on the
    parent run. The destination adds up what the refreshes cost: `count`, `seconds` (wall) and
    `cpu_seconds` (the refresh thread's own CPU time: what it can take from the trials).
    """

    publish: Callable[[], object]
    every: float = 60.0  # seconds: at most one refresh per this many
    count: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0


class LiveDestination(Destination):
    """Refresh after a trial ended (once its end is written: `settled`), but at most once per
    `refresh.every` seconds (a trial that ends sooner is shown by the next refresh, started on
    a turn of Tune's loop once the interval has passed). A refresh runs in a thread of its own,
    one at a time, so Tune's loop never waits for it; one that fails is logged and the study
    goes on. The run's end waits for the refresh in flight, so the final report is published
    after it, never overwritten by it."""

    def __init__(self, refresh: LiveRefresh) -> None:
        self.refresh = refresh
        self.due = False
        self.last = -math.inf
        self.thread: threading.Thread | None = None

    def trial_ended(self, trial: TrialState, end: TrialEnd) -> None:
        if end.status != names.STATUS_KILLED:
            self.due = True

    def settled(self) -> None:
        # The trial's end is in the store now, whichever destination wrote it.
        self._maybe_refresh()

    def close(self) -> None:
        self.wait()

    def wait(self) -> None:
        """Until the refresh in flight (if any) is done."""
        if self.thread is not None:
            self.thread.join()

    def _maybe_refresh(self) -> None:
        if not self.due or time.monotonic() - self.last < self.refresh.every:
            return
        if self.thread is not None and self.thread.is_alive():
            return
        self.due, self.last = False, time.monotonic()
        self.thread = threading.Thread(target=self._publish, name="ablation-live", daemon=True)
        self.thread.start()

    def _publish(self) -> None:
        started, cpu = time.monotonic(), time.thread_time()
        try:
            self.refresh.publish()
        except Exception as err:  # a refresh is a view; the study matters more
            log.warning("live refresh of the dashboard failed: %s: %s", type(err).__name__, err)
        finally:
            self.refresh.count += 1
            self.refresh.seconds += time.monotonic() - started
            self.refresh.cpu_seconds += time.thread_time() - cpu


def _error_text(trial: Trial) -> str:
    try:
        if trial.error_file and Path(trial.error_file).is_file():
            return Path(trial.error_file).read_text()
    except OSError:
        pass
    return f"trial {trial.trial_id} failed (no error text; see the Ray logs)"

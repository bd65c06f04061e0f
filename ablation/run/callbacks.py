"""The driver's Tune callbacks: one per destination of what the trials report.

    MlflowCallback    each trial's child run: start, per-epoch metrics, final metrics and status
    OptunaCallback    each trial's Optuna trial: COMPLETE with its objectives, PRUNED or FAIL
    ProgressCallback  the progress view on the terminal
    ResultCallback    the RunResult the driver returns
    LiveCallback      the parent run's summary and dashboard, refreshed while the study runs

They share one reading of Tune's events (`_TrialCallback`): a trial starts (it was handed out
by the searcher, which records it in `Assignments`), reports epochs, and ends FINISHED (its last
report carries FINAL), FAILED (a FAILED report, or an error Tune gave up retrying), STOPPED (the
scheduler, ASHA, ended it early) or KILLED (the run was interrupted: `end_running`). Tune calls
the callbacks in list order, so put MlflowCallback before ResultCallback (which reads run ids).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ray.tune import Callback

from ablation.run.markers import FAILED, FINAL
from ablation.run.outcome import RunResult, TrialOutcome
from ablation.run.progress import Printer, Progress
from ablation.run.search import Ledger, objective_values
from ablation.track import names
from ablation.track.writer import StudyWriter, numeric

log = logging.getLogger(__name__)

_TIMING = ("trial_started_at", "trial_ended_at", "worker_pid")
_DONE = (names.STATUS_FINISHED, names.STATUS_STOPPED)


@dataclass(frozen=True)
class Assigned:
    """A trial the searcher handed to Tune: its spec and its (RUNNING) Optuna trial number."""

    spec: Any
    number: int


# Tune trial id -> what the searcher handed out under it.
Assignments = dict[str, Assigned]


@dataclass
class TrialRecord:
    """One destination's view of a trial in flight."""

    assigned: Assigned
    started: float = field(default_factory=time.monotonic)
    logged_epoch: int = 0
    history: dict[int, dict[str, float]] = field(default_factory=dict)
    final: dict[str, Any] | None = None
    error: str | None = None

    @property
    def spec(self) -> Any:
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
        return int(self.end_metrics().get("epochs_completed") or self.logged_epoch)


class _TrialCallback(Callback):
    """Tune's trial events as started / epoch / ended, for one destination."""

    def __init__(self, assignments: Assignments) -> None:
        self.assignments = assignments
        self.active: dict[str, TrialRecord] = {}  # Tune trial id -> record
        self.ended: set[str] = set()

    # Tune pickles its callbacks for Tuner.restore, which a study never uses (it resumes from
    # MLflow and Optuna): nothing of these driver-side objects is worth saving.
    def __getstate__(self) -> dict:
        return {}

    # -- what a destination does ---------------------------------------------------------------

    def started(self, record: TrialRecord) -> None:
        pass

    def epoch(self, record: TrialRecord, epoch: int, values: dict[str, float]) -> None:
        pass

    def finished(self, record: TrialRecord, status: str, error: str | None) -> None:
        pass

    # -- Tune's events -------------------------------------------------------------------------

    def on_trial_start(self, iteration, trials, trial, **info) -> None:  # noqa: ANN001
        # Tune calls this again when it restarts a trial after a worker failure: once is news.
        tune_id = trial.trial_id
        assigned = self.assignments.get(tune_id)
        if assigned is None or tune_id in self.active or tune_id in self.ended:
            return
        record = self.active[tune_id] = TrialRecord(assigned)
        self.started(record)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:  # noqa: ANN001
        record = self.active.get(trial.trial_id)
        if record is None:
            return
        if FAILED in result:
            record.error = str(result[FAILED])
            return
        epoch = int(result.get("epoch", 0))
        if FINAL in result:
            record.final = numeric(result)
        if epoch <= record.logged_epoch:  # replayed after a worker restart: seen already
            return
        values = {k: v for k, v in numeric(result).items() if k in names.EPOCH_METRICS}
        record.history[epoch] = values
        record.logged_epoch = epoch
        self.epoch(record, epoch, values)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:  # noqa: ANN001
        record = self._pop(trial.trial_id)
        if record is None:
            return
        if record.error is not None:
            self.finished(record, names.STATUS_FAILED, record.error)
        elif record.final is not None:
            self.finished(record, names.STATUS_FINISHED, None)
        else:  # the scheduler (ASHA) stopped it
            self.finished(record, names.STATUS_STOPPED, None)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:  # noqa: ANN001
        record = self._pop(trial.trial_id)
        if record is not None:
            self.finished(record, names.STATUS_FAILED, _error_text(trial))

    def end_running(self) -> None:
        """The run was interrupted: every trial handed out and not ended is KILLED."""
        for tune_id in list(self.assignments):
            record = self._pop(tune_id)
            if record is not None:
                self.finished(record, names.STATUS_KILLED, None)

    def unfinished(self) -> list[str]:
        """The Tune ids handed out and not ended (Tune stopped early: Ctrl-C)."""
        return [tune_id for tune_id in self.assignments if tune_id not in self.ended]

    def _pop(self, tune_id: str) -> TrialRecord | None:
        """The trial's record, now ended; a trial that failed before it started gets one."""
        if tune_id in self.ended or tune_id not in self.assignments:
            return None
        self.ended.add(tune_id)
        return self.active.pop(tune_id, None) or TrialRecord(self.assignments[tune_id])


class MlflowCallback(_TrialCallback):
    """Each trial's child run, through the StudyWriter (the store's one writer)."""

    def __init__(self, assignments: Assignments, writer: StudyWriter) -> None:
        super().__init__(assignments)
        self.writer = writer
        self.run_ids: dict[str, str] = {}  # ablation trial id -> child run id

    def started(self, record: TrialRecord) -> None:
        self.run_ids[record.spec.trial_id] = self.writer.start_trial(record.spec)

    def epoch(self, record: TrialRecord, epoch: int, values: dict[str, float]) -> None:
        self.writer.log_epoch(self.run_ids[record.spec.trial_id], values, epoch)

    def finished(self, record: TrialRecord, status: str, error: str | None) -> None:
        run_id = self.run_ids.get(record.spec.trial_id)
        if run_id is None:  # handed out, never started
            if status == names.STATUS_KILLED:
                return  # nothing happened that is worth a run
            run_id = self.run_ids[record.spec.trial_id] = self.writer.start_trial(record.spec)
        self.writer.finish_trial(
            run_id, record.end_metrics(), status=status, epoch=record.epochs(), error=error
        )


class OptunaCallback(_TrialCallback):
    """Each trial's Optuna trial (RUNNING since the searcher handed it out) told how it ended."""

    def __init__(self, assignments: Assignments, study: Any, ledger: Ledger) -> None:
        super().__init__(assignments)
        self.study, self.ledger = study, ledger

    def finished(self, record: TrialRecord, status: str, error: str | None) -> None:
        number = record.assigned.number
        if status == names.STATUS_FINISHED:
            values = objective_values(self.study, record.end_metrics(), record.history)
            self.ledger.complete(number, values)
        elif status == names.STATUS_STOPPED:
            self.ledger.prune(number)
        else:
            self.ledger.fail(number)


class ProgressCallback(_TrialCallback):
    """The progress view: trials running, epochs reached, trials done, failures said once."""

    def __init__(
        self, assignments: Assignments, progress: Progress, printer: Printer, metric: str
    ) -> None:
        super().__init__(assignments)
        self.progress, self.printer, self.metric = progress, printer, metric

    def started(self, record: TrialRecord) -> None:
        self.progress.start(record.spec.trial_id, record.name)
        self.printer.show()

    def epoch(self, record: TrialRecord, epoch: int, values: dict[str, float]) -> None:
        self.progress.epoch(record.spec.trial_id, record.name, epoch)
        self.printer.show()

    def finished(self, record: TrialRecord, status: str, error: str | None) -> None:
        spec = record.spec
        if status == names.STATUS_KILLED:
            self.progress.running.pop(spec.trial_id, None)
        else:
            final = record.end_metrics()
            seconds = (
                final.get("train_seconds") if record.final else time.monotonic() - record.started
            )
            self.progress.finish(
                spec.trial_id,
                spec.variant,
                final.get(self.metric) if status in _DONE else None,
                seconds=seconds,
                failed=status == names.STATUS_FAILED,
            )
        if status == names.STATUS_FAILED:
            last = (error or "").strip().splitlines()[-1:] or [""]
            self.printer.say(f"FAILED {record.name}: {last[0][:200]}")
        self.printer.show()


class ResultCallback(_TrialCallback):
    """The RunResult's outcome of each trial that ran (`run_ids`: MlflowCallback.run_ids)."""

    def __init__(
        self, assignments: Assignments, result: RunResult, run_ids: Mapping[str, str]
    ) -> None:
        super().__init__(assignments)
        self.result, self.run_ids = result, run_ids

    def finished(self, record: TrialRecord, status: str, error: str | None) -> None:
        spec, final = record.spec, record.end_metrics()
        self.result.trials.append(
            TrialOutcome(
                spec.trial_id,
                spec.variant,
                spec.seed,
                status,
                self.run_ids.get(spec.trial_id),
                epochs=record.epochs(),
                seconds=final.get("train_seconds"),
                trial_seconds=final.get("trial_seconds"),
                timing={k: final[k] for k in _TIMING if k in final},
                error=error,
            )
        )


@dataclass
class LiveRefresh:
    """A refresh of what a researcher watches while the study runs, and how often at most.

    `publish` is the run command's (run/ may not import report/ or dashboard/): it makes the
    summary and dashboard of the study as it stands, marked partial, and logs them on the
    parent run. The callback adds up what the refreshes cost: `count`, `seconds` (wall) and
    `cpu_seconds` (the refresh thread's own CPU time: what it can take from the trials).
    """

    publish: Callable[[], object]
    every: float = 60.0  # seconds: at most one refresh per this many
    count: int = 0
    seconds: float = 0.0
    cpu_seconds: float = 0.0


class LiveCallback(_TrialCallback):
    """Refresh after a trial ended, but at most once per `refresh.every` seconds (a trial that
    ends sooner is shown by the next refresh, started by Tune's next step once the interval has
    passed). A refresh runs in a thread of its own, one at a time, so Tune's loop never waits
    for it; one that fails is logged and the study goes on. The run's end waits for the refresh
    in flight, so the final report is published after it, never overwritten by it."""

    def __init__(self, assignments: Assignments, refresh: LiveRefresh) -> None:
        super().__init__(assignments)
        self.refresh = refresh
        self.due = False
        self.last = -math.inf
        self.thread: threading.Thread | None = None

    def finished(self, record: TrialRecord, status: str, error: str | None) -> None:
        if status != names.STATUS_KILLED:
            self.due = True
            self._maybe_refresh()

    def on_step(self, iteration, trials, **info) -> None:  # noqa: ANN001
        self._maybe_refresh()

    def on_experiment_end(self, trials, **info) -> None:  # noqa: ANN001
        self.wait()

    def end_running(self) -> None:
        super().end_running()
        self.wait()

    def wait(self) -> None:
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


def _error_text(trial: Any) -> str:
    try:
        if trial.error_file and Path(trial.error_file).is_file():
            return Path(trial.error_file).read_text()
    except OSError:
        pass
    return f"trial {trial.trial_id} failed (no error text; see the Ray logs)"

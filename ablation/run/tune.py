"""The Ray Tune glue: the Tuner that runs a study's pending trials, and the Searcher behind it.

The `TrialQueue` decides which trial runs next (the Optuna ledger enqueues and asks it at that
moment); `QueueSearcher` hands it to Tune; Tune runs it on a worker (`ablation.run.trainable`)
with the study's resources, retries and scheduler (ASHA); `TrialEvents` (ablation.run.callbacks)
hands what the trial reports to each destination: MLflow, Optuna, the progress view, the run's
result. `TuneRun` is everything a run works with, passed as one.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray import tune
from ray.tune.search import Searcher

from ablation.run.callbacks import (
    Assigned,
    Assignments,
    Destination,
    LiveDestination,
    LiveRefresh,
    MlflowDestination,
    OptunaDestination,
    ProgressDestination,
    ResultDestination,
    TrialEvents,
)
from ablation.run.outcome import RunResult
from ablation.run.progress import Printer, Progress
from ablation.run.ray_session import slots
from ablation.run.reconcile import StudyTrials
from ablation.run.search import Ledger, TrialQueue
from ablation.run.sequential import WAIT, SeedSequence, SequenceDestination, SequentialQueue
from ablation.study import Study
from ablation.track import names
from ablation.track.writer import StudyWriter

if TYPE_CHECKING:
    from ray.tune.schedulers import ASHAScheduler

    from ablation.study.schema import ResourcesConfig

# Tune's per-trial CSV/JSON/TensorBoard loggers: MLflow is the record, and they cost time.
TUNE_ENV = {
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    # The old reporter at verbose=0 prints nothing (the new one prints a banner regardless).
    "RAY_AIR_NEW_OUTPUT": "0",
}


def set_tune_environment() -> None:
    """Tune's settings that are read from the environment (unless the user set them)."""
    for key, value in TUNE_ENV.items():
        os.environ.setdefault(key, value)


@dataclass(frozen=True)
class TuneRun:
    """What a Tune run of a study works with: the study and its trials, the stores' writers,
    the views, where Tune keeps its results, and the run's options."""

    study: Study
    trials: StudyTrials
    writer: StudyWriter
    ledger: Ledger
    progress: Progress
    printer: Printer
    result: RunResult  # filled in as the trials end
    results_dir: Path
    max_concurrent: int | None = None
    sequence: SeedSequence | None = None  # sequential seeds: the looks add trials
    live: LiveRefresh | None = None


def run_with_tune(run: TuneRun) -> None:
    """Run the pending (and, for design optuna, sampled) trials; sets `result.interrupted`
    when Tune stopped before the study's trials were all handed out and ended. With
    `sequence` (sequential seeds), the looks add trials until the sequence has ended."""
    from ablation.run.trainable import run_trial  # imports torch: only when trials run

    study, result = run.study, run.result
    log_path = run.results_dir / f"{study.study}.log"
    result.log_path = str(log_path)
    res = study.resources
    concurrency = run.max_concurrent or res.max_concurrent or slots(res)
    result.concurrency = run.progress.concurrency = concurrency
    queue = _queue(run)
    assignments: Assignments = {}
    events = TrialEvents(assignments, study, destinations(run), open_run=run.writer.start_trial)
    searcher = QueueSearcher(queue, assignments, trial_config(res))
    tuner = _tuner(run, run_trial, searcher, events, concurrency)
    run.printer.show()
    try:
        # Whatever Tune still prints goes to the log; the progress printer keeps its stream.
        fit_started = time.time()
        with open(log_path, "a") as sink, contextlib.redirect_stdout(sink):
            tuner.fit()
        result.tune_window = (fit_started, time.time())
    except KeyboardInterrupt:
        events.end_running()
        raise
    if events.unfinished():  # Tune stopped early: Ctrl-C (its handler ends fit())
        result.interrupted = True
        events.end_running()
    elif len(queue) or run.trials.samples_left() and queue.may_sample or _still_open(run.sequence):
        result.interrupted = True


def destinations(run: TuneRun) -> list[Destination]:
    """Where the trials' events are written (in any order: none reads another's)."""
    found: list[Destination] = [
        MlflowDestination(run.writer),
        OptunaDestination(run.ledger),
        ProgressDestination(run.progress, run.printer, run.study.metric.name),
        ResultDestination(run.result),
    ]
    if run.sequence is not None:
        found.append(SequenceDestination(run.sequence))
    if run.live is not None:
        found.append(LiveDestination(run.live))
    return found


def _queue(run: TuneRun) -> TrialQueue | SequentialQueue:
    """The trials to hand out: pending, then sampled (design optuna) or a look's (sequential)."""
    trials, progress, printer = run.trials, run.progress, run.printer
    queue = TrialQueue(
        run.ledger,
        trials.pending,
        is_done=lambda trial_id: trial_id in trials.done,
        sample=(lambda: trials.sampler(progress, printer)) if trials.samples_left() else None,
    )
    if run.sequence is None:
        return queue
    return SequentialQueue(queue, run.sequence, trials, progress, printer, run.writer)


def _tuner(
    run: TuneRun,
    trainable: Callable[..., Any],
    searcher: QueueSearcher,
    events: TrialEvents,
    concurrency: int,
) -> tune.Tuner:
    res = run.study.resources
    return tune.Tuner(
        tune.with_resources(trainable, {"cpu": res.cpus_per_trial, "gpu": res.gpus_per_trial}),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=asha(run.study, run.printer),
            num_samples=-1,
            max_concurrent_trials=concurrency,
            # Keep the worker process (torch imported, data cached) for the next trial.
            reuse_actors=True,
            trial_name_creator=lambda t: t.trial_id,
            trial_dirname_creator=lambda t: t.trial_id,
        ),
        run_config=tune.RunConfig(
            name=f"{run.study.study}-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(run.results_dir),
            failure_config=tune.FailureConfig(max_failures=res.max_retries),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=[events],  # a list of its own: Tune adds its own callbacks to it
            verbose=0,
            log_to_file=True,
        ),
    )


def _still_open(sequence: SeedSequence | None) -> bool:
    """Sequential seeds whose looks have not ended (Tune stopped before they did)."""
    return sequence is not None and not sequence.ended


def trial_config(resources: ResourcesConfig) -> dict[str, Any]:
    """What every trial's Tune config carries besides its spec."""
    return {"cpus": resources.cpus_per_trial, "checkpoint": resources.max_retries > 0}


def asha(study: Study, printer: Printer) -> ASHAScheduler | None:
    """The study's early-stopping scheduler, or None."""
    stopping = study.early_stopping
    if stopping is None:
        return None
    from ray.tune.schedulers import ASHAScheduler

    if study.metric.name not in names.EPOCH_METRICS:
        printer.say(f"note: early_stopping ignored: {study.metric.name} is not a per-epoch metric")
        return None
    return ASHAScheduler(
        time_attr="epoch",
        metric=study.metric.name,
        mode=study.metric.mode,
        max_t=study.train.epochs,
        grace_period=stopping.grace_epochs,
        reduction_factor=stopping.reduction_factor,
    )


class QueueSearcher(Searcher):
    """Tune's view of the TrialQueue: `suggest` hands out the next trial, or FINISHED."""

    def __init__(
        self, queue: TrialQueue | SequentialQueue, assignments: Assignments, config: dict
    ) -> None:
        super().__init__(metric=None, mode=None)
        self.queue = queue
        self.assignments = assignments
        self.config = config

    def set_search_properties(self, metric, mode, config, **spec) -> bool:  # noqa: ANN001
        return True

    # See TrialEvents.__getstate__: a study never uses Tuner.restore.
    def __getstate__(self) -> dict:
        return {}

    def suggest(self, trial_id: str) -> dict | str | None:
        item = self.queue.next()
        if item is None:
            return self.FINISHED
        if item == WAIT:  # sequential seeds: the look's trials are still running
            return None
        spec, number = item
        self.assignments[trial_id] = Assigned(spec, number)
        return {
            "spec": {
                "trial_id": spec.trial_id,
                "variant": spec.variant,
                "seed": spec.seed,
                "config": spec.config,
            },
            **self.config,
        }

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        pass  # recorded by TrialEvents (it sees the error text)

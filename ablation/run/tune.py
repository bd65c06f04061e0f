"""The Ray Tune glue: the Tuner that runs a study's pending trials, and the Searcher behind it.

The `TrialQueue` decides which trial runs next (the Optuna ledger enqueues and asks it at that
moment); `QueueSearcher` hands it to Tune; Tune runs it on a worker (`ablation.run.trainable`)
with the study's resources, retries and scheduler (ASHA); the callbacks (ablation.run.callbacks)
take what the trial reports to MLflow, Optuna, the progress view and the run's result.
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.search import Searcher

from ablation.run.callbacks import (
    Assigned,
    Assignments,
    LiveCallback,
    LiveRefresh,
    MlflowCallback,
    OptunaCallback,
    ProgressCallback,
    ResultCallback,
)
from ablation.run.outcome import RunResult
from ablation.run.progress import Printer, Progress
from ablation.run.ray_session import slots
from ablation.run.reconcile import StudyTrials
from ablation.run.search import Ledger, TrialQueue
from ablation.run.sequential import WAIT, SeedSequence, SequenceCallback, SequentialQueue
from ablation.track import names
from ablation.track.writer import StudyWriter

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


def run_with_tune(
    study: Any,
    trials: StudyTrials,
    writer: StudyWriter,
    ledger: Ledger,
    progress: Progress,
    printer: Printer,
    result: RunResult,
    *,
    results_dir: Path,
    max_concurrent: int | None,
    sequence: SeedSequence | None = None,
    live: LiveRefresh | None = None,
) -> None:
    """Run the pending (and, for design optuna, sampled) trials; sets `result.interrupted`
    when Tune stopped before the study's trials were all handed out and ended. With
    `sequence` (sequential seeds), the looks add trials until the sequence has ended."""
    from ablation.run.trainable import run_trial  # imports torch: only when trials run

    log_path = results_dir / f"{study.study}.log"
    result.log_path = str(log_path)
    res = study.resources
    concurrency = max_concurrent or res.max_concurrent or slots(res)
    result.concurrency = progress.concurrency = concurrency
    queue = TrialQueue(
        ledger,
        trials.pending,
        is_done=lambda trial_id: trial_id in trials.done,
        sample=(lambda: trials.sampler(progress, printer)) if trials.samples_left() else None,
    )
    if sequence is not None:
        queue = SequentialQueue(queue, sequence, trials, progress, printer, writer)
    assignments: Assignments = {}
    mlflow = MlflowCallback(assignments, writer)
    outcomes = ResultCallback(assignments, result, mlflow.run_ids)
    callbacks = [
        mlflow,  # first: the others may read its run ids
        OptunaCallback(assignments, study, ledger),
        ProgressCallback(assignments, progress, printer, study.metric.name),
        outcomes,
    ]
    if sequence is not None:
        callbacks.append(SequenceCallback(assignments, study, sequence))
    if live is not None:  # last: it reads what the others wrote
        callbacks.append(LiveCallback(assignments, live))
    searcher = QueueSearcher(queue, assignments, trial_config(res))
    tuner = tune.Tuner(
        tune.with_resources(run_trial, {"cpu": res.cpus_per_trial, "gpu": res.gpus_per_trial}),
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=asha(study, printer),
            num_samples=-1,
            max_concurrent_trials=concurrency,
            # Keep the worker process (torch imported, data cached) for the next trial.
            reuse_actors=True,
            trial_name_creator=lambda t: t.trial_id,
            trial_dirname_creator=lambda t: t.trial_id,
        ),
        run_config=tune.RunConfig(
            name=f"{study.study}-{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(results_dir),
            failure_config=tune.FailureConfig(max_failures=res.max_retries),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
            callbacks=list(callbacks),  # Tune adds its own to the list it is given
            verbose=0,
            log_to_file=True,
        ),
    )
    printer.show()
    try:
        # Whatever Tune still prints goes to the log; the progress printer keeps its stream.
        fit_started = time.time()
        with open(log_path, "a") as sink, contextlib.redirect_stdout(sink):
            tuner.fit()
        result.tune_window = (fit_started, time.time())
    except KeyboardInterrupt:
        _end_running(callbacks)
        raise
    if outcomes.unfinished():  # Tune stopped early: Ctrl-C (its handler ends fit())
        result.interrupted = True
        _end_running(callbacks)
    elif len(queue) or trials.samples_left() and queue.may_sample or _still_open(sequence):
        result.interrupted = True


def _still_open(sequence: SeedSequence | None) -> bool:
    """Sequential seeds whose looks have not ended (Tune stopped before they did)."""
    return sequence is not None and not sequence.ended


def _end_running(callbacks: list[Any]) -> None:
    for callback in callbacks:
        callback.end_running()


def trial_config(resources: Any) -> dict[str, Any]:
    """What every trial's Tune config carries besides its spec."""
    return {"cpus": resources.cpus_per_trial, "checkpoint": resources.max_retries > 0}


def asha(study: Any, printer: Printer) -> Any:
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

    # See _TrialCallback.__getstate__: a study never uses Tuner.restore.
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
        pass  # recorded by the callbacks (they see the error text)

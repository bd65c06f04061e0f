"""`ablation run`: the driver of a study.

    study file -> trials still to run -> Ray Tune (workers train) -> MLflow + Optuna (driver)

The driver is the only writer of both stores. It finds what an earlier run of the same study
left (finished child runs are kept; runs left RUNNING, KILLED or FAILED are deleted and their
trials run again), reuses trials finished in other studies of the same store, then lets Ray
Tune run the rest: a Tune `Searcher` hands out the next trial (the Optuna ledger enqueues and
asks it at that moment), and a Tune `Callback` records each result as it arrives.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import secrets
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ray.tune import Callback
from ray.tune.search import Searcher

from ablation.run.progress import Printer, Progress
from ablation.run.search import Ledger, TrialQueue, objective_values, sampled_variants
from ablation.track import names, stores
from ablation.track.writer import StudyWriter, TrialRun, numeric

log = logging.getLogger(__name__)

# Tune's per-trial CSV/JSON/TensorBoard loggers: MLflow is the record, and they cost time.
_TUNE_ENV = {
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    # The old reporter at verbose=0 prints nothing (the new one prints a banner regardless).
    "RAY_AIR_NEW_OUTPUT": "0",
}
_TIMING = ("trial_started_at", "trial_ended_at", "worker_pid")
# Imported by every worker of a cluster the driver starts, before any trial reaches it.
_PRELOAD = ("torch", "ablation.run.trainable")
_DONE = (names.STATUS_FINISHED, names.STATUS_STOPPED)


@dataclass
class TrialOutcome:
    trial_id: str
    variant: str
    seed: int
    status: str  # FINISHED, STOPPED, FAILED, KILLED, REUSED, DONE (finished in an earlier run)
    run_id: str | None = None
    epochs: int = 0
    seconds: float | None = None  # the trial's own training time (train_seconds)
    trial_seconds: float | None = None  # all of train_trial in the worker (data, model, profile)
    timing: dict[str, float] = field(default_factory=dict)  # trial_started_at/_ended_at, worker_pid
    error: str | None = None


@dataclass
class RunResult:
    """What a run did. `exit_code`: 0 all trials finished (early-stopped included), 1 a trial
    failed or the run was interrupted."""

    study: str
    tracking_uri: str
    optuna_storage: str
    parent_run_id: str
    trials: list[TrialOutcome] = field(default_factory=list)
    interrupted: bool = False
    wall_seconds: float = 0.0
    ray_seconds: float = 0.0  # wall time of the Tune part (0 when nothing had to run)
    tune_window: tuple[float, float] | None = None  # wall clock (time.time) of Tuner.fit
    concurrency: int = 1
    log_path: str | None = None

    def count(self, *statuses: str) -> int:
        return sum(t.status in statuses for t in self.trials)

    @property
    def exit_code(self) -> int:
        return 1 if self.interrupted or self.count(names.STATUS_FAILED) else 0


# -- the library entry point ------------------------------------------------------------------


def run_study(
    study_path: str | os.PathLike[str],
    *,
    tracking_uri: str | None = None,
    address: str | None = None,
    max_concurrent: int | None = None,
    optuna_storage: str | None = None,
    study: Any = None,
    out: TextIO | None = None,
) -> RunResult:
    """Run (or continue) the study in `study_path`; raises StudyError for a bad file."""
    from ablation.study import factor_space, load_study

    started = time.monotonic()
    out = out or sys.stdout
    study = study or load_study(study_path)
    uri = stores.tracking_uri(tracking_uri, study.tracking.uri)
    storage, note = stores.optuna_storage(uri, optuna_storage, study.search.storage)
    if note:
        print(note, file=out)
    _ensure_sqlite_dir(uri)
    _ensure_sqlite_dir(storage)
    # Ray first: its workers import torch while the stores are opened and reconciled.
    for key, value in _TUNE_ENV.items():
        os.environ.setdefault(key, value)
    log_path = stores.results_dir(uri) / f"{study.study}.log"
    session = _start_ray(address, log_path)
    print(f"Ray output: {log_path}" + (f" and {session}/logs" if session else ""), file=out)

    # Creating a new store's tables is worth a line in the log file, not two on the terminal.
    for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)
    writer = StudyWriter(uri)
    parent_run_id, resumed = writer.open_study(study, study_path, optuna_storage=storage)
    space = factor_space(study) if study.factors else {}
    ledger = Ledger(storage, study, space)
    result = RunResult(study.study, uri, storage, parent_run_id)
    plan = _Plan(study, writer, ledger, space, result)
    plan.reconcile()
    writer.set_total(len(plan.known) + plan.sample_budget() * len(study.seeds))

    progress = Progress(
        study=study.study,
        total=len(plan.known),
        metric=study.metric.name,
        mode=study.metric.mode,
        concurrency=1,
    )
    for spec, run in plan.done.items():
        progress.finish(spec, plan.variant_of[spec], run.metrics.get(study.metric.name))
    printer = Printer(progress, out)
    if resumed:
        printer.say(
            f"continuing study {study.study}: {progress.done} of {len(plan.known)} known trials "
            f"done ({result.count('REUSED')} reused from other studies)"
        )

    status = "FINISHED"
    try:
        if plan.pending or plan.samples_left():
            result.ray_seconds = -time.monotonic()
            _run_with_tune(
                study,
                plan,
                writer,
                ledger,
                progress,
                printer,
                result,
                max_concurrent=max_concurrent,
            )
            result.ray_seconds += time.monotonic()
        else:
            printer.show()
    except KeyboardInterrupt:
        result.interrupted = True
        raise
    except BaseException:
        status = "FAILED"  # the driver itself broke: say so on the parent run
        raise
    finally:
        printer.close()
        if result.interrupted:
            status = "KILLED"
        elif result.count(names.STATUS_FAILED):
            status = "FAILED"
        writer.close_study(status)
        result.wall_seconds = time.monotonic() - started
    return result


def _ensure_sqlite_dir(uri: str) -> None:
    folder = stores.sqlite_dir(uri)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)


class _Plan:
    """Which trials the study has, which are done, which still have to run."""

    def __init__(
        self, study: Any, writer: StudyWriter, ledger: Ledger, space: dict, result: RunResult
    ):
        self.study, self.writer, self.ledger, self.space, self.result = (
            study,
            writer,
            ledger,
            space,
            result,
        )
        self.known: dict[str, Any] = {}  # trial id -> TrialSpec, in run order
        self.done: dict[str, TrialRun] = {}
        self.pending: list[Any] = []
        self.variant_of: dict[str, str] = {}
        self._sampled_before: list[dict[str, Any]] = []

    def _add(self, specs: list[Any]) -> None:
        for spec in specs:
            self.known.setdefault(spec.trial_id, spec)
            self.variant_of[spec.trial_id] = spec.variant

    def reconcile(self) -> None:
        from ablation.study import expand, trials_for_variant, variant_from_levels

        study, writer, ledger = self.study, self.writer, self.ledger
        self._add(expand(study))
        ledger.recover()
        if study.design == "optuna":
            designed = [spec.levels for spec in self.known.values()]  # e.g. the baseline
            self._sampled_before = [lv for lv in ledger.sampled_levels() if lv not in designed]
            for levels in self._sampled_before:
                self._add(trials_for_variant(study, variant_from_levels(study, levels)))

        # This study's child runs: keep the finished, delete the stale (their trials rerun).
        for trial_id, runs in writer.trial_runs().items():
            finished = [r for r in runs if r.status in _DONE]
            for run in runs:
                if not finished or run is not finished[0]:
                    writer.discard(run.run_id)
            if finished and trial_id in self.known:
                self.done[trial_id] = finished[0]
        # Finished in another study of this store: copy, don't retrain.
        todo = [t for t in self.known if t not in self.done]
        for trial_id, source in writer.find_finished_elsewhere(todo).items():
            spec = self.known[trial_id]
            run_id = writer.copy_reused(spec, source)
            self.done[trial_id] = TrialRun(run_id, trial_id, names.STATUS_FINISHED, source.metrics)
            self._outcome(spec, "REUSED", run_id, source)
        # Every done trial has its COMPLETE (or PRUNED) Optuna trial.
        in_optuna = ledger.trials_by_id()
        for trial_id, run in self.done.items():
            spec = self.known[trial_id]
            if trial_id not in {o.trial_id for o in self.result.trials}:
                self._outcome(spec, "DONE", run.run_id, run)
            states = {t.state.name for t in in_optuna.get(trial_id, [])}
            if not states & {"COMPLETE", "PRUNED"}:
                values = objective_values(study, run.metrics, {})
                ledger.record(spec, values)
        self.pending = [s for t, s in self.known.items() if t not in self.done]

    def _outcome(self, spec: Any, status: str, run_id: str, run: TrialRun) -> None:
        self.result.trials.append(
            TrialOutcome(
                spec.trial_id,
                spec.variant,
                spec.seed,
                status,
                run_id,
                epochs=int(run.metrics.get("epochs_completed", 0)),
                seconds=run.metrics.get("train_seconds"),
            )
        )

    def samples_left(self) -> bool:
        return self.sample_budget() > 0

    def sample_budget(self) -> int:
        """How many more variants the sampler may choose."""
        return self._budget() if self.study.design == "optuna" else 0

    def _budget(self) -> int:
        if not self.space:
            return 0
        size = math.prod(len(v) for v in self.space.values())
        wanted = self.study.search.n_trials or size
        return max(0, min(wanted, size) - len(self._sampled_before))

    def sampler(self, progress: Progress, printer: Printer) -> Iterator[tuple[int, list[Any]]]:
        from ablation.study import trials_for_variant, variant_from_levels

        def make_specs(levels: dict[str, Any]) -> list[Any]:
            return trials_for_variant(self.study, variant_from_levels(self.study, levels))

        known = list(self._sampled_before)
        for spec in self.known.values():
            if spec.levels and spec.levels not in known:
                known.append(spec.levels)
        for number, specs in sampled_variants(
            self.study,
            self.ledger,
            self.space,
            budget=self._budget(),
            known=known,
            make_specs=make_specs,
        ):
            self._add(specs)
            progress.grow(len(specs))
            printer.say(f"sampler chose {specs[0].variant}")
            yield number, specs


# -- Ray Tune -------------------------------------------------------------------------------


def _run_with_tune(
    study: Any,
    plan: _Plan,
    writer: StudyWriter,
    ledger: Ledger,
    progress: Progress,
    printer: Printer,
    result: RunResult,
    *,
    max_concurrent: int | None,
) -> None:
    import ray
    from ray import tune

    from ablation.run.trainable import run_trial

    results_dir = stores.results_dir(result.tracking_uri)
    log_path = results_dir / f"{study.study}.log"
    result.log_path = str(log_path)

    res = study.resources
    concurrency = max_concurrent or res.max_concurrent or _slots(ray, res)
    result.concurrency = progress.concurrency = concurrency
    queue = TrialQueue(
        ledger,
        plan.pending,
        is_done=lambda trial_id: trial_id in plan.done,
        sample=(lambda: plan.sampler(progress, printer)) if plan.samples_left() else None,
    )
    recorder = _Recorder(study, writer, ledger, progress, printer, result, res)
    scheduler = _asha(study, printer)
    resources = {"cpu": res.cpus_per_trial, "gpu": res.gpus_per_trial}
    tuner = tune.Tuner(
        tune.with_resources(run_trial, resources),
        tune_config=tune.TuneConfig(
            search_alg=_QueueSearcher(queue, recorder.start),
            scheduler=scheduler,
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
            callbacks=[recorder],
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
        recorder.kill_running()
        raise
    if recorder.active:  # Tune stopped early: Ctrl-C (its handler ends fit() gracefully)
        result.interrupted = True
        recorder.kill_running()
    elif len(queue) or plan.samples_left() and queue._sample is not None:
        result.interrupted = True


def _slots(ray: Any, res: Any) -> int:
    total = ray.cluster_resources()
    slots = int(total.get("CPU", 1) // res.cpus_per_trial)
    if res.gpus_per_trial:
        slots = min(slots, int(total.get("GPU", 0) // res.gpus_per_trial))
    return max(1, slots)


def _asha(study: Any, printer: Printer) -> Any:
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


def _start_ray(address: str | None, log_file: Path) -> Path | None:
    """Start (or join) Ray quietly; Ray's and Tune's own messages go to `log_file`.

    A cluster started here preloads torch and the trial code in every worker process as it
    starts: the workers import while the driver opens the stores, and a trial's first epoch
    does not wait for `import torch` (seconds per worker). Returns the Ray session directory
    when there is a local one.
    """
    import ray

    log_file.parent.mkdir(parents=True, exist_ok=True)
    if not ray.is_initialized():
        if address is None and not (
            os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
        ):
            # A fresh local cluster with token auth: give it a token of its own, so Ray does
            # not write one into ~/.ray (Ray turns token mode on, RAY_AUTH_MODE being unset).
            os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
        # Ray caches the token it first read in this process; a process that starts or joins
        # a second cluster (a notebook, a test session) must read the current one.
        from ray._raylet import AuthenticationTokenLoader

        AuthenticationTokenLoader.instance().reset_cache()
        options: dict[str, Any] = {}
        if address is None:
            options["include_dashboard"] = False
            options["_system_config"] = {"preload_python_modules": list(_PRELOAD)}
        # ray.init resets Ray's loggers and warns through Python's last-resort handler.
        with open(log_file, "a") as sink, contextlib.redirect_stderr(sink):
            ray.init(
                address=address,
                log_to_driver=False,
                logging_level=logging.WARNING,
                configure_logging=False,
                **options,
            )
    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("ray", "ray.tune", "ray.train", "ray.air"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False
        logger.setLevel(logging.INFO)
    try:
        return Path(ray._private.worker._global_node.get_session_dir_path())
    except Exception:  # joined through ray:// (no local node)
        return None


class _QueueSearcher(Searcher):
    """Tune's view of the TrialQueue: `suggest` hands out the next trial, or FINISHED."""

    def __init__(self, queue: TrialQueue, start: Any) -> None:
        super().__init__(metric=None, mode=None)
        self.queue = queue
        self._start = start

    def set_search_properties(self, metric, mode, config, **spec) -> bool:  # noqa: ANN001
        return True

    # Tune pickles its searcher and callbacks for Tuner.restore, which a study never uses (it
    # resumes from MLflow and Optuna): nothing of these driver-side objects is worth saving.
    def __getstate__(self) -> dict:
        return {}

    def suggest(self, trial_id: str) -> dict | str | None:
        item = self.queue.next()
        if item is None:
            return self.FINISHED
        spec, number = item
        return self._start(trial_id, spec, number)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        pass  # recorded by _Recorder (it sees the error text)


@dataclass
class _Active:
    spec: Any
    run_id: str
    number: int  # Optuna trial number
    started: float
    logged_epoch: int = 0
    history: dict[int, dict[str, float]] = field(default_factory=dict)
    final: dict[str, Any] | None = None
    error: str | None = None


class _Recorder(Callback):
    """Tune callback in the driver: each trial's start, epochs and end to MLflow and Optuna."""

    def __init__(self, study, writer, ledger, progress, printer, result, resources) -> None:  # noqa: ANN001
        self.study, self.writer, self.ledger = study, writer, ledger
        self.progress, self.printer, self.result = progress, printer, result
        self.resources = resources
        self.active: dict[str, _Active] = {}

    def __getstate__(self) -> dict:  # see _QueueSearcher.__getstate__
        return {}

    def start(self, tune_id: str, spec: Any, number: int) -> dict[str, Any]:
        run_id = self.writer.start_trial(spec)
        self.active[tune_id] = _Active(spec, run_id, number, time.monotonic())
        self.progress.start(spec.trial_id, names.run_name(spec.variant, spec.seed))
        self.printer.show()
        return {
            "spec": {
                "trial_id": spec.trial_id,
                "variant": spec.variant,
                "seed": spec.seed,
                "config": spec.config,
            },
            "cpus": self.resources.cpus_per_trial,
            "checkpoint": self.resources.max_retries > 0,
        }

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:  # noqa: ANN001
        from ablation.run.trainable import FAILED, FINAL

        a = self.active.get(trial.trial_id)
        if a is None:
            return
        if FAILED in result:
            a.error = str(result[FAILED])
            return
        epoch = int(result.get("epoch", 0))
        if FINAL in result:
            a.final = numeric(result)
        if epoch <= a.logged_epoch:  # replayed after a worker restart: logged already
            return
        values = {k: v for k, v in numeric(result).items() if k in names.EPOCH_METRICS}
        self.writer.log_epoch(a.run_id, values, epoch)
        a.history[epoch] = values
        a.logged_epoch = epoch
        self.progress.epoch(a.spec.trial_id, names.run_name(a.spec.variant, a.spec.seed), epoch)
        self.printer.show()

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:  # noqa: ANN001
        a = self.active.pop(trial.trial_id, None)
        if a is None:
            return
        if a.error is not None:
            self._end(a, names.STATUS_FAILED, error=a.error)
        elif a.final is not None:
            self._end(a, names.STATUS_FINISHED)
        else:  # the scheduler (ASHA) stopped it
            self._end(a, names.STATUS_STOPPED)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:  # noqa: ANN001
        a = self.active.pop(trial.trial_id, None)
        if a is not None:
            self._end(a, names.STATUS_FAILED, error=_error_text(trial))

    def kill_running(self) -> None:
        for tune_id in list(self.active):
            self._end(self.active.pop(tune_id), names.STATUS_KILLED)

    def _end(self, a: _Active, status: str, *, error: str | None = None) -> None:
        spec = a.spec
        final = dict(a.final or {})
        if not a.final and a.history:  # stopped or failed: the last epoch reached
            final.update(a.history[max(a.history)])
        epoch = int(final.get("epochs_completed") or a.logged_epoch)
        self.writer.finish_trial(a.run_id, final, status=status, epoch=epoch, error=error)
        if status == names.STATUS_FINISHED:
            self.ledger.complete(a.number, objective_values(self.study, final, a.history))
        elif status == names.STATUS_STOPPED:
            self.ledger.prune(a.number)
        else:
            self.ledger.fail(a.number)
        seconds = final.get("train_seconds") if a.final else time.monotonic() - a.started
        self.result.trials.append(
            TrialOutcome(
                spec.trial_id,
                spec.variant,
                spec.seed,
                status,
                a.run_id,
                epochs=epoch,
                seconds=final.get("train_seconds"),
                trial_seconds=final.get("trial_seconds"),
                timing={k: final[k] for k in _TIMING if k in final},
                error=error,
            )
        )
        value = final.get(self.study.metric.name) if status in _DONE else None
        if status != names.STATUS_KILLED:
            self.progress.finish(
                spec.trial_id,
                spec.variant,
                value,
                seconds=seconds,
                failed=status == names.STATUS_FAILED,
            )
        else:
            self.progress.running.pop(spec.trial_id, None)
        if status == names.STATUS_FAILED:
            last = (error or "").strip().splitlines()[-1:] or [""]
            self.printer.say(f"FAILED {names.run_name(spec.variant, spec.seed)}: {last[0][:200]}")
        self.printer.show()


def _error_text(trial: Any) -> str:
    try:
        if trial.error_file and Path(trial.error_file).is_file():
            return Path(trial.error_file).read_text()
    except OSError:
        pass
    return f"trial {trial.trial_id} failed (no error text; see the Ray logs)"

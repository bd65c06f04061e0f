"""`ablation run`: the driver of a study.

    loaded study -> trials still to run -> Ray Tune (workers train) -> MLflow + Optuna (driver)

The driver is the only writer of both stores. `run_study` reads top to bottom: open the stores
and the parent run (which records the study's plan), find what an earlier run left and what is
still to run (ablation.run.reconcile), start or join Ray (ablation.run.ray_session), let Tune
run the rest (ablation.run.tune; one Tune callback knows each trial's state and hands it to
the destinations in ablation.run.callbacks), and
close the parent run with the run's status.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from ablation.run.callbacks import LiveRefresh
from ablation.run.lease import LeaseHeld, StudyLease
from ablation.run.outcome import RunResult, TrialOutcome
from ablation.run.plan import change_message, newly_set_aside, study_plan
from ablation.run.progress import Printer, Progress
from ablation.run.ray_session import start_ray
from ablation.run.reconcile import StudyTrials
from ablation.run.search import Ledger
from ablation.run.sequential import SeedSequence
from ablation.run.signals import say_when_stopping, stop_like_ctrl_c
from ablation.run.tune import TuneRun, run_with_tune, set_tune_environment
from ablation.study import Study, factor_space, trial_count
from ablation.study.plugins import plugin_folders
from ablation.track import names, stores
from ablation.track.plan import StudyPlan
from ablation.track.writer import StudyWriter

__all__ = ["LeaseHeld", "LiveRefresh", "RunResult", "TrialOutcome", "run_study"]

log = logging.getLogger(__name__)


# -- the library entry point ------------------------------------------------------------------


def run_study(
    study: Study,
    *,
    tracking_uri: str | None = None,
    address: str | None = None,
    max_concurrent: int | None = None,
    optuna_storage: str | None = None,
    out: TextIO | None = None,
    live: LiveRefresh | None = None,
) -> RunResult:
    """Run (or continue) a study loaded with `ablation.study.load_study`.

    `live`: refreshed after finished trials while the study runs (at most once per
    `live.every` seconds; a failed refresh is logged and the study goes on).

    Before anything starts or is written, raises `stores.UnwritablePath` (a store's folder or
    Tune's results folder cannot be created or written) or `LeaseHeld` (another live driver
    runs this study); the lease is held until the run ends (ablation.run.lease).
    """
    started = time.monotonic()
    out = out or sys.stdout
    uri = stores.tracking_uri(tracking_uri, study.tracking.uri)
    storage, note = stores.optuna_storage(uri, optuna_storage, study.search.storage)
    stores.check_writable(uri, storage)
    with StudyLease(storage, study.study) as lease:
        if lease.took_over is not None:
            print(
                f"note: took over the lease of study {study.study} from {lease.took_over.owner} "
                f"(no heartbeat for {time.time() - lease.took_over.heartbeat:.0f}s)",
                file=out,
            )
        if note:
            print(note, file=out)
        return _run_study(
            study,
            uri=uri,
            storage=storage,
            started=started,
            address=address,
            max_concurrent=max_concurrent,
            out=out,
            live=live,
        )


def _run_study(
    study: Study,
    *,
    uri: str,
    storage: str,
    started: float,
    address: str | None,
    max_concurrent: int | None,
    out: TextIO,
    live: LiveRefresh | None,
) -> RunResult:
    """The run under the lease, with the stores resolved and checked."""
    _ensure_sqlite_dir(uri)
    _ensure_sqlite_dir(storage)
    # Ray first: its workers import torch while the stores are opened and reconciled.
    set_tune_environment()
    log_path = stores.results_dir(uri) / f"{study.study}.log"
    session = start_ray(address, log_path, plugin_folders(study))
    stop_like_ctrl_c()  # after ray.init, which installs a SIGTERM handler of its own
    print(f"Ray output: {log_path}" + (f" and {session}/logs" if session else ""), file=out)

    _quiet_store_creation()
    with stores.creation_lock(uri):  # a new store's tables: one process at a time
        writer = StudyWriter(uri)
        writer.client.search_experiments(max_results=1)
    plan = study_plan(study)
    parent_run_id, resumed = writer.open_study(study, plan, optuna_storage=storage)
    space = factor_space(study) if study.factors else {}
    with stores.creation_lock(storage):
        ledger = Ledger(storage, study, space)
    result = RunResult(study.study, uri, storage, parent_run_id)
    trials = StudyTrials(study, writer, ledger, space, result, plan=plan)
    trials.reconcile()
    sequence = SeedSequence(study, trials, writer) if study.sequential_seeds else None
    writer.set_total(len(trials.known) + trials.sample_budget() * len(study.seeds))
    progress, printer = _progress(study, trials, out)
    changes = definition_change(writer.previous_plan, trials.plan or plan, trials)
    if changes:
        printer.say(changes)
    printer.say(f"study {study.study}: {trial_count(study)}")
    if resumed:
        printer.say(
            f"continuing study {study.study}: {progress.done} of {len(trials.known)} known "
            f"trials done ({result.count('REUSED')} reused from other studies)"
        )

    status = "FINISHED"
    try:
        if trials.pending or trials.samples_left() or sequence and sequence.wants_more():
            result.ray_seconds = -time.monotonic()
            with say_when_stopping(printer.say):
                run_with_tune(
                    TuneRun(
                        study,
                        trials,
                        writer,
                        ledger,
                        progress,
                        printer,
                        result,
                        results_dir=stores.results_dir(uri),
                        max_concurrent=max_concurrent,
                        sequence=sequence,
                        live=live,
                    )
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


def definition_change(before: StudyPlan | None, now: StudyPlan, trials: StudyTrials) -> str:
    """What a rerun says before any trial starts when the study's definition changed ("" when
    it did not): `now` is the reconciled plan (with the variants the sampler chose before,
    design optuna); the finished trials this run keeps are its done ones less those just copied
    from other studies; those set aside count only if the earlier plan had them."""
    kept = len(trials.done) - trials.result.count("REUSED")
    aside = {run.trial_id for run in trials.set_aside}
    newly = newly_set_aside(before, now, aside)
    return change_message(before, now, kept=kept, newly_aside=newly)


def _ensure_sqlite_dir(uri: str) -> None:
    folder = stores.sqlite_dir(uri)
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)


def _quiet_store_creation() -> None:
    # Creating a new store's tables is worth a line in the log file, not two on the terminal.
    for name in ("mlflow.store.db.utils", "alembic.runtime.migration"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _progress(study: Study, trials: StudyTrials, out: TextIO) -> tuple[Progress, Printer]:
    """The progress view, with the trials done before this run already counted."""
    progress = Progress(
        study=study.study,
        total=len(trials.known),
        metric=study.metric.name,
        mode=study.metric.mode,
        concurrency=1,
    )
    for spec, run in trials.done.items():
        progress.finish(spec, trials.variant_of[spec], run.metrics.get(study.metric.name))
    return progress, Printer(progress, out)

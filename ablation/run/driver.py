"""`ablation run`: the driver of a study.

    loaded study -> trials still to run -> Ray Tune (workers train) -> MLflow + Optuna (driver)

The driver is the only writer of both stores. `run_study` reads top to bottom: open the stores
and the parent run (which records the study's plan), find what an earlier run left and what is
still to run (ablation.run.reconcile), start or join Ray (ablation.run.ray_session), let Tune
run the rest (ablation.run.tune; one callback per destination in ablation.run.callbacks), and
close the parent run with the run's status.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from pathlib import Path
from typing import TextIO

from ablation.run import stores
from ablation.run.outcome import RunResult, TrialOutcome
from ablation.run.plan import study_plan
from ablation.run.progress import Printer, Progress
from ablation.run.ray_session import start_ray
from ablation.run.reconcile import StudyTrials
from ablation.run.search import Ledger
from ablation.run.tune import run_with_tune, set_tune_environment
from ablation.study import Study, factor_space
from ablation.track import names
from ablation.track.writer import StudyWriter

__all__ = ["RunResult", "TrialOutcome", "run_command", "run_study"]

log = logging.getLogger(__name__)


# -- the command -----------------------------------------------------------------------------


def run_command(args: argparse.Namespace) -> int:
    """`ablation run FILE [--dry-run] ...`: exit 0 done, 1 a trial failed, 2 bad input."""
    from ablation.study import load_for_command

    study = load_for_command(args.file)
    if study is None:
        return 2
    if args.dry_run:
        from ablation.study import format_trial_table, trial_table

        print(format_trial_table(trial_table(study)))
        return 0
    if args.max_concurrent is not None and args.max_concurrent < 1:
        print("--max-concurrent: must be >= 1", file=sys.stderr)
        return 2
    try:
        result = run_study(
            study,
            tracking_uri=args.tracking_uri,
            address=args.address,
            max_concurrent=args.max_concurrent,
            optuna_storage=args.optuna_storage,
        )
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue the study with: {_resume_command(args)}")
        return 1
    _finish(args, result)
    return result.exit_code


def _resume_command(args: argparse.Namespace) -> str:
    parts = [_ablation_command(), "run", args.file]
    for flag, value in (
        ("--tracking-uri", args.tracking_uri),
        ("--address", args.address),
        ("--optuna-storage", args.optuna_storage),
        ("--max-concurrent", args.max_concurrent),
    ):
        if value is not None:
            parts += [flag, str(value)]
    return " ".join(parts)


def _finish(args: argparse.Namespace, result: RunResult) -> None:
    """The closing lines: counts, the summary table, how to look at it, how to resume."""
    c = result.count
    print(
        f"{result.study}: {c(names.STATUS_FINISHED)} finished, {c(names.STATUS_STOPPED)} "
        f"early-stopped, {c('REUSED')} reused, {c('DONE')} already done, "
        f"{c(names.STATUS_FAILED)} failed, {c(names.STATUS_KILLED)} interrupted "
        f"in {result.wall_seconds:.1f}s"
    )
    for t in result.trials:
        if t.status == names.STATUS_FAILED:
            reason = (t.error or "").strip().splitlines()[-1:] or [""]
            print(f"  FAILED {names.run_name(t.variant, t.seed)}: {reason[0][:300]}")
    if result.interrupted:
        print(f"interrupted; continue the study with: {_resume_command(args)}")
    else:
        summary = _publish_report(result.tracking_uri, result.study)
        if summary:
            print(summary)
    print(f"MLflow UI: {_ablation_command()} ui --tracking-uri {_ui_uri(result.tracking_uri)}")


def _publish_report(tracking_uri: str, study: str) -> str | None:
    try:
        from ablation.report import publish_study_report
    except ImportError:
        return None
    try:
        return publish_study_report(tracking_uri, study)
    except Exception as err:  # the run's outcome stands; the report can be made again later
        print(
            f"warning: the summary could not be made ({type(err).__name__}: {err}); "
            f"try: ablation report {study}",
            file=sys.stderr,
        )
        return None


def _ablation_command() -> str:
    """`ablation` where the shell finds this one, else its path (a venv that is not activated)."""
    here = Path(sys.executable).parent / "ablation"
    found = shutil.which("ablation")
    if found and here.exists() and Path(found).resolve() == here.resolve():
        return "ablation"
    return str(here) if here.exists() else "ablation"


def _ui_uri(uri: str) -> str:
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{Path(uri.removeprefix('sqlite:///')).resolve()}"
    return uri


# -- the library entry point ------------------------------------------------------------------


def run_study(
    study: Study,
    *,
    tracking_uri: str | None = None,
    address: str | None = None,
    max_concurrent: int | None = None,
    optuna_storage: str | None = None,
    out: TextIO | None = None,
) -> RunResult:
    """Run (or continue) a study loaded with `ablation.study.load_study`."""
    started = time.monotonic()
    out = out or sys.stdout
    uri = stores.tracking_uri(tracking_uri, study.tracking.uri)
    storage, note = stores.optuna_storage(uri, optuna_storage, study.search.storage)
    if note:
        print(note, file=out)
    _ensure_sqlite_dir(uri)
    _ensure_sqlite_dir(storage)
    # Ray first: its workers import torch while the stores are opened and reconciled.
    set_tune_environment()
    log_path = stores.results_dir(uri) / f"{study.study}.log"
    session = start_ray(address, log_path)
    print(f"Ray output: {log_path}" + (f" and {session}/logs" if session else ""), file=out)

    _quiet_store_creation()
    writer = StudyWriter(uri)
    parent_run_id, resumed = writer.open_study(study, study_plan(study), optuna_storage=storage)
    space = factor_space(study) if study.factors else {}
    ledger = Ledger(storage, study, space)
    result = RunResult(study.study, uri, storage, parent_run_id)
    trials = StudyTrials(study, writer, ledger, space, result)
    trials.reconcile()
    writer.set_total(len(trials.known) + trials.sample_budget() * len(study.seeds))
    progress, printer = _progress(study, trials, out)
    if resumed:
        printer.say(
            f"continuing study {study.study}: {progress.done} of {len(trials.known)} known "
            f"trials done ({result.count('REUSED')} reused from other studies)"
        )

    status = "FINISHED"
    try:
        if trials.pending or trials.samples_left():
            result.ray_seconds = -time.monotonic()
            run_with_tune(
                study,
                trials,
                writer,
                ledger,
                progress,
                printer,
                result,
                results_dir=stores.results_dir(uri),
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

"""`ablation run FILE`: run (or continue) a study, then publish its summary and dashboard.

The command composes: load the study, work out its MLflow store once, let the driver
(`ablation.run.driver`) run the trials, publish (`ablation.dashboard.publish`: every report
format and the dashboard on the parent run, live while it runs), and print the closing lines.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
from pathlib import Path

import pandas as pd
from mlflow.tracking import MlflowClient

from ablation.commands.ui import ui_url
from ablation.dashboard.publish import live_seconds, partial_publisher, publish_study_report
from ablation.report.pilot import paired_sd_for_plan, training_setup
from ablation.report.runs import StudyNotFound, find_parent
from ablation.run.driver import LeaseHeld, LiveRefresh, RunResult, run_study
from ablation.run.plan import change_message, finished_trial_ids, newly_set_aside, study_plan
from ablation.run.ray_session import RayAuthRefused
from ablation.run.search import MissingDriver
from ablation.run.signals import stop_like_ctrl_c
from ablation.study import Study, format_trial_table, load_for_command, trial_table
from ablation.study.design import all_variants
from ablation.study.plan import PairedSd, power_plan, time_estimate
from ablation.study.trials import resolve_config
from ablation.track import names, stores
from ablation.track.landing import prepare_landing
from ablation.track.plan import load_plan
from ablation.track.reader import NoStore, open_client


def main(args: argparse.Namespace) -> int:
    """Exit 0 done, 1 a trial failed or the run was interrupted (Ctrl-C, SIGTERM, SIGHUP),
    2 bad input: the study file, a missing dataset.root, a folder that cannot be written, a
    study another live driver runs (one line each, before anything starts), or a cluster
    (--address) that refused the auth token."""
    stop_like_ctrl_c()
    # A joined cluster's workers read the data where they are; a local one reads it here.
    study = load_for_command(args.file, check_data=args.address is None and not args.dry_run)
    if study is None:
        return 2
    uri = stores.tracking_uri(args.tracking_uri, study.tracking.uri)
    if args.dry_run:
        table = trial_table(study)
        print(format_trial_table(table))
        found, refused = _plan_sd(uri, study, table)
        plan = power_plan(study, table, found)
        if plan:
            print("\n" + "\n".join([*plan, *(f"  not planned from {why}" for why in refused)]))
        timing = time_estimate(study, table)
        if timing:
            print("\n" + "\n".join(timing))
        change = definition_preview(uri, study)
        if change:
            print("\n" + change)
        return 0
    if args.max_concurrent is not None and args.max_concurrent < 1:
        print("--max-concurrent: must be >= 1", file=sys.stderr)
        return 2
    live = live_refresh(uri, study.study)
    try:
        result = run_study(
            study,
            tracking_uri=uri,
            address=args.address,
            max_concurrent=args.max_concurrent,
            optuna_storage=args.optuna_storage,
            live=live,
        )
    except (LeaseHeld, stores.UnwritablePath, RayAuthRefused, MissingDriver) as err:
        print(f"ablation run: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue the study with: {_resume_command(args)}")
        return 1
    _finish(args, result, live)
    return result.exit_code


def live_refresh(tracking_uri: str, study_name: str) -> LiveRefresh | None:
    """The partial report and dashboard, published while the study runs (every
    ABLATION_LIVE_SECONDS at most, 60 by default; 0 or less: none)."""
    every = live_seconds()
    if every is None:
        return None
    return LiveRefresh(partial_publisher(tracking_uri, study_name), every)


def live_cost_line(live: LiveRefresh, wall_seconds: float, slots: int) -> str:
    """What the live view cost: the refresh thread's CPU time is at most what it took from the
    trials, out of the CPU-seconds the trial slots had (wall time x slots)."""
    budget = max(wall_seconds * max(slots, 1), 1e-9)
    return (
        f"live view: {live.count} refreshes, {live.seconds:.1f}s wall, {live.cpu_seconds:.1f}s "
        f"CPU in the driver: at most {100 * live.cpu_seconds / budget:.1f}% of the "
        f"{budget:.0f} CPU-seconds of the {slots} trial slots"
    )


def _plan_sd(uri: str, study: Study, table: pd.DataFrame) -> tuple[PairedSd | None, list[str]]:
    """The paired sd for the power plan (decision only): the study's own finished trials,
    else another study's in the store with its training setup (`ablation.report.pilot`);
    and the studies refused, with why."""
    if study.decision is None:
        return None, []
    if uri.startswith("sqlite:///") and not Path(uri.removeprefix("sqlite:///")).exists():
        return None, []  # no store yet (and a dry run must not create one)
    base = table.loc[table["variant"] == study.baseline]
    try:
        baseline = next(v for v in all_variants(study) if v.name == study.baseline)
        choice = paired_sd_for_plan(
            uri,
            study=study.study,
            trial_ids=set(table["trial_id"]),
            baseline_trial_ids=set(base["trial_id"]),
            setup=training_setup(resolve_config(study, baseline.overrides)),
            metric=study.metric.name,
        )
    except Exception as err:  # unreachable, or unreadable: plan without it, and say why
        print(f"note: no earlier study read for the power plan ({err})", file=sys.stderr)
        return None, []
    return choice.found, choice.refused


def definition_preview(uri: str, study: Study) -> str:
    """What running the file would say about a changed definition, read from the store
    without writing to it ("" when the store, the study or its plan is not there yet)."""
    try:
        client = open_client(uri)
        parent = find_parent(client, study.study)
        before = load_plan(client, parent.info.run_id)
    except (NoStore, StudyNotFound):
        return ""
    except Exception as err:  # no plan.json, or an unreachable store: the run will tell
        return f"note: the study's earlier plan could not be read ({type(err).__name__})"
    now = study_plan(study)
    if study.design == "optuna" and before.trial_ids is not None:
        # The variants the sampler chose are in the earlier plan only (the run reads them
        # from the Optuna ledger, which a dry run leaves alone): join them, as the run does.
        ids = now.trial_ids or []
        sampled = [t for t in before.trial_ids if t not in ids]
        now = dataclasses.replace(now, trial_ids=ids + sampled)
    finished = finished_trial_ids(client, parent.info.run_id, parent.info.experiment_id)
    kept = None if study.design == "optuna" else len(finished & set(now.trial_ids or []))
    aside = newly_set_aside(before, now, finished)
    return change_message(before, now, kept=kept, newly_aside=aside)


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


def _finish(args: argparse.Namespace, result: RunResult, live: LiveRefresh | None = None) -> None:
    """The closing lines: counts, the summary table, how to look at it, how to resume."""
    uri = result.tracking_uri
    c = result.count
    print(
        f"{result.study}: {c(names.STATUS_FINISHED)} finished, {c(names.STATUS_STOPPED)} "
        f"early-stopped, {c('REUSED')} reused, {c('DONE')} already done, "
        f"{c(names.STATUS_FAILED)} failed, {c(names.STATUS_KILLED)} interrupted "
        f"in {result.wall_seconds:.1f}s"
    )
    if live is not None and live.count:
        print(live_cost_line(live, result.wall_seconds, result.concurrency))
    for t in result.trials:
        if t.status == names.STATUS_FAILED:
            reason = (t.error or "").strip().splitlines()[-1:] or [""]
            print(f"  FAILED {names.run_name(t.variant, t.seed)}: {reason[0][:300]}")
    if result.interrupted:
        print(f"interrupted; continue the study with: {_resume_command(args)}")
    else:
        summary = _publish_report(uri, result.study)
        if summary:
            print(summary)
    print(f"MLflow UI: {_ablation_command()} ui --tracking-uri {_ui_uri(uri)}")
    _print_links(uri, result.study)


def _print_links(tracking_uri: str, study: str) -> None:
    """The links `ablation ui` (default port) opens on: the study's runs, its dashboard."""
    try:
        links = prepare_landing(MlflowClient(tracking_uri), study, ui_url("127.0.0.1", 5000))
    except Exception as err:  # the run's outcome stands; `ablation ui` prints them again
        print(f"warning: no MLflow links ({type(err).__name__}: {err})", file=sys.stderr)
        return
    if links is not None:
        print("\n".join(links.lines()))


def _publish_report(tracking_uri: str, study: str) -> str | None:
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

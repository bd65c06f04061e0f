"""Orchestration overhead of `ablation run`: wall time against the trials' own training time.

    python benchmarks/study_overhead.py [STUDY.yaml] [--max-concurrent N]

Runs the study (default experiments/quickstart.yaml) in a fresh temporary store on the
embedded Ray and compares:
- ideal = sum of the trials' own `train_seconds` / concurrency (perfect packing, zero overhead);
- the wall time of the Tune part (trials scheduled, trained, recorded) and of the whole run
  (plus MLflow store creation and Ray start-up, paid once per run).
Printed as a ratio (wall / ideal) and as seconds lost per trial ((wall - ideal) * concurrency
/ trials: the slot-seconds each trial costs beyond its own training). Also against the whole
of each `train_trial` call (data, model, epochs, profiling: `trial_seconds`), which leaves
only what Ray Tune, MLflow and Optuna cost.

Then where a trial's time goes, per trial (mean over the trials, seconds and share of the run's
slot-seconds): start-up (imports, MLflow store, Ray and Tune start, the first worker; paid once
per run, shown per trial), data (building the data set, once per worker process: measured here
cold, shared among the trials of a worker), forward/backward (the epochs' training phases,
from each epoch's logged images/s), evaluation (the rest of each epoch), model and profiling
(the rest of `train_trial`), logging (between trials on a worker, and after the last: Tune
recording the result in MLflow and Optuna, scheduling the next). The dry run's time estimate
(`ablation run FILE --dry-run`, ablation/study/plan.py) uses the same split: it measures
forward/backward and evaluation on the built model and adds the rest as
TRIAL_EXTRA_SECONDS and RUN_STARTUP_SECONDS, which are this split's numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("study", nargs="?", default=str(ROOT / "experiments" / "quickstart.yaml"))
    parser.add_argument("--max-concurrent", type=int, default=None)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)

    started = time.monotonic()
    from ablation.run.driver import run_study
    from ablation.study import load_study

    study = load_study(args.study)
    with tempfile.TemporaryDirectory(prefix="study-overhead-") as folder:
        uri = f"sqlite:///{folder}/mlflow.db"
        result = run_study(
            study, tracking_uri=uri, max_concurrent=args.max_concurrent, out=sys.stderr
        )
        total_wall = time.monotonic() - started
        trained = [t for t in result.trials if t.seconds]
        if not trained:
            print("no trial trained; nothing to measure", file=sys.stderr)
            return 1
        epochs = _epoch_histories(uri, trained)
    n, slots = len(trained), result.concurrency
    ideal = sum(t.seconds for t in trained) / slots
    tune_wall = result.ray_seconds
    whole_trials = [t.trial_seconds for t in trained if t.trial_seconds]
    ideal_whole = sum(whole_trials) / slots if len(whole_trials) == n else None
    figures = {
        "study": result.study,
        "trials": n,
        "concurrency": slots,
        "sum_train_seconds": round(sum(t.seconds for t in trained), 2),
        "ideal_seconds": round(ideal, 2),
        "tune_wall_seconds": round(tune_wall, 2),
        "total_wall_seconds": round(total_wall, 2),
        "tune_ratio": round(tune_wall / ideal, 3),
        "total_ratio": round(total_wall / ideal, 3),
        "tune_lost_seconds_per_trial": round((tune_wall - ideal) * slots / n, 3),
        "total_lost_seconds_per_trial": round((total_wall - ideal) * slots / n, 3),
    }
    if ideal_whole:
        figures["ideal_whole_trial_seconds"] = round(ideal_whole, 2)
        figures["tune_ratio_vs_whole_trial"] = round(tune_wall / ideal_whole, 3)
        figures["orchestration_seconds_per_trial"] = round((tune_wall - ideal_whole) * slots / n, 3)
    figures.update(_breakdown(result, trained))
    split = _split(study, result, trained, epochs, total_wall)
    figures["split"] = split
    if args.json:
        print(json.dumps(figures))
    else:
        print(
            f"{result.study}: {n} trials on {slots} slots; trials' own training "
            f"{figures['sum_train_seconds']}s -> ideal {ideal:.1f}s\n"
            f"  Tune part : {tune_wall:.1f}s = {figures['tune_ratio']:.2f}x ideal, "
            f"{figures['tune_lost_seconds_per_trial']:.2f}s lost per trial\n"
            f"  whole run : {total_wall:.1f}s = {figures['total_ratio']:.2f}x ideal, "
            f"{figures['total_lost_seconds_per_trial']:.2f}s lost per trial "
            "(imports, MLflow store creation, Ray start-up included)"
        )
        if ideal_whole:
            print(
                f"  against all of train_trial (data, model, epochs, profiling: ideal "
                f"{ideal_whole:.1f}s): Tune part {figures['tune_ratio_vs_whole_trial']:.3f}x, "
                f"{figures['orchestration_seconds_per_trial']:.2f}s of orchestration per trial"
            )
        b = figures
        if "startup_seconds" in b:
            print(
                f"  where it goes: start-up {b['startup_seconds']:.1f}s (Tuner.fit to the first "
                f"trial running: worker processes, imports), {b['gap_seconds_mean']:.2f}s between "
                f"consecutive trials on a worker (mean over {b['gaps']}: scheduling, recording), "
                f"{b['in_trial_extra_seconds_mean']:.2f}s per trial in train_trial outside the "
                f"epochs (data, model, profiling), {b['shutdown_seconds']:.1f}s after the last "
                "trial (Tune's shutdown)"
            )
        print(_format_split(split))
    return 0 if result.exit_code == 0 else 1


def _epoch_histories(uri: str, trained: list) -> dict[str, list[tuple[float, float]]]:
    """Per trial run: (epoch_seconds, images_per_second) of each epoch, from the store."""
    from ablation.track.reader import open_client

    client = open_client(uri)
    out = {}
    for t in trained:
        secs = client.get_metric_history(t.run_id, "epoch_seconds")
        ips = client.get_metric_history(t.run_id, "images_per_second")
        out[t.run_id] = [(a.value, b.value) for a, b in zip(secs, ips, strict=False)]
    return out


def _split(study, result, trained: list, epochs: dict, total_wall: float) -> dict:
    """Mean seconds per trial of start-up, data, forward/backward, evaluation, model and
    profiling, and logging; they add up to the run's slot-seconds per trial."""
    from ablation.data.build import build_datasets
    from ablation.study.design import all_variants
    from ablation.study.trials import trials_for_variant

    config = trials_for_variant(study, all_variants(study)[0])[0].config
    started = time.perf_counter()
    train_ds, _, _ = build_datasets(config["dataset"])
    data_cold = time.perf_counter() - started
    batch = config["train"]["batch_size"]
    n = len(train_ds)
    trained_images = n - n % batch if n > batch else n
    n_trials, slots = len(trained), result.concurrency
    workers = len({t.timing.get("worker_pid") for t in trained}) or slots
    fwd_bwd = evaluation = 0.0
    for t in trained:
        for seconds, ips in epochs.get(t.run_id, []):
            fwd_bwd += trained_images / ips
            evaluation += seconds - trained_images / ips
    data = data_cold * workers
    in_trial = sum(t.trial_seconds or t.seconds for t in trained)
    model_profile = in_trial - sum(t.seconds for t in trained) - data
    slot_seconds = total_wall * slots
    b = _breakdown(result, trained)
    startup = (total_wall - result.ray_seconds + b.get("startup_seconds", 0.0)) * slots
    logging = slot_seconds - startup - in_trial
    parts = {
        "start-up": startup,
        "data": data,
        "forward/backward": fwd_bwd,
        "evaluation": evaluation,
        "model and profiling": max(model_profile, 0.0),
        "logging and scheduling": logging,
    }
    return {
        "trials": n_trials,
        "slots": slots,
        "slot_seconds": round(slot_seconds, 2),
        "per_trial": {k: round(v / n_trials, 3) for k, v in parts.items()},
        "share": {k: round(v / slot_seconds, 3) for k, v in parts.items()},
        "trial_extra_seconds": round((data + max(model_profile, 0.0) + logging) / n_trials, 2),
        "run_startup_seconds": round(startup / slots, 2),
    }


def _format_split(split: dict) -> str:
    rows = [
        f"  {name:<24} {split['per_trial'][name]:8.2f} s {100 * split['share'][name]:5.1f}%"
        for name in split["per_trial"]
    ]
    return "\n".join(
        [
            f"where a trial's slot-seconds go ({split['slot_seconds']:.0f} slot-seconds over "
            f"{split['trials']} trials on {split['slots']} slots; per trial, share of all):",
            *rows,
            f"  the dry run's constants: TRIAL_EXTRA_SECONDS ~ {split['trial_extra_seconds']:.1f} "
            f"(data, model and profiling, logging per trial), RUN_STARTUP_SECONDS ~ "
            f"{split['run_startup_seconds']:.1f} (ablation/study/plan.py)",
        ]
    )


def _breakdown(result, trained) -> dict:
    """Split the Tune part's overhead, from the trials' wall-clock start/end and worker pid."""
    timed = [t for t in trained if "trial_started_at" in t.timing]
    if not timed or result.tune_window is None:
        return {}
    fit_start, fit_end = result.tune_window
    by_worker: dict[float, list] = {}
    for t in timed:
        by_worker.setdefault(t.timing["worker_pid"], []).append(t)
    gaps = []
    for runs in by_worker.values():
        runs.sort(key=lambda t: t.timing["trial_started_at"])
        gaps += [
            b.timing["trial_started_at"] - a.timing["trial_ended_at"]
            for a, b in zip(runs, runs[1:], strict=False)
        ]
    extra = [t.trial_seconds - t.seconds for t in timed if t.trial_seconds and t.seconds]
    return {
        "workers": len(by_worker),
        "startup_seconds": round(min(t.timing["trial_started_at"] for t in timed) - fit_start, 2),
        "gaps": len(gaps),
        "gap_seconds_mean": round(sum(gaps) / len(gaps), 3) if gaps else 0.0,
        "in_trial_extra_seconds_mean": round(sum(extra) / len(extra), 3) if extra else 0.0,
        "shutdown_seconds": round(fit_end - max(t.timing["trial_ended_at"] for t in timed), 2),
    }


if __name__ == "__main__":
    sys.exit(main())

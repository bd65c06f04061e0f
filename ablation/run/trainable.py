"""The Ray Tune trainable: one (variant, seed) trial on a worker.

Workers only train and report; the driver records everything. Each epoch's metrics go to Tune
with `ray.tune.report` (plus a checkpoint of the trial's state when retries are on, so a
restarted worker continues after the last finished epoch); the last epoch's report also carries
the final metrics and the `FINAL` marker. A `TrialFailed` (diverged, data missing) is reported as a
result with the `FAILED` marker instead of raised: it is the trial's outcome, and retrying it
would only fail again. Anything else raises, and Tune retries the trial (FailureConfig).

Tune reuses this worker process for the next trial, so torch and the data (cached by
ablation.data) are imported and loaded once per worker, not once per trial.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from ablation.run.markers import FAILED, FINAL
from ablation.study.schema import TrialConfig
from ablation.train import TrialFailed, place_trial, train_trial

__all__ = ["FAILED", "FINAL", "run_trial"]

STATE_FILE = "state.pt"


def run_trial(config: dict[str, Any]) -> None:
    """Tune function trainable; `config` holds the trial spec as plain data."""
    spec = config["spec"]
    threads = max(1, int(config.get("cpus", 1)))
    os.environ.setdefault("ABLATION_TORCH_THREADS", str(threads))
    torch.set_num_threads(threads)
    checkpoints = bool(config.get("checkpoint", False))
    settings = TrialConfig.model_validate(spec["config"]).settings()
    epochs = settings.train.epochs
    last: dict[str, Any] = {}

    resume = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            resume = torch.load(Path(folder) / STATE_FILE, map_location="cpu", weights_only=False)

    def report(metrics: dict[str, Any]) -> None:
        state = metrics.get("state")
        record = {k: v for k, v in metrics.items() if k != "state" and _plain(v)}
        if record.get("epoch") == epochs:
            # The last epoch goes out with the final metrics, in one report: a scheduler that
            # stops trials at their last epoch (ASHA at max_t) cannot cut the final metrics off.
            last.update(record)
            return
        if checkpoints and state is not None:
            # The state references live tensors: serialise it now, inside the call.
            with tempfile.TemporaryDirectory() as folder:
                torch.save(state, Path(folder) / STATE_FILE)
                tune.report(record, checkpoint=tune.Checkpoint.from_directory(folder))
        else:
            tune.report(record)

    started, started_at = time.perf_counter(), time.time()
    try:
        # Ray's GPU assignment: the device, and with a fractional share the memory cap.
        share = ray.get_runtime_context().get_assigned_resources().get("GPU", 0.0)
        device = place_trial(ray.get_gpu_ids(), share)
        final = train_trial(settings, spec["seed"], report, device=device, resume=resume)
    except TrialFailed as err:
        tune.report({FAILED: str(err) or type(err).__name__})
        return
    # `trial_seconds`: all of train_trial (data, model, epochs, profiling), for the overhead
    # benchmark: what the run costs beyond it is orchestration.
    # When and where it ran (wall clock, worker pid): the benchmark splits the overhead with it.
    timing = {
        "trial_seconds": time.perf_counter() - started,
        "trial_started_at": started_at,
        "trial_ended_at": time.time(),
        "worker_pid": os.getpid(),
    }
    tune.report({**last, **{k: v for k, v in final.items() if _plain(v)}, **timing, FINAL: 1})


def _plain(value: Any) -> bool:
    return isinstance(value, int | float | str | bool)

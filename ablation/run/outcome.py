"""What a run did: one `TrialOutcome` per trial it saw, gathered in a `RunResult`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ablation.track import names

if TYPE_CHECKING:
    from ablation.study import TrialSpec

# What the worker reports of a trial's wall-clock timing besides its metrics.
TIMING = ("trial_started_at", "trial_ended_at", "worker_pid")


@dataclass
class TrialOutcome:
    """How one trial ended in a run, with its timing."""

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

    @classmethod
    def of(
        cls,
        spec: TrialSpec,
        status: str,
        run_id: str | None,
        metrics: Mapping[str, float],
        *,
        epochs: int,
        error: str | None = None,
    ) -> TrialOutcome:
        """The outcome of `spec`, its times read from its final metrics (those it has)."""
        return cls(
            spec.trial_id,
            spec.variant,
            spec.seed,
            status,
            run_id,
            epochs=epochs,
            seconds=metrics.get("train_seconds"),
            trial_seconds=metrics.get("trial_seconds"),
            timing={k: metrics[k] for k in TIMING if k in metrics},
            error=error,
        )


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

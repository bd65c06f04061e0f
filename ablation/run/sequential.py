"""Sequential seeds, the driver's side: after each look, the next seeds for the comparisons
still open (and the baseline), until each is decided or `max` seeds were looked at.

`seeds: {start, max}` with `decision`: the study's first `start` seeds of every variant are
ordinary pending trials. When they have all ended (pairing: a look sees every open comparison
at the same n), `SeedSequence.next_trials` asks `ablation.stats.sequential.next_seeds` with the
paired differences (variant - baseline, seed by seed) of the trials finished so far, and maps
its answer to trials (`ablation.study.seed_trials`). `SequentialQueue` puts them behind the
TrialQueue, so Tune's Searcher hands them out like any other trial; while trials of the look
are still running it answers WAIT (Tune's "not now"), and None once the sequence has ended.

Everything is replayed from the finished trials: a rerun after a kill reaches the same looks,
asks for the same seeds, and runs none of the finished trials again (ablation.run.reconcile
keeps the later seeds' finished runs as known trials). The looks are recorded on the parent run
as `looks.json` after each look; the report replays the same looks from the same trial values
(one source of truth: the trials; looks.json is the driver's record of what it acted on).
"""

from __future__ import annotations

import math
from typing import Any

from ablation.run.callbacks import Destination, TrialEnd, TrialState
from ablation.run.progress import Printer, Progress
from ablation.run.reconcile import StudyTrials
from ablation.run.search import TrialQueue, objective_values
from ablation.stats.sequential import CONTINUE, Look, looks, next_seeds
from ablation.study import Study, TrialSpec, all_variants, seed_trials
from ablation.study.plan import sequential_plan
from ablation.track import names
from ablation.track.writer import StudyWriter

# What `SequentialQueue.next` answers while trials of the current look are still running.
WAIT = "wait"


class SeedSequence:
    """The finished values of a sequential study's trials, and the seeds its looks ask for."""

    def __init__(self, study: Study, trials: StudyTrials, writer: StudyWriter) -> None:
        self.study, self.trials, self.writer = study, trials, writer
        self.plan = sequential_plan(study)
        self.baseline: str = study.baseline or ""
        self.comparisons = [v.name for v in all_variants(study) if v.name != self.baseline]
        self.values: dict[tuple[str, int], float] = {}  # (variant, seed) -> metric value
        self.failed: dict[tuple[str, int], str] = {}  # (variant, seed) -> status, this run
        self.running: set[str] = set()  # trial ids handed out and not ended
        self.attempted: set[str] = set()  # trial ids handed out in this run
        self.ended = False
        self.note: str | None = None  # why the sequence ended short (failed trials)
        self._recorded: list[dict[str, Any]] | None = None
        for trial_id, run in trials.done.items():
            spec = trials.known[trial_id]
            self._value(spec, objective_values(study, run.metrics, {}))

    # -- what the trials report ----------------------------------------------------------------

    def handed_out(self, spec: TrialSpec) -> None:
        self.running.add(spec.trial_id)
        self.attempted.add(spec.trial_id)

    def ended_trial(self, spec: TrialSpec, status: str, value: float | None) -> None:
        """A trial of this run ended: FINISHED with its metric value, or not (no value)."""
        self.running.discard(spec.trial_id)
        if status == names.STATUS_FINISHED and value is not None:
            self._value(spec, [value])
        else:
            self.failed[(spec.variant, spec.seed)] = status

    def _value(self, spec: TrialSpec, values: list[float] | None) -> None:
        if values and math.isfinite(values[0]):
            self.values[(spec.variant, spec.seed)] = float(values[0])

    # -- the looks -------------------------------------------------------------------------------

    def diffs(self) -> dict[str, list[float]]:
        """Each comparison's paired differences in seed order, up to its first missing seed."""
        out: dict[str, list[float]] = {}
        for c in self.comparisons:
            d: list[float] = []
            for seed in range(self.plan.max):
                a, b = self.values.get((c, seed)), self.values.get((self.baseline, seed))
                if a is None or b is None:
                    break
                d.append(a - b)
            out[c] = d
        return out

    def looks(self) -> list[Look]:
        return looks(self.plan, self.diffs())

    def next_trials(self, printer: Printer | None = None) -> list[TrialSpec] | None:
        """The trials the next look needs (not finished, not tried in this run), after
        recording the looks so far; None once the sequence has ended."""
        diffs = self.diffs()
        history = looks(self.plan, diffs)
        self.record(history, printer)
        n, open_ = next_seeds(self.plan, diffs)
        if not open_:
            self.ended = True
            return None
        wanted = seed_trials(self.study, [self.baseline, *open_], range(n))
        fresh = [
            s
            for s in wanted
            if s.trial_id not in self.trials.done and s.trial_id not in self.attempted
        ]
        if not fresh:
            # Every trial the look needs was tried in this run and some did not finish: the
            # comparisons stay undecided (a rerun tries the failed trials again), never a loop.
            lost = sorted(f"{v}/seed={s}" for (v, s) in self.failed if s < n)
            self.note = (
                f"sequential seeds stopped before look n={n}: {', '.join(open_)} undecided; "
                f"trials not finished: {', '.join(lost) or 'none'} (rerun to try them again)"
            )
            self.ended = True
            if printer is not None:
                printer.say(self.note)
            return None
        if printer is not None and history:
            seeds = sorted({s.seed for s in fresh})
            printer.say(
                f"look n={history[-1].n}: {_decisions(history)}; running seed(s) "
                f"{', '.join(map(str, seeds))} of {', '.join(open_)} and {self.baseline}"
            )
        return fresh

    def wants_more(self) -> bool:
        """Whether the sequence still has trials to run (records the looks so far)."""
        return self.next_trials() is not None

    def record(self, history: list[Look], printer: Printer | None = None) -> None:
        """`looks.json` on the parent run, when the looks changed since last written."""
        records = [look.to_record() for look in history]
        if records == self._recorded:
            return
        self.writer.log_looks(records)
        self._recorded = records
        if (
            printer is not None
            and history
            and not any(r.decision == CONTINUE for r in history[-1].comparisons.values())
        ):
            printer.say(f"look n={history[-1].n}: {_decisions(history)}; sequence ended")


def _decisions(history: list[Look]) -> str:
    last: dict[str, str] = {}
    for look in history:
        last.update({c: r.decision for c, r in look.comparisons.items()})
    return ", ".join(f"{c} {d}" for c, d in last.items())


class SequentialQueue:
    """The TrialQueue of a sequential study: when it runs dry, the next look's trials.

    `next()` answers (spec, Optuna trial number), WAIT while trials of the current look still
    run, or None when the sequence has ended.
    """

    def __init__(
        self,
        queue: TrialQueue,
        sequence: SeedSequence,
        trials: StudyTrials,
        progress: Progress,
        printer: Printer,
        writer: StudyWriter,
    ) -> None:
        self.queue, self.sequence, self.trials = queue, sequence, trials
        self.progress, self.printer, self.writer = progress, printer, writer

    def __len__(self) -> int:
        return len(self.queue)

    @property
    def may_sample(self) -> bool:
        return not self.sequence.ended

    def next(self) -> tuple[TrialSpec, int] | str | None:
        while True:
            item = self.queue.next()
            if item is not None:
                self.sequence.handed_out(item[0])
                return item
            if self.sequence.running:
                return WAIT
            specs = self.sequence.next_trials(self.printer)
            if specs is None:
                return None
            self.trials.add(specs)
            self.queue.extend(specs)
            self.progress.grow(len(specs))
            self.writer.set_total(len(self.trials.known))


class SequenceDestination(Destination):
    """Tells the SeedSequence how each trial ended, with the metric value Optuna is told."""

    def __init__(self, sequence: SeedSequence) -> None:
        self.sequence = sequence

    def trial_ended(self, trial: TrialState, end: TrialEnd) -> None:
        value = end.values[0] if end.values else None
        self.sequence.ended_trial(trial.spec, end.status, value)

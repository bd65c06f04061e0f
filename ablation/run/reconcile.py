"""What an earlier run of the study left, and what is still to run.

Finished child runs are kept; runs left RUNNING, KILLED or FAILED are deleted and their trials
run again; trials finished in other studies of the same store are copied, not retrained; every
done trial gets its COMPLETE (or PRUNED) Optuna trial. For `design: optuna`, the variants the
sampler chose before are known trials too, and `sampler()` asks for the rest of the budget.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

from ablation.run.outcome import RunResult, TrialOutcome
from ablation.run.progress import Printer, Progress
from ablation.run.search import Ledger, objective_values, sampled_variants
from ablation.study import (
    Study,
    TrialSpec,
    all_variants,
    expand,
    sample_budget,
    seed_trials,
    trials_for_variant,
    variant_from_levels,
)
from ablation.track import names
from ablation.track.plan import StudyPlan
from ablation.track.writer import StudyWriter, TrialRun


class StudyTrials:
    """Which trials the study has, which are done, which still have to run."""

    def __init__(
        self,
        study: Study,
        writer: StudyWriter,
        ledger: Ledger,
        space: dict[str, list[Any]],
        result: RunResult,
        plan: StudyPlan | None = None,
    ) -> None:
        self.study, self.writer, self.ledger, self.space = study, writer, ledger, space
        self.result = result
        # The recorded plan: trials the sampler chooses join its trial ids (design optuna).
        self.plan = plan
        self.known: dict[str, TrialSpec] = {}  # in run order
        self.done: dict[str, TrialRun] = {}
        # Finished trials of this study run that the current definition does not have (the
        # file was edited, or the code that trains changed): kept in MLflow, never reported.
        self.set_aside: list[TrialRun] = []
        self.pending: list[TrialSpec] = []
        self.variant_of: dict[str, str] = {}
        self._sampled_before: list[dict[str, Any]] = []

    def add(self, specs: list[TrialSpec]) -> None:
        """Trials the study has beyond those reconciled (sequential seeds: a look's)."""
        self._add(specs)
        self._record_plan()

    def _add(self, specs: list[TrialSpec]) -> None:
        for spec in specs:
            self.known.setdefault(spec.trial_id, spec)
            self.variant_of[spec.trial_id] = spec.variant

    def reconcile(self) -> None:
        """Find what the stores hold of this study; sets `known`, `done` and `pending`."""
        study, ledger = self.study, self.ledger
        self._add(expand(study))
        if study.sequential_seeds is not None:
            self._add_later_seeds()
        ledger.recover()
        if study.design == "optuna":
            designed = [spec.levels for spec in self.known.values()]  # e.g. the baseline
            self._sampled_before = [lv for lv in ledger.sampled_levels() if lv not in designed]
            for levels in self._sampled_before:
                self._add(trials_for_variant(study, variant_from_levels(study, levels)))
        self._keep_finished_runs()
        self._reuse_from_other_studies()
        self._record_done_in_optuna()
        self.pending = [s for t, s in self.known.items() if t not in self.done]
        self._record_plan()

    def _record_plan(self) -> None:
        """Known trials missing from the recorded plan's trial ids join them (design optuna's
        sampled variants), so the report shows them."""
        if self.plan is None or self.plan.trial_ids is None:
            return
        planned = set(self.plan.trial_ids)
        new = [t for t in self.known if t not in planned]
        if new:
            self.plan = dataclasses.replace(self.plan, trial_ids=[*self.plan.trial_ids, *new])
            self.writer.log_plan(self.plan)

    def _add_later_seeds(self) -> None:
        """Sequential seeds: the trials beyond the first `start` seeds that an earlier run
        finished are known trials too, so they are kept and never run twice. (Those it left
        unfinished are not: their runs are discarded, and the replayed looks ask again.)"""
        seq = self.study.sequential_seeds
        variants = [v.name for v in all_variants(self.study)]
        later = seed_trials(self.study, variants, range(seq.start, seq.max))
        finished = {
            t
            for t, runs in self.writer.trial_runs().items()
            if any(r.status in names.DONE_STATUSES for r in runs)
        }
        self._add([s for s in later if s.trial_id in finished])

    def _keep_finished_runs(self) -> None:
        """This study's child runs: keep the finished, delete the stale (their trials rerun)."""
        for trial_id, runs in self.writer.trial_runs().items():
            finished = [r for r in runs if r.status in names.DONE_STATUSES]
            for run in runs:
                if not finished or run is not finished[0]:
                    self.writer.discard(run.run_id)
            if finished and trial_id in self.known:
                self.done[trial_id] = finished[0]
            elif finished:
                self.set_aside.append(finished[0])

    def _reuse_from_other_studies(self) -> None:
        """Finished in another study of this store: copy, don't retrain."""
        todo = [t for t in self.known if t not in self.done]
        for trial_id, source in self.writer.find_finished_elsewhere(todo).items():
            spec = self.known[trial_id]
            run_id = self.writer.copy_reused(spec, source)
            self.done[trial_id] = TrialRun(run_id, trial_id, names.STATUS_FINISHED, source.metrics)
            self._outcome(spec, "REUSED", run_id, source)

    def _record_done_in_optuna(self) -> None:
        """Every done trial has its COMPLETE (or PRUNED) Optuna trial."""
        in_optuna = self.ledger.trials_by_id()
        for trial_id, run in self.done.items():
            spec = self.known[trial_id]
            if trial_id not in {o.trial_id for o in self.result.trials}:
                self._outcome(spec, "DONE", run.run_id, run)
            states = {t.state.name for t in in_optuna.get(trial_id, [])}
            if not states & {"COMPLETE", "PRUNED"}:
                self.ledger.record(spec, objective_values(self.study, run.metrics, {}))

    def _outcome(self, spec: TrialSpec, status: str, run_id: str, run: TrialRun) -> None:
        # MLflow holds no worker timing (trial_seconds, timing): an earlier run's outcome has none.
        epochs = int(run.metrics.get("epochs_completed", 0))
        self.result.trials.append(TrialOutcome.of(spec, status, run_id, run.metrics, epochs=epochs))

    def samples_left(self) -> bool:
        return self.sample_budget() > 0

    def sample_budget(self) -> int:
        """How many more variants the sampler may choose: the study's budget (`trial_count`
        counts the same) less those it chose in earlier runs."""
        return max(0, sample_budget(self.study) - len(self._sampled_before))

    def sampler(
        self, progress: Progress, printer: Printer
    ) -> Iterator[tuple[int, list[TrialSpec]]]:
        """The sampler's new variants, each as (Optuna trial number, its trials)."""

        def make_specs(levels: dict[str, Any]) -> list[TrialSpec]:
            return trials_for_variant(self.study, variant_from_levels(self.study, levels))

        known = list(self._sampled_before)
        for spec in self.known.values():
            if spec.levels and spec.levels not in known:
                known.append(spec.levels)
        for number, specs in sampled_variants(
            self.study,
            self.ledger,
            self.space,
            budget=self.sample_budget(),
            known=known,
            make_specs=make_specs,
        ):
            self._add(specs)
            self._record_plan()
            progress.grow(len(specs))
            printer.say(f"sampler chose {specs[0].variant}")
            yield number, specs

"""The study's plan, built from the loaded Study, that the parent run records as `plan.json`."""

from __future__ import annotations

from typing import Any

import yaml

from ablation.study import Study, all_variants, expand, factor_space, level_label, seed_trials
from ablation.track import names
from ablation.track.plan import StudyPlan, changed_keys, definition_keys, source_hash
from ablation.track.search import search_runs


def study_plan(study: Study) -> StudyPlan:
    """The plan of a study loaded from a file (ValueError for one built in code: no source)."""
    if study.source is None:
        raise ValueError(f"study {study.study!r} has no source file; load it with load_study")
    space = factor_space(study) if study.factors else {}
    return StudyPlan(
        study=study.study,
        study_hash=source_hash(study.source),
        design=study.design,
        baseline=study.baseline,
        metric=study.metric.name,
        metric_mode=study.metric.mode,
        metric_epoch=study.metric.epoch,
        factor_levels={key: [level_label(v) for v in levels] for key, levels in space.items()},
        factor_values=space,
        variants=[v.name for v in all_variants(study)],
        seeds=list(study.seeds),
        decision=study.decision.model_dump(mode="json") if study.decision else None,
        sequential_seeds=(
            {"start": seq.start, "max": seq.max}
            if (seq := study.sequential_seeds) is not None
            else None
        ),
        trial_ids=planned_trial_ids(study),
        definition=definition_keys(yaml.safe_load(study.source) or {}),
    )


def planned_trial_ids(study: Study) -> list[str]:
    """The trial ids this definition may run, in run order: every variant x seed; with
    sequential seeds, every seed up to `max` (a look may ask for any of them). Design optuna:
    the baseline's and the named variants' (the sampler's are added as it chooses them)."""
    ids = [spec.trial_id for spec in expand(study)]
    seq = study.sequential_seeds
    if seq is not None and seq.max > seq.start:
        variants = [v.name for v in all_variants(study)]
        ids += [spec.trial_id for spec in seed_trials(study, variants, range(seq.start, seq.max))]
    return ids


# Top-level keys that say how a study runs or is described, never what a trial computes:
# an edit to them alone leaves the definition (and every trial id) as it was.
EXECUTION_KEYS = ("description", "resources", "tracking")


def change_message(
    before: StudyPlan | None, now: StudyPlan, *, kept: int | None, newly_aside: int
) -> str:
    """How a rerun (and its dry run) names a changed definition: the keys the edit changed,
    the finished trials it keeps (`kept` None: not known yet) and those this change sets
    aside (`newly_aside`: finished, in the earlier plan, not in this one; they stay in
    MLflow, and the report, status and dashboard count every set-aside trial). "" when the
    definition did not change: the same file, or the same trial ids with no key but an
    execution-only one (or a comment) changed."""
    if before is None:
        return ""
    ids_changed = trial_ids_changed(before, now)
    if before.study_hash == now.study_hash and not ids_changed:
        return ""
    if before.definition is None:
        what = ["the study file changed (its earlier plan records no keys to compare)"]
    else:
        what = changed_keys(_trial_keys(before.definition), _trial_keys(now.definition or {}))
    file_changed = bool(what)
    if not what and not ids_changed:
        return ""  # a comment, the layout, or an execution-only key: the same definition
    if not what:
        what = ["no key of the study file; the code or data that shape results did"]
    text = f"the definition of study {now.study} changed since its last run:\n  " + (
        "\n  ".join(what)
    )
    if kept is None:  # design optuna, before a run: its sampled variants are not known yet
        return text + "\n(the run says how many finished trials it keeps and sets aside)"
    text += f"\nkeeps {kept} finished trial{'s' * (kept != 1)}"
    if newly_aside:
        text += (
            f", sets aside {newly_aside} of an earlier definition (kept in MLflow, never "
            f"mixed into this study's report"
        )
        # Only an edit to the file can be undone by restoring it; changed code cannot.
        text += "; restoring the earlier file brings them back)" if file_changed else ")"
    return text


def _trial_keys(definition: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in definition.items() if k.split(".", 1)[0] not in EXECUTION_KEYS}


def trial_ids_changed(before: StudyPlan, now: StudyPlan) -> bool:
    """Whether the two plans name different sets of trials (False when the earlier plan was
    recorded before plans held trial ids: its study hash says whether the file changed)."""
    if before.trial_ids is None or now.trial_ids is None:
        return False
    return set(before.trial_ids) != set(now.trial_ids)


def newly_set_aside(before: StudyPlan | None, now: StudyPlan, finished: set[str]) -> int:
    """How many finished trials this definition sets aside that the earlier one had: those
    set aside by an even earlier edit are not counted again (status and the report give the
    total)."""
    if before is None or before.trial_ids is None:
        return len(finished - set(now.trial_ids or []))
    return len((finished & set(before.trial_ids)) - set(now.trial_ids or []))


def finished_trial_ids(client: Any, parent_run_id: str, experiment_id: str) -> set[str]:
    """The trial ids of the finished child runs of a study run."""
    found = search_runs(
        client, [experiment_id], f"tags.`{names.PARENT_RUN_ID}` = '{parent_run_id}'"
    )
    return {
        r.data.tags[names.TRIAL_ID]
        for r in found
        if r.data.tags.get(names.STATUS) in names.DONE_STATUSES and names.TRIAL_ID in r.data.tags
    }

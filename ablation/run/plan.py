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


def change_message(
    before: StudyPlan | None, now: StudyPlan, *, kept: int | None, aside: int
) -> str:
    """How a rerun (and its dry run) names a changed definition: the keys the edit changed,
    the finished trials it keeps (`kept` None: not known yet) and those it sets aside (they
    stay in MLflow; the report, status and dashboard show the current definition's trials
    only). "" when the definition did not change."""
    if before is None or (before.study_hash == now.study_hash and not aside):
        return ""
    if before.definition is None:
        what = ["the study file changed (its earlier plan records no keys to compare)"]
    else:
        what = changed_keys(before.definition, now.definition or {})
    if not what and not aside:
        return ""  # a comment or the layout of the file: the same definition
    if not what:
        what = ["no key of the study file; the code or data that shape results did"]
    text = f"the definition of study {now.study} changed since its last run:\n  " + (
        "\n  ".join(what)
    )
    if kept is None:  # design optuna, before a run: its sampled variants are not known yet
        return text + "\n(the run says how many finished trials it keeps and sets aside)"
    text += f"\nkeeps {kept} finished trial{'s' * (kept != 1)}"
    if aside:
        text += (
            f", sets aside {aside} of an earlier definition (kept in MLflow, never mixed "
            f"into this study's report; restoring the earlier file brings them back)"
        )
    return text


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

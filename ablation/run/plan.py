"""The study's plan, built from the loaded Study, that the parent run records as `plan.json`."""

from __future__ import annotations

import yaml

from ablation.study import Study, all_variants, expand, factor_space, level_label, seed_trials
from ablation.track.plan import StudyPlan, definition_keys, source_hash


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

"""Study definitions: the YAML schema, loading with line numbers, designs and trial ids.

The driver's entry points:

    study = load_study(path)                 # a checked Study, or StudyError(.problems)
    trials = expand(study)                   # designed studies: every variant x every seed
    space = factor_space(study)              # design optuna: the levels the sampler picks among
    variant = variant_from_levels(study, {key: level, ...})
    trials = trials_for_variant(study, variant)   # one TrialSpec per seed
    table = trial_table(study); print(format_trial_table(table))   # `ablation run --dry-run`
"""

from ablation.study.design import (
    DesignError,
    FractionalDesign,
    all_variants,
    design_variants,
    expand,
    factor_space,
    fractional_design,
    level_label,
    levels_from_labels,
    named_variants,
    sample_budget,
    seed_trials,
    trial_count,
    variant_from_levels,
)
from ablation.study.load import (
    Problem,
    StudyError,
    load_for_command,
    load_study,
    parse_study,
    validate_files,
)
from ablation.study.schema import Study
from ablation.study.trials import TrialSpec, Variant, code_version, trial_id, trials_for_variant

__all__ = [
    "DesignError",
    "FractionalDesign",
    "Problem",
    "Study",
    "StudyError",
    "TrialSpec",
    "Variant",
    "all_variants",
    "code_version",
    "design_variants",
    "expand",
    "factor_space",
    "format_trial_table",
    "fractional_design",
    "level_label",
    "levels_from_labels",
    "load_for_command",
    "load_study",
    "named_variants",
    "parse_study",
    "sample_budget",
    "seed_trials",
    "trial_count",
    "trial_id",
    "trial_table",
    "trials_for_variant",
    "validate_files",
    "variant_from_levels",
]


def __getattr__(name: str):
    # The trial table imports torch (to count GFLOPs); validation must not pay for that.
    if name in ("trial_table", "format_trial_table"):
        from ablation.study import plan

        return getattr(plan, name)
    raise AttributeError(name)

"""Pure statistics of the ablation service: intervals, verdicts, power, sequential seeds.

numpy and scipy only (no torch, no MLflow, no pandas frames): the report (`ablation.report`)
reads comparisons through it, and the study layer's sequential plan and the driver decide which
seeds to run next with the same functions, so a decision on the dashboard is the decision the
driver acted on. (`ablation.stats.decide.decide` is reached through its module, which this
package's name `decide` would otherwise shadow.) The verdict words re-exported here are
`ablation.vocabulary.verdicts`'.
"""

from ablation.stats.decide import Decision, seeds_for_power
from ablation.stats.intervals import (
    BOOTSTRAP_MIN_N,
    bootstrap_mean_ci,
    holm,
    holm_levels,
    t_interval,
)
from ablation.stats.sequential import Look, SequentialPlan, looks, next_seeds
from ablation.vocabulary.verdicts import BETTER, DECISIONS, EQUIVALENT, UNDECIDED, WORSE

__all__ = [
    "BETTER",
    "BOOTSTRAP_MIN_N",
    "DECISIONS",
    "EQUIVALENT",
    "UNDECIDED",
    "WORSE",
    "Decision",
    "Look",
    "SequentialPlan",
    "bootstrap_mean_ci",
    "holm",
    "holm_levels",
    "looks",
    "next_seeds",
    "seeds_for_power",
    "t_interval",
]

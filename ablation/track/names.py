"""The MLflow names the runner writes and the reporter reads: the single source of both."""

from collections.abc import Mapping

from ablation.vocabulary import metrics
from ablation.vocabulary.direction import Direction

ROLE = "ablation.role"
ROLE_STUDY = "study"
ROLE_TRIAL = "trial"

# Parent run (one per study).
STUDY_HASH = "ablation.study_hash"
DESIGN = "ablation.design"
BASELINE = "ablation.baseline"
METRIC = "ablation.metric"
METRIC_MODE = "ablation.metric_mode"
GIT_COMMIT = "mlflow.source.git.commit"
STUDY_ARTIFACT_DIR = "study"
DASHBOARD_ARTIFACT = "dashboard.html"  # the study dashboard, logged on the parent run
PLUGINS_ARTIFACT = "plugins.json"  # what trial ids hashed of each MODULE:NAME plugin, at the root
PLUGINS_ARTIFACT_DIR = "plugins"  # plugins/<digest>/: each version of the plugins' sources
PLUGINS_DIGEST = "ablation.plugins_digest"  # the <digest> of the sources the study runs now
PLAN_ARTIFACT = "plan.json"  # the study's plan (ablation.track.plan.StudyPlan), at the root
LOOKS_ARTIFACT = "looks.json"  # sequential seeds: every look so far (Look.to_record()), at the root
STUDY_FILE = "ablation.study_file"  # the study file's path as given to `ablation run`
VERSION_PREFIX = "version."  # version.<package> = installed version (torch, ray, ...)
TRIALS_TOTAL = "ablation.trials_total"  # trials the study has (grows as a sampler picks)
OPTUNA_STORAGE = "ablation.optuna_storage"  # where the study's Optuna trials live

# Child run (one per trial).
PARENT_RUN_ID = "mlflow.parentRunId"
TRIAL_ID = "ablation.trial_id"
VARIANT = "ablation.variant"
SEED = "ablation.seed"
STATUS = "ablation.status"
ERROR = "ablation.error"
REUSED_FROM = "ablation.reused_from"
FACTOR_PREFIX = "factor."

STATUS_FINISHED = "FINISHED"
STATUS_STOPPED = "STOPPED"
STATUS_FAILED = "FAILED"
STATUS_RUNNING = "RUNNING"
STATUS_KILLED = "KILLED"  # interrupted (Ctrl-C); rerun when the study is run again
# A trial that is done: it trained to the end, or the scheduler (ASHA) stopped it early.
DONE_STATUSES = (STATUS_FINISHED, STATUS_STOPPED)

# The metric names themselves: ablation/vocabulary/metrics.py.
EPOCH_METRICS = metrics.EPOCH_METRICS
FINAL_METRICS = metrics.FINAL_METRICS


def study_metric(tags: Mapping[str, str]) -> tuple[str, Direction]:
    """The metric a parent run's study compares on, and which way it improves (the schema's
    defaults, val_top1_error and min, where a tag is missing)."""
    name = tags.get(METRIC) or "val_top1_error"
    return name, Direction.of(tags.get(METRIC_MODE) or Direction.MIN)


def run_name(variant: str, seed: int) -> str:
    """The deterministic name of a trial's child run."""
    return f"{variant}/seed={seed}"

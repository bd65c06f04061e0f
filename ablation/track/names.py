"""The MLflow names the runner writes and the reporter reads: the single source of both."""

from ablation.vocabulary import metrics

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

# The metric names themselves: ablation/vocabulary/metrics.py.
EPOCH_METRICS = metrics.EPOCH_METRICS
FINAL_METRICS = metrics.FINAL_METRICS


def run_name(variant: str, seed: int) -> str:
    """The deterministic name of a trial's child run."""
    return f"{variant}/seed={seed}"

"""The study's plan as the parent run records it: `plan.json`, written once by the driver.

What the report needs to know about the study beyond its runs (the order of its variants and of
each factor's levels, its baseline, the metric and the epoch it is read at, the study file's
hash, the seeds), so that it never has to download and parse the study file again. Plain data:
the driver builds it from the loaded Study (ablation.run.plan), the report reads it back.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ablation.track import names

# Bumped when a key changes meaning; a reader refuses a plan newer than it knows.
PLAN_VERSION = 1


def source_hash(source: bytes) -> str:
    """The study file's hash: the first 16 hex chars of the sha256 of its bytes."""
    return hashlib.sha256(source).hexdigest()[:16]


@dataclass(frozen=True)
class StudyPlan:
    """One study's plan. `factor_levels`: each factor's level labels in declared order;
    `factor_values`: the same levels as values; `variants`: variant names in run order.
    `decision` and `sequential_seeds` are optional keys: a reader of version 1 without them
    ignores them, and a plan recorded without them reads back as None."""

    study: str
    study_hash: str
    design: str
    baseline: str | None
    metric: str
    metric_mode: str
    metric_epoch: int | None
    factor_levels: dict[str, list[str]] = field(default_factory=dict)
    factor_values: dict[str, list[Any]] = field(default_factory=dict)
    variants: list[str] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    # The study's `decision:` {min_effect, alpha, power, pilot_sd} and, for sequential seeds,
    # {start, max} (`seeds` then holds the first `start`); None when the file has neither.
    decision: dict[str, Any] | None = None
    sequential_seeds: dict[str, int] | None = None
    # The trial ids of this definition, in run order: the report, status and dashboard show
    # these trials only, so a rerun of an edited file never mixes two definitions. With
    # sequential seeds, every seed up to `max`; with design optuna, the sampled variants' ids
    # are added as the sampler chooses them. None: a plan recorded before ids were (every
    # trial of the study run is then shown).
    trial_ids: list[str] | None = None
    # The study file as dotted keys (`train.epochs` -> 2): what a rerun compares to name
    # the keys an edit changed. None on a plan recorded before it was.
    definition: dict[str, Any] | None = None
    version: int = PLAN_VERSION

    def to_json(self) -> str:
        """The plan as `plan.json` holds it."""
        return json.dumps(asdict(self), indent=2, sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> StudyPlan:
        """The plan in `text`; ValueError for a plan this code cannot read."""
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("plan.json is not a JSON object")
        version = data.get("version")
        if not isinstance(version, int) or version > PLAN_VERSION:
            raise ValueError(f"plan.json version {version!r}; this code reads up to {PLAN_VERSION}")
        known = set(cls.__dataclass_fields__)
        try:
            return cls(**{k: v for k, v in data.items() if k in known})
        except TypeError as err:  # a required key missing
            raise ValueError(f"plan.json incomplete: {err}") from None


def definition_keys(document: Any, prefix: str = "") -> dict[str, Any]:
    """A study file's parsed YAML as dotted keys (mappings flattened, lists kept whole)."""
    if not isinstance(document, dict):
        return {prefix.rstrip("."): document} if prefix else {}
    out: dict[str, Any] = {}
    for key, value in document.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(definition_keys(value, f"{dotted}."))
        else:
            out[dotted] = value
    return out


_UNSET = object()


def changed_keys(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """`key: old -> new` for each dotted key an edit changed, added or removed, in file order."""
    lines = []
    for key in [*after, *(k for k in before if k not in after)]:
        old, new = before.get(key, _UNSET), after.get(key, _UNSET)
        if old != new:
            lines.append(f"{key}: {_shown(old)} -> {_shown(new)}")
    return lines


def _shown(value: Any) -> str:
    if value is _UNSET:
        return "(not set)"
    return json.dumps(value, default=str) if not isinstance(value, str) else value


def current_trials(children: list[Any], plan: StudyPlan | None) -> tuple[list[Any], int]:
    """(the child runs of the plan's trial ids, how many others were set aside). A plan
    without trial ids (recorded before they were) keeps every child run."""
    if plan is None or plan.trial_ids is None:
        return children, 0
    planned = set(plan.trial_ids)
    current = [r for r in children if r.data.tags.get(names.TRIAL_ID) in planned]
    return current, len(children) - len(current)


def set_aside_note(count: int) -> str:
    """The one wording of trials left out for being of an earlier definition."""
    return (
        f"set aside: {count} trial{'s' * (count != 1)} of an earlier definition (in MLflow "
        f"under the study run; never averaged or paired with the current ones)"
    )


def load_plan(client: Any, run_id: str) -> StudyPlan:
    """The `plan.json` of the study run `run_id` through an MLflow-like client; raises
    (OSError, MLflow's errors, ValueError) when there is none or it cannot be read."""
    with tempfile.TemporaryDirectory() as folder, _quiet_downloads():
        local = client.download_artifacts(run_id, names.PLAN_ARTIFACT, folder)
        return StudyPlan.from_json(Path(local).read_text(encoding="utf-8"))


@contextlib.contextmanager
def _quiet_downloads() -> Iterator[None]:
    """No progress bar on stderr for the one small plan file fetched."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    before = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before

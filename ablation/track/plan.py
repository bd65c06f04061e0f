"""The study's plan as the parent run records it: `plan.json`, written once by the driver.

What the report needs to know about the study beyond its runs (the order of its variants and of
each factor's levels, its baseline, the metric and the epoch it is read at, the study file's
hash, the seeds), so that it never has to download and parse the study file again. Plain data:
the driver builds it from the loaded Study (ablation.run.plan), the report reads it back.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

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

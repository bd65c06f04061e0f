"""A trial's resolved configuration as plain, typed, pydantic-free values: what `train_trial` reads.

The study schema (ablation/study/schema.py, pydantic) owns every key's validation and default;
these frozen dataclasses restate no default. They are built from the schema's dump
(`TrialSettings.from_dict(TrialConfig.model_validate(raw).model_dump(mode="json"))`), which
must carry every key, so the training side (train, models, attention, data) imports neither
pydantic nor anything above it: the GPU check (benchmarks/gpu_check.py) runs it on a Python
without pydantic, Ray, MLflow or Optuna. tests/test_train.py checks that the fields here are
exactly the schema's.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DatasetSettings:
    name: str
    root: str | None
    image_size: int | None
    train_samples: int | None
    val_samples: int | None
    split_seed: int
    num_workers: int
    clutter: dict[str, Any] | None

    def as_dict(self) -> dict[str, Any]:
        """The section as plain data (what `build_datasets` and `data_identity` read)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ModelSettings:
    backbone: str
    attention: str
    cbam: dict[str, Any]  # checked again by ablation.attention.normalize_cbam_knobs


@dataclass(frozen=True)
class OptimizerSettings:
    name: str
    lr: float
    momentum: float
    nesterov: bool
    weight_decay: float
    betas: list[float]


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    batch_size: int
    optimizer: OptimizerSettings
    schedule: str
    milestones: list[int] | None
    gamma: float
    warmup_epochs: int
    label_smoothing: float
    amp: bool  # the old name of precision: fp16 (the schema maps it; train reads `precision`)
    precision: str
    channels_last: bool
    compile: bool
    data_placement: str
    deterministic: bool
    cbam_backend: str


@dataclass(frozen=True)
class MetricSettings:
    name: str
    mode: str
    epoch: int | None


@dataclass(frozen=True)
class TrialSettings:
    dataset: DatasetSettings
    model: ModelSettings
    train: TrainSettings
    metric: MetricSettings

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialSettings:
        """From the schema's dump of a resolved `TrialConfig`; every key must be there.

        Raises ValueError naming a missing or unknown key (a dump from another schema version).
        """
        return _build(cls, data, "")


def _build(cls: type, data: Mapping[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    missing, unknown = set(names) - set(data), set(data) - set(names)
    if missing or unknown:
        problem = f"missing {sorted(missing)}" if missing else f"unknown {sorted(unknown)}"
        raise ValueError(f"trial config section {where or '(top)'!r}: {problem} keys")
    values = {}
    for name in names:
        kind, value = hints[name], data[name]
        nested = _dataclass_in(kind)
        if nested is not None and value is not None:
            value = _build(nested, value, f"{where}.{name}".lstrip("."))
        values[name] = value
    return cls(**values)


def _dataclass_in(kind: Any) -> type | None:
    if dataclasses.is_dataclass(kind):
        return kind
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        for arg in typing.get_args(kind):
            if dataclasses.is_dataclass(arg):
                return arg
    return None

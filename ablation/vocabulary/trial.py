"""A trial's configuration, defined once: every key of the dataset, model, train and metric
sections, its type, its default and its bounds, as frozen pydantic-free dataclasses.

`train_trial` reads these. The study schema (ablation/study/schema.py) builds its pydantic
models of the same sections from them (adding the checks that span keys and the messages), so
a key or a default is changed here and nowhere else. Plain stdlib only: the training side
(train, models, attention, data) imports this without pydantic, Ray, MLflow or Optuna, as the
GPU check (benchmarks/gpu_check.py) runs it.

Bounds ride in each field's metadata (`key(...)`): `ge`, `gt`, `le`, `lt` on a number,
`min_length`/`max_length` on a list, and `items` for the bounds of a list's items; None is
always allowed where the type allows it. CBAM's knobs (`model.cbam`) and the clutter
generator's (`dataset.clutter`) are mappings here; their names, values and defaults are
ablation.vocabulary.cbam's and .datasets' own.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Literal

from ablation.vocabulary import cbam as knobs
from ablation.vocabulary.direction import Direction
from ablation.vocabulary.metrics import COMPARABLE

# The values a key may take, where they are a fixed set (the schema checks them as literals).
# Data sets, backbones and attentions are names or "MODULE:NAME" plugins (vocabulary/
# plugins.py): strings the schema checks.
Optimizer = Literal["sgd", "adamw"]
Schedule = Literal["cosine", "step", "constant"]
# The autocast dtype: bf16 also runs on the CPU; fp16 (with a GradScaler) needs CUDA and runs
# in fp32 elsewhere.
Precision = Literal["fp32", "bf16", "fp16"]
# Where batches come from: "device" holds an in-memory set (or CIFAR's arrays) on the trial's
# device and draws and augments batches there; "loader" a DataLoader; "auto" the device on
# CUDA, the loader on the CPU.
DataPlacement = Literal["auto", "device", "loader"]
CBAMBackend = Literal[knobs.CBAM_BACKENDS]  # type: ignore[valid-type]
# What variants can be compared on: a per-epoch metric, or a final cost of the model.
MetricName = Literal[COMPARABLE]  # type: ignore[valid-type]


def key(
    default: Any = dataclasses.MISSING, *, items: dict[str, float] | None = None, **bounds: float
) -> Any:
    """A section key with its default (a list or mapping is copied for each instance) and the
    bounds the study schema checks (`ge=1`, `items={"gt": 0}`, ...)."""
    metadata = {"bounds": bounds, "items": items or {}}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def _cbam_defaults() -> dict[str, Any]:
    # Lists, as a study file and the schema's dump spell them.
    return {k: list(v) if isinstance(v, tuple) else v for k, v in knobs.DEFAULTS.as_dict().items()}


@dataclass(frozen=True)
class DatasetSettings:
    """`dataset:` which images, how many, and how they are split."""

    name: str  # one of ablation.vocabulary.datasets.DATASETS, or "MODULE:NAME"
    root: str | None = None
    image_size: int | None = key(None, ge=8)  # None: the data set's default
    train_samples: int | None = key(None, ge=1)
    val_samples: int | None = key(None, ge=1)
    split_seed: int = key(0, ge=0)
    num_workers: int = key(0, ge=0)
    clutter: dict[str, Any] | None = None  # ablation.vocabulary.datasets.ClutterParams
    args: dict[str, Any] = key({})  # the keyword arguments of a "MODULE:NAME" data set

    def as_dict(self) -> dict[str, Any]:
        """The section as plain data (what `build_datasets` and `data_identity` read)."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ModelSettings:
    """`model:` the backbone and the attention inserted into it."""

    backbone: str  # one of ablation.vocabulary.backbones.BACKBONES, or "MODULE:NAME"
    backbone_args: dict[str, Any] = key({})  # the keyword arguments of a "MODULE:NAME" backbone
    # ablation.vocabulary.attention.ATTENTIONS, or "MODULE:NAME"
    attention: str = "cbam"
    attention_args: dict[str, Any] = key({})  # a zoo's or a "MODULE:NAME" attention's keywords
    # ablation.vocabulary.cbam's knobs; checked again by ablation.attention.normalize_cbam_knobs
    cbam: dict[str, Any] = field(default_factory=_cbam_defaults)


@dataclass(frozen=True)
class OptimizerSettings:
    """`train.optimizer:` SGD (momentum, nesterov) or AdamW (betas)."""

    name: Optimizer = "sgd"
    lr: float = key(0.1, gt=0)
    momentum: float = key(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = key(5.0e-4, ge=0)
    betas: list[float] = key([0.9, 0.999], min_length=2, max_length=2, items={"ge": 0, "lt": 1})


@dataclass(frozen=True)
class TrainSettings:
    """`train:` the schedule, the numerics and where the work runs (docs/gpu.md)."""

    epochs: int = key(10, ge=1)
    batch_size: int = key(128, ge=1)
    optimizer: OptimizerSettings = field(default_factory=OptimizerSettings)
    schedule: Schedule = "cosine"
    milestones: list[int] | None = key(None, items={"ge": 1})  # None: epochs/2 and 3/4 epochs
    gamma: float = key(0.1, gt=0, le=1)
    warmup_epochs: int = key(0, ge=0)
    label_smoothing: float = key(0.0, ge=0, lt=1)
    # An alias of `precision: fp16`, so a study file that says `amp: true` still runs; the
    # schema resolves it, and train reads `precision` only.
    amp: bool = False
    precision: Precision = "fp32"
    channels_last: bool = False
    compile: bool = False  # torch.compile of the model; its time is logged as compile_seconds
    data_placement: DataPlacement = "auto"
    deterministic: bool = True
    # Which implementation of CBAM's equations trains (docs/backends.md); logged on
    # every run and part of the trial id, which hashes the sources it may run.
    cbam_backend: CBAMBackend = knobs.DEFAULT_BACKEND


@dataclass(frozen=True)
class MetricSettings:
    """`metric:` what variants are compared on, which way is better, and at which epoch."""

    name: MetricName = "val_top1_error"
    mode: Direction = Direction.MIN
    epoch: int | None = key(None, ge=1)  # None: the last


@dataclass(frozen=True)
class TrialSettings:
    """One trial's resolved configuration: what `train_trial` receives."""

    dataset: DatasetSettings
    model: ModelSettings
    train: TrainSettings = field(default_factory=TrainSettings)
    metric: MetricSettings = field(default_factory=MetricSettings)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialSettings:
        """From a complete resolved config as plain data (the GPU check's; a trial spec's
        `config` comes through the study schema's `TrialConfig.settings()`): every key must be
        there, so a config from another version is refused.

        Raises ValueError naming a missing or unknown key. Values are taken as they are: the
        study schema is what checks them.
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
        elif isinstance(kind, type) and issubclass(kind, Enum):
            value = kind(value)
        values[name] = value
    return cls(**values)


def _dataclass_in(kind: Any) -> type | None:
    if dataclasses.is_dataclass(kind):
        return kind  # type: ignore[return-value]
    if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
        for arg in typing.get_args(kind):
            if dataclasses.is_dataclass(arg):
                return arg  # type: ignore[return-value]
    return None

"""The study file as typed models: every section of the contract (../shared/DESIGN.md).

Every model forbids unknown keys and is strict (no silent "7" -> 7 coercion), so a typo or a
value of the wrong type is an error at parse time, never a surprise inside a trial.
`docs/study-file.md` is the reference of every key; keep the two in step.

The four sections a trial depends on (dataset, model, train, metric) form a `TrialConfig`.
Their keys, types, defaults and bounds are defined once, as the pydantic-free dataclasses of
ablation/vocabulary/trial.py that `train_trial` reads; the models here are built from those
(`_section`) and add the checks only a parser needs (the backbone's name, `amp`'s alias), and
`TrialConfig.settings()` hands the training side its dataclasses. Factor and variant keys are
dotted paths into it, checked with `path_problem` and applied with `apply_overrides`.
Cross-section rules (metric.epoch <= train.epochs, ...) live in `config_problems` so they hold
for the base configuration and for every variant alike.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ablation.vocabulary import cbam as knobs
from ablation.vocabulary.attention import ATTENTIONS, BUILT_IN_ATTENTIONS
from ablation.vocabulary.backbones import BACKBONES
from ablation.vocabulary.datasets import DATASETS, ClutterParams
from ablation.vocabulary.direction import Direction
from ablation.vocabulary.plugins import PLUGIN_KEYS, PluginError, is_plugin, parse_plugin
from ablation.vocabulary.trial import (
    DatasetSettings,
    MetricName,
    MetricSettings,
    ModelSettings,
    OptimizerSettings,
    TrainSettings,
    TrialSettings,
)

_CLUTTER = ClutterParams()  # the generator's defaults

# The sections of a resolved trial configuration, and those factors/variants may change
# (the metric stays fixed so that variants are compared on the same thing).
CONFIG_SECTIONS = ("dataset", "model", "train", "metric")
VARIABLE_SECTIONS = ("dataset", "model", "train")

# CBAM's knob values: ablation.vocabulary.cbam's (torch-free), which the module checks too.
ChannelPool = Literal[knobs.CHANNEL_POOLS]
SpatialPool = Literal[knobs.SPATIAL_POOLS]
Gate = Literal[knobs.GATES]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True)


def _distinct(values: list[Any]) -> list[Any]:
    if not values:
        raise ValueError("must be a non-empty list")
    seen: list[Any] = []
    for v in values:
        if v in seen:
            raise ValueError(f"has {v!r} twice; list each value once")
        seen.append(v)
    return values


def _direction(value: Any) -> Direction:
    # A literal's error, not an enum's: the study loader then suggests the word meant.
    if value not in tuple(Direction):
        raise PydanticCustomError(
            "literal_error", "Input should be {expected}", {"expected": "'min' or 'max'"}
        )
    return Direction(value)


# `min` or `max`, held as a Direction (a StrEnum, so it dumps as the word).
Mode = Annotated[Direction, BeforeValidator(_direction)]


def _section(settings: type, **models: type[BaseModel]) -> type[_Model]:
    """The pydantic model of a trial section from its dataclass (ablation/vocabulary/trial.py):
    the same keys, types, defaults and bounds. `models` names the model that checks a nested
    key (`optimizer=OptimizerConfig`); such a key's default is that model's defaults."""
    hints = typing.get_type_hints(settings)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(settings):
        hint, model = hints[f.name], models.get(f.name)
        if model is None:
            annotation = _checked(hint, f.metadata)
        else:
            annotation = model | None if type(None) in typing.get_args(hint) else model
        if f.default_factory is not dataclasses.MISSING:
            default = Field(default_factory=model or f.default_factory)
        else:
            default = ... if f.default is dataclasses.MISSING else f.default
        fields[f.name] = (annotation, default)
    return create_model(f"_{settings.__name__}", __base__=_Model, **fields)


def _checked(hint: Any, metadata: typing.Mapping[str, Any]) -> Any:
    """A dataclass field's type with its bounds as pydantic constraints (None stays allowed)."""
    if hint is Direction:
        return Mode
    bounds, items = metadata.get("bounds", {}), metadata.get("items", {})
    if not bounds and not items:
        return hint
    args = typing.get_args(hint)
    if type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return _checked(inner, metadata) | None
    if items:
        (item,) = typing.get_args(hint)
        hint = list[Annotated[item, Field(**items)]]
    return Annotated[hint, Field(**bounds)] if bounds else hint


class ClutterConfig(_Model):
    """The cluttered-digits generator's knobs (ablation/data/cluttered.py)."""

    fragments: Annotated[int, Field(ge=0)] = _CLUTTER.fragments
    fragment_size: Annotated[int, Field(ge=1, le=8)] = _CLUTTER.fragment_size
    digit_size: Annotated[
        list[Annotated[float, Field(gt=0, le=1)]], Field(min_length=2, max_length=2)
    ] = list(_CLUTTER.digit_size)

    @field_validator("digit_size")
    @classmethod
    def _ordered(cls, v: list[float]) -> list[float]:
        if v[0] > v[1]:
            raise ValueError(f"must be [low, high] with low <= high; got {v}")
        return v


def _name_or_plugin(value: str, known: tuple[str, ...] | list[str], what: str) -> str:
    """`value` when it is one of `known` or a well-formed MODULE:NAME (imported later, by the
    study's plugin checks); else ValueError naming the likely one."""
    if is_plugin(value):
        try:
            parse_plugin(value)
        except PluginError as err:
            raise ValueError(str(err)) from None
        return value
    if value not in known:
        raise ValueError(
            f"unknown {what} {value!r}{suggest(value, known)}; known: {', '.join(known)}, "
            "or MODULE:NAME for your own"
        )
    return value


class DatasetConfig(_section(DatasetSettings, clutter=ClutterConfig)):  # type: ignore[misc]
    """`dataset:` which images, how many, and how they are split."""

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        return _name_or_plugin(v, tuple(DATASETS), "data set")


class CBAMConfig(_Model):
    """CBAM's knobs; names, values and defaults (the paper's) are ablation.vocabulary.cbam's."""

    channel_pool: list[ChannelPool] = list(knobs.DEFAULTS.channel_pool)
    spatial_pool: list[SpatialPool] = list(knobs.DEFAULTS.spatial_pool)
    kernel_size: Annotated[int, Field(ge=1)] = knobs.DEFAULTS.kernel_size
    reduction: Annotated[int, Field(ge=1)] = knobs.DEFAULTS.reduction
    order: Literal[knobs.ORDERS] = knobs.DEFAULTS.order
    gates: list[Gate] = list(knobs.DEFAULTS.gates)
    spatial_norm: bool = knobs.DEFAULTS.spatial_norm
    init: Literal[knobs.INITS] = knobs.DEFAULTS.init

    @field_validator("channel_pool", "spatial_pool", "gates")
    @classmethod
    def _subset(cls, v: list[str]) -> list[str]:
        return _distinct(v)

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError(
                f"must be odd (3, 5, 7, ...) so the spatial map keeps its size; got {v}"
            )
        return v


class ModelConfig(_section(ModelSettings, cbam=CBAMConfig)):  # type: ignore[misc]
    """`model:` the backbone and the attention inserted into it."""

    @field_validator("backbone")
    @classmethod
    def _known(cls, v: str) -> str:
        return _name_or_plugin(v, tuple(BACKBONES), "backbone")

    @field_validator("attention")
    @classmethod
    def _known_attention(cls, v: str) -> str:
        return _name_or_plugin(v, ATTENTIONS, "attention")


class OptimizerConfig(_section(OptimizerSettings)):  # type: ignore[misc]
    """`train.optimizer:` SGD (momentum, nesterov) or AdamW (betas)."""


class TrainConfig(_section(TrainSettings, optimizer=OptimizerConfig)):  # type: ignore[misc]
    """`train:` the schedule, the numerics and where the work runs."""

    @model_validator(mode="after")
    def _amp_alias(self) -> TrainConfig:
        if self.amp and self.precision == "fp32":
            self.precision = "fp16"
        elif self.amp and self.precision != "fp16":
            raise ValueError(
                f"amp: true is the old name of precision: fp16, so it contradicts precision: "
                f"{self.precision}; drop amp and keep precision"
            )
        return self


class MetricConfig(_section(MetricSettings)):  # type: ignore[misc]
    """`metric:` what variants are compared on, which way is better, and at which epoch."""


class TrialConfig(  # type: ignore[misc]
    _section(
        TrialSettings,
        dataset=DatasetConfig,
        model=ModelConfig,
        train=TrainConfig,
        metric=MetricConfig,
    )
):
    """The resolved configuration of one trial, checked; `settings()` is what `train_trial`
    receives."""

    def settings(self) -> TrialSettings:
        """The same configuration as the pydantic-free dataclasses the training side reads."""
        return TrialSettings.from_dict(self.model_dump())


class Objective(_Model):
    metric: MetricName
    mode: Mode = Direction.MIN


class SearchConfig(_Model):
    sampler: Literal["tpe", "random", "nsga2", "grid"] = "tpe"
    n_trials: Annotated[int, Field(ge=1)] | None = None
    objectives: Annotated[list[Objective], Field(min_length=1)] | None = None
    storage: str | None = None
    seed: int = 0


class EarlyStoppingConfig(_Model):
    scheduler: Literal["asha"] = "asha"
    grace_epochs: Annotated[int, Field(ge=1)] = 1
    reduction_factor: Annotated[float, Field(gt=1)] = 3.0


class DecisionConfig(_Model):
    """`decision:` the smallest effect worth finding (metric units) and the error rates; with it
    every comparison ends better, worse, equivalent or undecided (docs/study-file.md)."""

    min_effect: Annotated[float, Field(gt=0)]
    alpha: Annotated[float, Field(gt=0, lt=0.5)] = 0.05
    power: Annotated[float, Field(gt=0, lt=1)] = 0.8
    pilot_sd: Annotated[float, Field(gt=0)] | None = None


class SequentialSeeds(_Model):
    """`seeds: {start, max}`: run seeds 0..start-1 of every variant, then one more seed at a time
    for the comparisons still undecided (and the baseline), up to max seeds."""

    start: Annotated[int, Field(ge=2)]
    max: Annotated[int, Field(ge=2, le=200)]

    @property
    def all_seeds(self) -> list[int]:
        """Every seed the sequence may run, in order (seed values 0 .. max - 1)."""
        return list(range(self.max))


class ResourcesConfig(_Model):
    cpus_per_trial: Annotated[float, Field(gt=0)] = 1.0
    gpus_per_trial: Annotated[float, Field(ge=0)] = 0.0
    max_concurrent: Annotated[int, Field(ge=1)] | None = None
    max_retries: Annotated[int, Field(ge=0)] = 1


class TrackingConfig(_Model):
    uri: str | None = None


class FractionalConfig(_Model):
    """Options of `design: fractional` (pyDOE3 generators: letters a, b, ... per factor)."""

    resolution: Annotated[int, Field(ge=4)] | None = None
    generators: str | None = None

    @model_validator(mode="after")
    def _one(self) -> FractionalConfig:
        if self.resolution is not None and self.generators is not None:
            raise ValueError("give fractional.resolution or fractional.generators, not both")
        return self


class Study(_Model):
    """A whole study file, checked. Returned by `ablation.study.load_study`.

    `baseline` is always set on a loaded study (when the file omits it, the variant equal to
    the base configuration). `path` is the file it came from.
    """

    study: Annotated[
        str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    ]
    description: str = ""
    dataset: DatasetConfig
    model: ModelConfig
    train: TrainConfig = TrainConfig()
    metric: MetricConfig = MetricConfig()
    design: Literal["full-factorial", "one-at-a-time", "fractional", "optuna"] = "full-factorial"
    factors: dict[str, list[Any]] = {}
    variants: list[dict[str, Any]] = []
    baseline: str | None = None
    # A list of seeds, or {start, max} for sequential seeds; a loaded study always holds the
    # list (the first `start` seeds), and `sequential_seeds` the {start, max}.
    seeds: list[Annotated[int, Field(ge=0)]] | SequentialSeeds = [0]
    decision: DecisionConfig | None = None
    search: SearchConfig = SearchConfig()
    fractional: FractionalConfig | None = None
    early_stopping: EarlyStoppingConfig | None = None
    resources: ResourcesConfig = ResourcesConfig()
    tracking: TrackingConfig = TrackingConfig()

    _path: str | None = PrivateAttr(default=None)
    _source: bytes | None = PrivateAttr(default=None)

    @property
    def path(self) -> str | None:
        """The file the study was loaded from (None when built in code)."""
        return self._path

    @property
    def source(self) -> bytes | None:
        """The study file's bytes as read (None when built in code): the driver hashes and
        records these, so the file is read once, at loading."""
        return self._source

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int] | SequentialSeeds) -> list[int] | SequentialSeeds:
        return _distinct(v) if isinstance(v, list) else v

    _sequential: SequentialSeeds | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _seed_list(self) -> Study:
        # The driver, the plan and the trial ids read `seeds` as the seeds to run now.
        if isinstance(self.seeds, SequentialSeeds):
            self._sequential = self.seeds
            self.seeds = list(range(self.seeds.start))
        return self

    @property
    def folder(self) -> Path | None:
        """The study file's folder, first on the import path of its MODULE:NAME plugins (None
        for a study built in code: plugins then come from the import path as it is)."""
        return Path(self._path).resolve().parent if self._path else None

    def plugins(self) -> list[str]:
        """Every MODULE:NAME the study may use (base keys, factor levels, variants), once each,
        key by key: what is validated, shipped to the workers and kept on the parent run."""
        found: list[str] = []
        base = self.base_config()
        for key in PLUGIN_KEYS:
            found.append(get_path(base, key))
            found.extend(self.factors.get(key, []))
            found.extend(v[key] for v in self.variants if key in v)
        return list(dict.fromkeys(v for v in found if is_plugin(v)))

    @property
    def sequential_seeds(self) -> SequentialSeeds | None:
        """`seeds: {start, max}` when the study adds seeds until each comparison is decided."""
        return self._sequential

    def base_config(self) -> dict[str, Any]:
        """The base sections (dataset/model/train/metric) as plain data, before the defaults
        that depend on the data set (`fill_defaults`): overrides are applied to this."""
        return {s: getattr(self, s).model_dump(mode="json") for s in CONFIG_SECTIONS}

    @property
    def objectives(self) -> list[Objective]:
        """What the Optuna sampler optimises: search.objectives, else the study's metric."""
        return self.search.objectives or [Objective(metric=self.metric.name, mode=self.metric.mode)]


# -- dotted paths --------------------------------------------------------------------------


def suggest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    """The hint ``(did you mean X?)`` for the choice closest to `word`; empty if none is."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def path_problem(path: str) -> str | None:
    """Why a dotted factor/variant key is not a path into the configuration, or None if it is.

    The path must name a key of the dataset, model or train section (a leaf like
    `model.cbam.kernel_size` or a whole sub-section like `train.optimizer`).
    """
    parts = path.split(".")
    if len(parts) < 2 or not all(parts):
        return (
            f"{path!r} is not a dotted key into a section (e.g. model.cbam.kernel_size); "
            f"sections: {', '.join(VARIABLE_SECTIONS)}"
        )
    if parts[0] not in VARIABLE_SECTIONS:
        if parts[0] == "metric":
            return "the metric is the same for every variant; factors and variants cannot change it"
        hint = suggest(parts[0], VARIABLE_SECTIONS)
        return f"unknown section {parts[0]!r}{hint}; sections: {', '.join(VARIABLE_SECTIONS)}"
    model: type[BaseModel] | None = TrialConfig
    for depth, part in enumerate(parts):
        if model is None:
            return f"{'.'.join(parts[:depth])} is a value, not a section; it has no key {part!r}"
        fields = model.model_fields
        if part not in fields:
            where = ".".join(parts[:depth])
            hint = suggest(part, list(fields))
            return f"unknown key {part!r} in {where}{hint}; known: {', '.join(fields)}"
        annotation = fields[part].annotation
        if typing.get_origin(annotation) is dict and depth == len(parts) - 2:
            return None  # one keyword of a plugin's arguments: model.attention_args.KEY
        model = submodel(annotation)
    return None


def submodel(annotation: Any) -> type[BaseModel] | None:
    """The model class behind a field's annotation (`X`, `X | None`, `list[X]`), else None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = submodel(arg)
        if found is not None:
            return found
    return None


def apply_overrides(config: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of `config` (nested plain data) with each dotted key of `overrides` set.

    A whole sub-section given as a mapping replaces that sub-section (its missing keys then
    take their defaults when the result is validated).
    """
    out = copy.deepcopy(config)
    for path, value in overrides.items():
        *parents, leaf = path.split(".")
        node = out
        for part in parents:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[leaf] = copy.deepcopy(value)
    return out


def get_path(config: dict[str, Any], path: str) -> Any:
    """The value at a dotted path of nested plain data; None for a keyword that a plugin's
    arguments (`model.attention_args.KEY`) do not give."""
    node: Any = config
    *parents, leaf = path.split(".")
    for part in parents:
        node = node[part]
    return node.get(leaf) if isinstance(node, dict) else node[leaf]


def fill_defaults(config: dict[str, Any]) -> dict[str, Any]:
    """Fill the defaults that depend on the data set's name (image size, generator knobs), so
    the resolved config states them: visible in every run and part of every trial id."""
    data = config["dataset"]
    if is_plugin(data["name"]):  # the plugin's own settings are its dataset.args
        return config
    if data.get("image_size") is None:
        data["image_size"] = DATASETS[data["name"]].image_size
    if data["name"] == "cluttered-digits" and data.get("clutter") is None:
        data["clutter"] = ClutterConfig().model_dump(mode="json")
    return config


def config_problems(config: TrialConfig | Study) -> list[tuple[tuple[str, ...], str]]:
    """Rules across keys, as (key path, message) pairs; empty when the config is sound.

    They live here rather than in model validators so each problem names its own key.
    """
    problems = plugin_key_problems(config)
    data, train = config.dataset, config.train
    if data.name in DATASETS and DATASETS[data.name].needs_root and not data.root:
        problems.append(
            (
                ("dataset", "root"),
                f"dataset {data.name} needs dataset.root, the directory holding the data "
                "(nothing is downloaded at run time)",
            )
        )
    if data.clutter is not None and data.name != "cluttered-digits":
        problems.append((("dataset", "clutter"), "applies only to dataset name cluttered-digits"))
    if train.schedule == "step":
        ms = train.milestones or []  # none: the trainer's default, epochs/2 and 3/4 epochs
        if ms and any(b <= a for a, b in zip(ms, ms[1:], strict=False)):
            problems.append((("train", "milestones"), f"must increase strictly; got {ms}"))
        elif ms and ms[-1] > train.epochs:
            problems.append(
                (("train", "milestones"), f"{ms[-1]} is past train.epochs = {train.epochs}")
            )
    elif train.milestones is not None:
        problems.append((("train", "milestones"), "applies only to schedule: step"))
    if train.warmup_epochs >= train.epochs:
        problems.append(
            (
                ("train", "warmup_epochs"),
                f"{train.warmup_epochs} warm-up epochs leave none of train.epochs = {train.epochs}",
            )
        )
    epoch = config.metric.epoch
    if epoch is not None and epoch > config.train.epochs:
        problems.append(
            (("metric", "epoch"), f"epoch {epoch} is past train.epochs = {config.train.epochs}")
        )
    return problems


# Keys of the built-in data sets, which a MODULE:NAME data set replaces with its dataset.args.
_BUILT_IN_DATA_KEYS = ("root", "image_size", "train_samples", "val_samples", "clutter")


def plugin_key_problems(config: TrialConfig | Study) -> list[tuple[tuple[str, ...], str]]:
    """Keyword mappings given where nothing takes them (`attention_args` to `none`, `se` or
    `cbam`, `backbone_args` to a built-in backbone, `dataset.args` to a built-in data set), and
    built-in data set keys given to a MODULE:NAME one. Torch-free; whether a plugin accepts its
    keywords is the study's plugin check (ablation/study/plugins.py)."""
    problems = []
    model, data = config.model, config.dataset
    if model.attention_args and model.attention in BUILT_IN_ATTENTIONS:
        where = "; its knobs are model.cbam" if model.attention == "cbam" else ""
        problems.append(
            (
                ("model", "attention_args"),
                f"attention {model.attention!r} takes no arguments{where}; got "
                f"{', '.join(model.attention_args)}",
            )
        )
    if model.backbone_args and not is_plugin(model.backbone):
        problems.append(
            (
                ("model", "backbone_args"),
                f"backbone {model.backbone!r} is built in and takes no arguments; "
                "backbone_args are for a MODULE:NAME backbone",
            )
        )
    if data.args and not is_plugin(data.name):
        problems.append(
            (
                ("dataset", "args"),
                f"data set {data.name!r} is built in and takes no arguments; "
                "dataset.args are for a MODULE:NAME data set",
            )
        )
    if is_plugin(data.name):
        for key in _BUILT_IN_DATA_KEYS:
            if getattr(data, key) is not None:
                problems.append(
                    (
                        ("dataset", key),
                        f"applies to the built-in data sets only; give {data.name} its "
                        "settings in dataset.args",
                    )
                )
    return problems

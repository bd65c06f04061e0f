"""The study's `"MODULE:NAME"` plugins, checked before anything starts: one line each, exit 2.

For each plugin the study may use (`Study.plugins()`): it imports, with the study file's folder
first on the import path (ablation.vocabulary.plugins). Then one model per variant is built
and run on one dummy batch (torch is imported only for a study with plugins, or a zoo
attention given `attention_args`): the keywords a callable is given are ones it accepts, its
constructor does not raise, a data set gives what a model needs, and an attention keeps its
input's shape. Each problem is placed at the key that chose the plugin or its arguments: the
base section, the factor level, or the named variant.
"""

from __future__ import annotations

import inspect
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from ablation.study.design import all_variants, factor_space
from ablation.study.document import Document, Loc
from ablation.study.problems import Problem, Problems
from ablation.study.schema import Study, get_path
from ablation.study.trials import Variant, canonical_json, resolve_config
from ablation.vocabulary.datasets import DATASETS
from ablation.vocabulary.plugins import (
    PLUGIN_KEYS,
    PluginError,
    is_plugin,
    load_plugin,
    parse_plugin,
    plugin_source,
)

# Images in the dummy batch: two, so a BatchNorm in training mode would run as well.
_BATCH = 2
# (channels, classes, image size) a model is built for when its plugin data set is not called.
_PLACEHOLDER_SHAPE = (3, 10, 32)


class _Failed(Exception):
    """A variant's check failed at `key` (a dotted key of the trial config) with `message`."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key, self.message = key, message


def plugin_problems(
    study: Study, path: str | os.PathLike[str], *, call_data: bool = True
) -> list[Problem]:
    """Every problem of the study's plugins, each at its key's line; empty when they import,
    take their keywords, build and keep shapes (or the study has none to check).

    `call_data=False` (data checks off: the data may exist only on the cluster) does not call
    a plugin data set: only its keywords are checked, and a model on it is built for a
    placeholder shape (its channels and classes unknown here) but not run on a batch, so
    whether its attentions keep their shape is then left to the trial.
    """
    file = str(path)
    try:
        problems = Problems(file, Document((study.source or b"").decode("utf-8")))
    except (UnicodeDecodeError, yaml.YAMLError):  # parsed before; kept safe all the same
        problems = Problems(file, None)
    for ref in study.plugins():
        try:
            load_plugin(ref, study.folder)
        except PluginError as err:
            problems.add(_written_at(study, ref), str(err))
    if problems:
        return problems.items
    seen: set[str] = set()
    for variant, config in _variants_to_build(study):
        key = canonical_json({s: config[s] for s in ("dataset", "model")})
        if key in seen:
            continue
        seen.add(key)
        try:
            _build_and_run(config, call_data=call_data)
        except _Failed as failed:
            # A constructor that raises may owe it to its arguments: placed at the key the
            # variant sets, the reference or its *_args.
            keys = [failed.key] + ([PLUGIN_KEYS[failed.key]] if failed.key in PLUGIN_KEYS else [])
            chosen = next((k for k in keys if _overrides(variant, k)), failed.key)
            problems.add(_loc(study, variant, chosen), failed.message)
    unique = {(p.line, p.key, p.message): p for p in problems.items}
    return list(unique.values())


def plugin_folders(study: Study) -> list[Path]:
    """The packages (folders) and module files under the study's folder that its plugins
    import: what travels to Ray workers with the job. A plugin package travels whole; a plugin
    module file with every .py file beside it, which it may import (the same files its trial
    ids hash: PluginSource.files). Installed plugins are the cluster's."""
    found: list[Path] = []
    for ref in study.plugins():
        source = plugin_source(ref, study.folder)
        if source.kind != "folder":
            continue
        package = source.root / parse_plugin(ref).top_level
        found.extend([package] if package.is_dir() else source.files)
    return list(dict.fromkeys(found))


def _needs_a_build(config: Mapping[str, Any]) -> bool:
    model = config["model"]
    uses_plugin = any(is_plugin(get_path(config, key)) for key in PLUGIN_KEYS)
    return uses_plugin or bool(model.get("attention_args"))


def _variants_to_build(study: Study) -> list[tuple[Variant, dict[str, Any]]]:
    """(variant, resolved config) of every variant that uses a plugin or a zoo's arguments.
    For design optuna (whose variants the sampler picks): the listed ones and each level
    alone on the base configuration."""
    variants = all_variants(study)
    if study.design == "optuna":
        for key, levels in factor_space(study).items():
            variants += [
                Variant(name=f"{key}={level}", levels={key: level}, overrides={key: level})
                for level in levels
            ]
    resolved = [(v, resolve_config(study, v.overrides)) for v in variants]
    return [(v, config) for v, config in resolved if _needs_a_build(config)]


# -- one variant: its data's shape, its model, one batch -----------------------------------------


def _build_and_run(config: dict[str, Any], *, call_data: bool = True) -> None:
    """Build the variant's model as a trial would, watching each attention it makes, and run
    it on one batch; raises _Failed at the key to blame. `call_data=False`: a plugin data set
    is not called; the model is built for a placeholder shape and not run."""
    from ablation.models import attention_factory, build_backbone

    model_cfg, data_cfg = config["model"], config["dataset"]
    shape = _data_shape(data_cfg, call=call_data)
    channels, classes, size = shape or _PLACEHOLDER_SHAPE
    attention = model_cfg["attention"]
    args = model_cfg.get("attention_args") or {}
    try:
        if is_plugin(attention):
            _check_keywords("model.attention_args", attention, args, first_positional=True)
        make = attention_factory(attention, model_cfg.get("cbam"), args)
    except (ValueError, TypeError) as err:
        raise _Failed("model.attention", str(err)) from None
    made: list[Any] = []

    def watched(channels: int) -> Any:
        try:
            module = make(channels)
        except Exception as err:
            raise _Failed("model.attention", _raised(attention, (channels,), args, err)) from None
        made.append(module)
        return module

    backbone, backbone_args = model_cfg["backbone"], model_cfg.get("backbone_args") or {}
    if is_plugin(backbone):
        _check_keywords("model.backbone_args", backbone, backbone_args, first_positional=False)
    try:
        model = build_backbone(
            backbone,
            watched,
            num_classes=classes,
            in_channels=channels,
            backbone_args=backbone_args,
        )
    except _Failed:
        raise
    except Exception as err:
        shown = {
            "num_classes": classes,
            "in_channels": channels,
            "attention": "...",
            **backbone_args,
        }
        raise _Failed("model.backbone", _raised(backbone, (), shown, err)) from None
    if shape is None:
        return
    for module in made:
        module.register_forward_hook(_keeps_shape(attention))
    _run_one_batch(model, model_cfg, (channels, size, size), classes)


def _run_one_batch(
    model: Any, model_cfg: Mapping[str, Any], image: tuple[int, int, int], classes: int
) -> None:
    """The model's eval-mode forward pass on `_BATCH` random images of shape `image`: it runs
    (the attentions' hooks check their shapes) and gives one score per class."""
    import torch

    attention, backbone = model_cfg["attention"], model_cfg["backbone"]
    channels, size, _ = image
    batch = torch.randn(_BATCH, *image)
    model.eval()
    try:
        with torch.no_grad():
            out = model(batch)
    except _Failed:
        raise
    except Exception as err:
        key = "model.attention" if is_plugin(attention) else "model.backbone"
        raise _Failed(
            key,
            f"the model fails on a batch of {_BATCH} images of {channels}x{size}x{size}: "
            f"{type(err).__name__}: {_first_line(err)}",
        ) from None
    if tuple(out.shape) != (_BATCH, classes):
        raise _Failed(
            "model.backbone",
            f"{backbone} gives outputs of shape {tuple(out.shape)} for {_BATCH} images; "
            f"expected ({_BATCH}, {classes}): one score per class",
        )


def _keeps_shape(attention: str) -> Callable[..., None]:
    def hook(module: Any, inputs: tuple[Any, ...], output: Any) -> None:
        before = tuple(inputs[0].shape)
        after = tuple(getattr(output, "shape", ()))
        if before != after:
            raise _Failed(
                "model.attention",
                f"{attention} changes the shape of its input: {before} -> {after}; an "
                "attention must give back its input's shape",
            )

    return hook


def _data_shape(data_cfg: Mapping[str, Any], *, call: bool = True) -> tuple[int, int, int] | None:
    """(channels, classes, image size) of the data set; a plugin data set is called for it,
    unless not `call` (then only its keywords are checked, and the shape is None)."""
    name = data_cfg["name"]
    if not is_plugin(name):
        spec = DATASETS[name]
        return (
            spec.in_channels,
            spec.num_classes or 2,
            data_cfg.get("image_size") or spec.image_size,
        )
    args = data_cfg.get("args") or {}
    _check_keywords("dataset.args", name, args, first_positional=False)
    if not call:
        return None
    try:
        return plugin_data_shape(data_cfg)
    except Exception as err:
        raise _Failed("dataset.name", _raised(name, (), args, err)) from None


def _check_keywords(
    key: str, ref: str, given: Mapping[str, Any], *, first_positional: bool
) -> None:
    """`given` are keywords the callable `ref` accepts; else _Failed naming those it accepts.
    An attention's first parameter is its channels, given by position, not one of its keywords."""
    try:
        signature = inspect.signature(load_plugin(ref))
    except (TypeError, ValueError):  # a builtin without a signature: its call will say
        return
    params = list(signature.parameters.values())
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    if first_positional and params and _positional(params[0]):
        params = params[1:]
    fixed = () if key != "model.backbone_args" else ("num_classes", "in_channels", "attention")
    accepted = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    lacking = [name for name in fixed if name not in accepted]
    if lacking:
        raise _Failed(
            "model.backbone",
            f"{ref} must take the keywords num_classes, in_channels and attention; it lacks "
            f"{', '.join(lacking)}",
        )
    own = [name for name in accepted if name not in fixed]
    unknown = [name for name in given if name not in own]
    if unknown:
        takes = f"it accepts: {', '.join(own)}" if own else "it accepts none"
        raise _Failed(key, f"{ref} does not accept {', '.join(map(repr, unknown))}; {takes}")


def _positional(param: inspect.Parameter) -> bool:
    return param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD)


def _raised(ref: str, args: tuple[Any, ...], kwargs: Mapping[str, Any], err: Exception) -> str:
    shown = [repr(a) for a in args] + [
        f"{k}={v}" if isinstance(v, str) and v == "..." else f"{k}={v!r}" for k, v in kwargs.items()
    ]
    return f"{ref}({', '.join(shown)}) raised {type(err).__name__}: {_first_line(err)}"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else "(no message)"


def plugin_data_shape(data_cfg: Mapping[str, Any]) -> tuple[int, int, int]:
    """(channels, classes, image size) of a "MODULE:NAME" data set, called with its args (once
    per process: ablation.data.build.plugin_datasets keeps it)."""
    from ablation.data.build import plugin_datasets

    args = data_cfg.get("args") or {}
    _, _, info = plugin_datasets(data_cfg["name"], json.dumps(args, sort_keys=True))
    return info["in_channels"], info["num_classes"], info["image_size"]


# -- where a key was written ----------------------------------------------------------------------


def _written_at(study: Study, ref: str) -> Loc:
    """The first place the file names `ref`: a base key, a factor level or a variant's key."""
    base = study.base_config()
    for key in PLUGIN_KEYS:
        if get_path(base, key) == ref:
            return tuple(key.split("."))
        levels = study.factors.get(key, [])
        if ref in levels:
            return ("factors", key, levels.index(ref))
        for i, item in enumerate(study.variants):
            if item.get(key) == ref:
                return ("variants", i, key)
    return ()


def _loc(study: Study, variant: Variant, key: str) -> Loc:
    """Where `variant` got the value of the dotted config `key`: its own key (a named variant),
    its factor level (a design variant), else the base section's key."""
    related = _overrides(variant, key)
    if related:
        k = related[0]
        if variant.kind == "named":
            index = next(i for i, v in enumerate(study.variants) if v.get("name") == variant.name)
            return ("variants", index, k)
        levels = factor_space(study).get(k, [])
        level = variant.overrides[k]
        index = next(
            (i for i, v in enumerate(levels) if canonical_json(v) == canonical_json(level)), 0
        )
        return ("factors", k, index)
    return tuple(key.split("."))


def _overrides(variant: Variant, key: str) -> list[str]:
    """The variant's dotted keys that set `key`, a part of it, or a section holding it."""
    return [
        k
        for k in variant.overrides
        if k == key or k.startswith(f"{key}.") or key.startswith(f"{k}.")
    ]

"""What determines the images a trial sees: `data_identity(dataset_cfg)`. Cheap, builds nothing,
and imports neither torch nor the data sets (trial ids are computed from it)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ablation.vocabulary.datasets import DATASETS, ClutterParams
from ablation.vocabulary.plugins import is_plugin

# Bump when a generator or split changes what images a configuration yields.
DATA_VERSION = 1


class DatasetError(ValueError):
    """The data set named by a study cannot be built (missing files, bad root, ...)."""


def dataset_root(dataset_cfg: Mapping[str, Any]) -> Path:
    root = dataset_cfg.get("root")
    if not root:
        raise DatasetError(f"dataset.root is required for {dataset_cfg['name']}")
    return Path(root).expanduser()


def data_identity(dataset_cfg: Mapping[str, Any], *, seed_split: int | None = None) -> dict:
    """The section's data-determining keys, with the data set's defaults filled in.

    `seed_split` overrides the section's `split_seed` (else 0). CIFAR's location is not part of
    it (the files are the same anywhere); an ImageFolder tree's resolved path is.
    """
    name = dataset_cfg.get("name")
    if is_plugin(name):  # its code is hashed apart (ablation.vocabulary.plugins)
        return {"name": name, "args": dict(dataset_cfg.get("args") or {}), "version": DATA_VERSION}
    if name not in DATASETS:
        raise DatasetError(f"dataset.name must be one of {', '.join(DATASETS)}, not {name!r}")
    split = seed_split if seed_split is not None else dataset_cfg.get("split_seed") or 0
    # `args` is a plugin's: left out while empty, so built-in data sets keep their identity.
    identity = {k: v for k, v in dataset_cfg.items() if v is not None and k != "root" and v != {}}
    identity.update(
        name=name,
        image_size=int(dataset_cfg.get("image_size") or DATASETS[name].image_size),
        split_seed=int(split),
        version=DATA_VERSION,
    )
    if name == "imagefolder":
        identity["root"] = str(dataset_root(dataset_cfg).resolve())
    if name == "cluttered-digits":
        identity["clutter"] = clutter_params(dataset_cfg).as_dict()
    return identity


def clutter_params(dataset_cfg: Mapping[str, Any]) -> ClutterParams:
    knobs = dict(dataset_cfg.get("clutter") or {})
    if "digit_size" in knobs:
        knobs["digit_size"] = tuple(knobs["digit_size"])
    return ClutterParams(**knobs)

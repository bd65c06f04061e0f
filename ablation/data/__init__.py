"""The data sets a study can name, behind one function: `build_datasets(dataset_cfg)`.

| name             | what                                           | from                         |
|------------------|------------------------------------------------|------------------------------|
| digits           | 8x8 handwritten digits, upsampled, 1 channel   | scikit-learn's bundled file  |
| cluttered-digits | digits at random places among clutter          | generated from digits        |
| cifar10/cifar100 | 32x32 colour images                            | torchvision files in `root`  |
| imagefolder      | any class-per-folder tree, RGB                 | `root` (train/+val/, or one) |
| fake             | torchvision FakeData noise (smoke tests only)  | generated                    |

The train/val split is fixed by the study (`seed_split`), never by the trial seed; the trial
seed only changes initialisation and order. Nothing is downloaded. In-memory sets (digits,
cluttered-digits, fake) come back as `TensorDataset`s of standardised images and are cached in
the process, so a reused Ray worker builds them once.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import torch
from torch.utils.data import Dataset, TensorDataset

from ablation.data import cluttered, digits, files
from ablation.data.files import DatasetError

__all__ = ["DATASETS", "DatasetError", "build_datasets", "data_identity"]

DATASETS = ("digits", "cluttered-digits", "cifar10", "cifar100", "imagefolder", "fake")
# Bump when a generator or split changes what images a configuration yields.
DATA_VERSION = 1
DEFAULT_IMAGE_SIZE = {
    "digits": 32,
    "cluttered-digits": 40,
    "cifar10": 32,
    "cifar100": 32,
    "fake": 32,
}
IN_MEMORY = ("digits", "cluttered-digits", "fake")


def data_identity(dataset_cfg: dict, *, seed_split: int | None = None) -> dict[str, Any]:
    """What determines the images a trial sees. Cheap: builds nothing.

    CIFAR's location is not part of it (the files are the same anywhere); an ImageFolder
    tree's resolved path is.
    """
    name = _name(dataset_cfg)
    seed_split = _split_seed(dataset_cfg, seed_split)
    identity = {k: v for k, v in dataset_cfg.items() if v is not None and k != "root"}
    identity.update(
        name=name, image_size=_image_size(dataset_cfg), split_seed=seed_split, version=DATA_VERSION
    )
    if name == "imagefolder":
        identity["root"] = str(files.dataset_root(dataset_cfg).resolve())
    if name == "cluttered-digits":
        identity["clutter"] = _clutter_params(dataset_cfg).as_dict()
    return identity


def build_datasets(
    dataset_cfg: dict, *, seed_split: int | None = None
) -> tuple[Dataset, Dataset, dict]:
    """(train_ds, val_ds, info) for the study's `dataset` section.

    `seed_split` fixes the train/val split and generated images; None means the section's
    `split_seed`, else 0.
    `info` has `num_classes`, `in_channels`, `image_size` and `data_identity`. Raises
    `DatasetError` when the data cannot be found or the section names no known data set.
    """
    name = _name(dataset_cfg)
    seed_split = _split_seed(dataset_cfg, seed_split)
    image_size = _image_size(dataset_cfg)
    identity = data_identity(dataset_cfg, seed_split=seed_split)
    if name in IN_MEMORY:
        x_train, y_train, x_val, y_val, num_classes = _in_memory(
            json.dumps(identity, sort_keys=True)
        )
        train_ds, val_ds = TensorDataset(x_train, y_train), TensorDataset(x_val, y_val)
        in_channels = x_train.shape[1]
    elif name in ("cifar10", "cifar100"):
        train_ds, val_ds, num_classes, in_channels = files.make_cifar(
            dataset_cfg, image_size, seed_split
        )
    else:
        train_ds, val_ds, num_classes, in_channels = files.make_imagefolder(
            dataset_cfg, image_size, seed_split
        )
    info = {
        "num_classes": num_classes,
        "in_channels": in_channels,
        "image_size": image_size,
        "data_identity": identity,
    }
    return train_ds, val_ds, info


@functools.lru_cache(maxsize=8)
def _in_memory(
    identity_json: str,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """Build (and keep) an in-memory data set; keyed by its identity so any change rebuilds."""
    cfg = json.loads(identity_json)
    name, size, seed = cfg["name"], cfg["image_size"], cfg["split_seed"]
    n_train, n_val = cfg.get("train_samples"), cfg.get("val_samples")
    if name == "digits":
        x_train, y_train, x_val, y_val = digits.make_digits(size, n_train, n_val, seed)
        num_classes = digits.NUM_CLASSES
    elif name == "cluttered-digits":
        params = _clutter_params(cfg)
        x_train, y_train, x_val, y_val = cluttered.make_cluttered(
            size, n_train, n_val, seed, params
        )
        num_classes = cluttered.NUM_CLASSES
    else:
        x_train, y_train, x_val, y_val = files.make_fake(size, n_train, n_val)
        num_classes = files.FAKE_NUM_CLASSES
    # Standardise with the training images' per-channel statistics.
    mean = x_train.mean(dim=(0, 2, 3), keepdim=True)
    std = x_train.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6)
    return (x_train - mean) / std, y_train, (x_val - mean) / std, y_val, num_classes


def _name(dataset_cfg: dict) -> str:
    name = dataset_cfg.get("name")
    if name not in DATASETS:
        raise DatasetError(f"dataset.name must be one of {', '.join(DATASETS)}, not {name!r}")
    return name


def _split_seed(dataset_cfg: dict, seed_split: int | None) -> int:
    return int(seed_split if seed_split is not None else dataset_cfg.get("split_seed") or 0)


def _image_size(dataset_cfg: dict) -> int:
    size = dataset_cfg.get("image_size") or DEFAULT_IMAGE_SIZE.get(dataset_cfg["name"], 224)
    return int(size)


def _clutter_params(dataset_cfg: dict) -> cluttered.ClutterParams:
    knobs = dict(dataset_cfg.get("clutter") or {})
    if "digit_size" in knobs:
        knobs["digit_size"] = tuple(knobs["digit_size"])
    return cluttered.ClutterParams(**knobs)

"""`build_datasets(dataset_cfg)`: the train and validation sets of a study's `dataset` section
(a built-in data set, or a researcher's `"MODULE:NAME"`: `plugin_datasets`); `batch_loader`: a
DataLoader of one of them."""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, TensorDataset

from ablation.data import cluttered, digits, files
from ablation.data.identity import DatasetError, clutter_params, data_identity
from ablation.vocabulary.datasets import DATASETS
from ablation.vocabulary.plugins import is_plugin, load_plugin


def build_datasets(
    dataset_cfg: dict, *, seed_split: int | None = None
) -> tuple[Dataset, Dataset, dict]:
    """(train_ds, val_ds, info) for the study's `dataset` section.

    `seed_split` fixes the train/val split and generated images; None means the section's
    `split_seed`, else 0.
    `info` has `num_classes`, `in_channels`, `image_size` and `data_identity`. Raises
    `DatasetError` when the data cannot be found or the section names no known data set.
    """
    if is_plugin(dataset_cfg["name"]):
        return plugin_datasets(
            dataset_cfg["name"], json.dumps(dataset_cfg.get("args") or {}, sort_keys=True)
        )
    identity = data_identity(dataset_cfg, seed_split=seed_split)
    name, seed_split, image_size = identity["name"], identity["split_seed"], identity["image_size"]
    if DATASETS[name].in_memory:
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


@dataclass(frozen=True)
class ResidentArrays:
    """A data set as whole tensors, for `ablation.data.device.DeviceBatches`.

    Images are standardised floats, or uint8 with `mean`/`std` to standardise on the device
    (CIFAR: a quarter of the host memory and of the copy). `pad` is the training
    augmentation's crop padding (0: none, as the loader path has none for this set);
    `image_size` a size to resize to on the device (None: as stored).
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    pad: int = 0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    image_size: int | None = None


def resident_arrays(dataset_cfg: dict) -> ResidentArrays | None:
    """The section's data as whole tensors, or None for a set read file by file (ImageFolder).

    The same images and split as `build_datasets`; raises `DatasetError` as it does.
    """
    if is_plugin(dataset_cfg["name"]):
        return None  # the researcher's Datasets, read item by item
    identity = data_identity(dataset_cfg)
    name = identity["name"]
    if DATASETS[name].in_memory:
        x_train, y_train, x_val, y_val, _ = _in_memory(json.dumps(identity, sort_keys=True))
        return ResidentArrays(x_train, y_train, x_val, y_val)
    if name in ("cifar10", "cifar100"):
        arrays = files.cifar_arrays(dataset_cfg, identity["image_size"], identity["split_seed"])
        x_train, y_train, x_val, y_val, mean, std = arrays
        size = identity["image_size"]
        return ResidentArrays(
            x_train, y_train, x_val, y_val, pad=size // 8, mean=mean, std=std, image_size=size
        )
    return None


@functools.lru_cache(maxsize=4)
def plugin_datasets(name: str, args_json: str) -> tuple[Dataset, Dataset, dict]:
    """(train_ds, val_ds, info) of a `"MODULE:NAME"` data set, called as `NAME(**dataset.args)`.

    The callable returns a mapping with `train` and `val` (torch Datasets of `(image, label)`,
    images CxHxW tensors, square) and `num_classes`; the channels and the image size are read
    off the first training image. Kept per process (a reused Ray worker calls it once). Raises
    DatasetError saying what the callable returned that does not fit; the callable's own
    errors go through.
    """
    args = json.loads(args_json)
    made = load_plugin(name)(**args)
    if not isinstance(made, Mapping) or not {"train", "val", "num_classes"} <= set(made):
        raise DatasetError(
            f"data set {name} must return a mapping with train, val and num_classes; "
            f"got {type(made).__name__}"
            + (f" with keys {', '.join(map(str, made))}" if isinstance(made, Mapping) else "")
        )
    train_ds, val_ds, num_classes = made["train"], made["val"], made["num_classes"]
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise DatasetError(
            f"data set {name}: num_classes must be an integer >= 2; got {num_classes!r}"
        )
    for part, ds in (("train", train_ds), ("val", val_ds)):
        if not hasattr(ds, "__getitem__") or not hasattr(ds, "__len__") or len(ds) == 0:
            raise DatasetError(f"data set {name}: {part} must be a non-empty torch Dataset")
    image = train_ds[0][0]
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or image.shape[1] != image.shape[2]:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise DatasetError(
            f"data set {name}: an image must be a square CxHxW tensor; the first is {shape}"
        )
    info = {
        "num_classes": num_classes,
        "in_channels": int(image.shape[0]),
        "image_size": int(image.shape[1]),
        "data_identity": data_identity({"name": name, "args": args}),
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
        params = clutter_params(cfg)
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


def batch_loader(
    ds: Dataset,
    batch_size: int,
    num_workers: int,
    pin_memory: bool,
    *,
    shuffle_rng: torch.Generator | None,
) -> DataLoader:
    """Batches of `ds`; shuffled (with `shuffle_rng`) for training, in order for evaluation."""
    train = shuffle_rng is not None
    # Drop a ragged last training batch (BatchNorm dislikes a batch of one), unless it is all.
    drop_last = train and len(ds) > batch_size
    if isinstance(ds, TensorDataset) and num_workers == 0:
        # In-memory images: index whole batches at once instead of collating single images.
        order = RandomSampler(ds, generator=shuffle_rng) if train else range(len(ds))
        sampler = BatchSampler(order, batch_size, drop_last)
        return DataLoader(
            ds, batch_size=None, sampler=sampler, pin_memory=pin_memory, generator=shuffle_rng
        )
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=train,
        generator=shuffle_rng,
        drop_last=drop_last,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )

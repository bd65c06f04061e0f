"""Data sets read from disk or made by torchvision: `cifar10`, `cifar100`, `imagefolder`, `fake`.

Nothing is ever downloaded: CIFAR must already be in `dataset.root` (torchvision's layout), an
ImageFolder tree is any class-per-folder directory. Validation is CIFAR's test set, an
ImageFolder tree's `val/` folder (or a fixed stratified share of the tree when it has none).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Subset

from ablation.data.identity import DatasetError, dataset_root
from ablation.data.split import stratified_split

CIFAR_MEAN_STD = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
# Share of a single ImageFolder tree held out for validation when it has no val/ folder.
IMAGEFOLDER_VAL_FRACTION = 0.2
FAKE_DEFAULT_TRAIN, FAKE_DEFAULT_VAL, FAKE_NUM_CLASSES = 512, 128, 10


def _cifar_transforms(name: str, image_size: int):
    from torchvision import transforms as T

    mean, std = CIFAR_MEAN_STD[name]
    resize = [T.Resize(image_size)] if image_size != 32 else []
    tail = [T.ToTensor(), T.Normalize(mean, std)]
    # The standard CIFAR augmentation: pad-and-crop, horizontal flip.
    augment = [T.RandomCrop(image_size, padding=image_size // 8), T.RandomHorizontalFlip()]
    return T.Compose(resize + augment + tail), T.Compose(resize + tail)


@functools.lru_cache(maxsize=4)
def _cifar_split(name: str, root: str, train: bool):
    from torchvision import datasets

    cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
    try:
        return cls(root, train=train, download=False)
    except RuntimeError as err:  # torchvision: "Dataset not found or corrupted..."
        folder = cls.base_folder
        raise DatasetError(
            f"{name} not found under dataset.root={root!r} (expected {root}/{folder}/). "
            "This service never downloads data; fetch it once on a machine with internet, e.g. "
            f'python -c "import torchvision; torchvision.datasets.{cls.__name__}('
            f"'{root}', download=True)\", or copy an existing {folder}/ there."
        ) from err


class _WithTransform(Dataset):
    """A cached torchvision data set (shared between trials) seen through a trial's transform."""

    def __init__(self, base, transform) -> None:
        self.base, self.transform = base, transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int):
        image, label = self.base.data[i], self.base.targets[i]
        return self.transform(Image.fromarray(image)), label


def make_cifar(dataset_cfg: dict, image_size: int, split_seed: int):
    name = dataset_cfg["name"]
    root = str(dataset_root(dataset_cfg))
    train_base, val_base = _cifar_split(name, root, True), _cifar_split(name, root, False)
    train_tf, val_tf = _cifar_transforms(name, image_size)
    train_ds, val_ds = _WithTransform(train_base, train_tf), _WithTransform(val_base, val_tf)
    train_ds = _subset(
        train_ds, np.asarray(train_base.targets), dataset_cfg.get("train_samples"), split_seed
    )
    val_ds = _subset(
        val_ds, np.asarray(val_base.targets), dataset_cfg.get("val_samples"), split_seed
    )
    return train_ds, val_ds, len(train_base.classes), 3


def cifar_arrays(dataset_cfg: dict, image_size: int, split_seed: int):
    """CIFAR's images as uint8 (N, 3, 32, 32) tensors with labels, the same subsets as
    `make_cifar`, plus its (mean, std): for device-resident batches. Resizing to `image_size`
    and the pad-and-crop (padding image_size // 8) and flip then happen on the device.

    Differences from the loader path, by design: the resize is a tensor resize (bilinear,
    antialiased) of the standardised images, the crop comes after it, as there.
    """
    name = dataset_cfg["name"]
    root = str(dataset_root(dataset_cfg))
    out = []
    for train, n in (
        (True, dataset_cfg.get("train_samples")),
        (False, dataset_cfg.get("val_samples")),
    ):
        base = _cifar_split(name, root, train)
        labels = np.asarray(base.targets)
        keep = np.arange(len(labels))
        if n is not None and n < len(labels):
            keep, _ = stratified_split(labels, n, seed=split_seed)
        images = torch.from_numpy(np.ascontiguousarray(base.data[keep])).permute(0, 3, 1, 2)
        out += [images.contiguous(), torch.from_numpy(labels[keep].astype(np.int64))]
    mean, std = CIFAR_MEAN_STD[name]
    return (*out, mean, std)


def _subset(ds: Dataset, labels: np.ndarray, n: int | None, seed: int) -> Dataset:
    if n is None or n >= len(labels):
        return ds
    keep, _ = stratified_split(labels, n, seed=seed)
    return Subset(ds, keep.tolist())


@functools.lru_cache(maxsize=4)
def _scan_folder(path: str):
    """ImageFolder's file scan (slow for big trees), done once per process and root."""
    from torchvision import datasets

    return datasets.ImageFolder(path)


def _image_folder(path: Path, transform) -> Dataset:
    folder = copy.copy(_scan_folder(str(path)))  # shares the scanned file list
    folder.transform = transform
    return folder


def make_imagefolder(dataset_cfg: dict, image_size: int, split_seed: int):
    from torchvision import transforms as T

    root = dataset_root(dataset_cfg)
    if not root.is_dir():
        raise DatasetError(f"dataset.root={str(root)!r} is not a directory of class folders")
    mean, std = IMAGENET_MEAN_STD
    tail = [T.ToTensor(), T.Normalize(mean, std)]
    train_tf = T.Compose([T.RandomResizedCrop(image_size), T.RandomHorizontalFlip(), *tail])
    val_tf = T.Compose([T.Resize(round(image_size * 256 / 224)), T.CenterCrop(image_size), *tail])
    try:
        if (root / "train").is_dir() and (root / "val").is_dir():
            train_ds = _image_folder(root / "train", train_tf)
            val_ds = _image_folder(root / "val", val_tf)
            if val_ds.classes != train_ds.classes:
                raise DatasetError(f"{root}/train and {root}/val have different class folders")
            classes = train_ds.classes
            train_labels, val_labels = np.asarray(train_ds.targets), np.asarray(val_ds.targets)
        else:
            train_ds = _image_folder(root, train_tf)
            val_ds = _image_folder(root, val_tf)
            classes, labels = train_ds.classes, np.asarray(train_ds.targets)
            n_val = max(1, round(IMAGEFOLDER_VAL_FRACTION * len(labels)))
            val_idx, train_idx = stratified_split(labels, n_val, seed=split_seed)
            train_ds, val_ds = (
                Subset(train_ds, train_idx.tolist()),
                Subset(val_ds, val_idx.tolist()),
            )
            train_labels, val_labels = labels[train_idx], labels[val_idx]
    except (FileNotFoundError, RuntimeError) as err:  # torchvision: no class folders or images
        raise DatasetError(f"dataset.root={str(root)!r}: {err}") from err
    train_ds = _subset(train_ds, train_labels, dataset_cfg.get("train_samples"), split_seed)
    val_ds = _subset(val_ds, val_labels, dataset_cfg.get("val_samples"), split_seed)
    return train_ds, val_ds, len(classes), 3


@functools.lru_cache(maxsize=4)
def make_fake(
    image_size: int, train_samples: int | None, val_samples: int | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """torchvision's FakeData, materialised: deterministic noise images with random labels."""
    from torchvision import datasets
    from torchvision.transforms.functional import pil_to_tensor

    n_train = train_samples or FAKE_DEFAULT_TRAIN
    n_val = val_samples or FAKE_DEFAULT_VAL
    shape = (3, image_size, image_size)

    def materialise(n: int, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
        # FakeData seeds each item from its index + random_offset: train and val never overlap.
        fake = datasets.FakeData(n, shape, FAKE_NUM_CLASSES, random_offset=offset)
        items = [fake[i] for i in range(n)]
        x = torch.stack([pil_to_tensor(image) for image, _ in items]).float() / 255
        return x, torch.tensor([int(label) for _, label in items])

    return (*materialise(n_train, 0), *materialise(n_val, n_train))

"""`digits`: scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes).

The images are upsampled (bilinear) to `image_size` and standardised with the training split's
mean and std. The train/val split is stratified and fixed by the study's split seed, never by
the trial seed, so every trial of a study sees the same validation images.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ablation.data.split import stratified_split

NUM_CLASSES = 10
DEFAULT_VAL_FRACTION = 0.2


@functools.lru_cache(maxsize=1)
def load_digit_images() -> tuple[np.ndarray, np.ndarray]:
    """All 1797 digits as (float32 images in [0, 1] of shape (N, 8, 8), int64 labels)."""
    # Read the CSV that `sklearn.datasets.load_digits` reads, without importing scikit-learn
    # (which costs over a second in every fresh Ray worker); fall back to the public loader.
    spec = importlib.util.find_spec("sklearn")
    csv = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec else None
    if csv is not None and csv.is_file():
        table = np.loadtxt(csv, delimiter=",", dtype=np.float32)
        images, labels = table[:, :64].reshape(-1, 8, 8), table[:, 64]
    else:  # pragma: no cover - depends on scikit-learn's file layout
        from sklearn.datasets import load_digits

        bunch = load_digits()
        images, labels = bunch.images.astype(np.float32), bunch.target
    return images / 16.0, labels.astype(np.int64)


def split_digits(val_samples: int | None, split_seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the fixed, stratified (train pool, val pool) split of the 1797 digits."""
    _, labels = load_digit_images()
    n_val = val_samples or round(DEFAULT_VAL_FRACTION * len(labels))
    if not 0 < n_val < len(labels):
        raise ValueError(f"val_samples must be between 1 and {len(labels) - 1} for digits")
    val_idx, train_idx = stratified_split(labels, n_val, seed=split_seed)
    return train_idx, val_idx


def upsample(images: np.ndarray, image_size: int) -> torch.Tensor:
    """(N, 8, 8) images to a (N, 1, S, S) float tensor."""
    x = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1)
    if image_size != x.shape[-1]:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    return x


def make_digits(
    image_size: int, train_samples: int | None, val_samples: int | None, split_seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_train, y_train, x_val, y_val) for `digits`, images not yet standardised."""
    images, labels = load_digit_images()
    train_idx, val_idx = split_digits(val_samples, split_seed)
    if train_samples is not None and train_samples < len(train_idx):
        keep, _ = stratified_split(labels[train_idx], train_samples, seed=split_seed)
        train_idx = train_idx[keep]
    return (
        upsample(images[train_idx], image_size),
        torch.from_numpy(labels[train_idx]),
        upsample(images[val_idx], image_size),
        torch.from_numpy(labels[val_idx]),
    )

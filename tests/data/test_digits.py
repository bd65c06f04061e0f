"""digits and the fixed split: the study decides the split, the trial seed never does."""

import numpy as np
import pytest
import torch

from ablation.data.build import build_datasets
from ablation.data.identity import DatasetError, data_identity
from ablation.data.split import stratified_split

DIGITS = {"name": "digits", "image_size": 16, "train_samples": 500, "val_samples": 300}


def test_digits_sizes_channels_and_standardisation():
    train, val, info = build_datasets(DIGITS)
    assert (len(train), len(val)) == (500, 300)
    assert info["num_classes"] == 10 and info["in_channels"] == 1 and info["image_size"] == 16
    x, y = train.tensors
    assert x.shape == (500, 1, 16, 16) and y.dtype == torch.int64
    assert abs(float(x.mean())) < 1e-4 and abs(float(x.std()) - 1) < 1e-3
    # Stratified: every digit has its share of the 300 validation images.
    assert torch.bincount(val.tensors[1], minlength=10).min() >= 29


def test_split_is_fixed_by_the_split_seed_alone():
    (train_a, val_a, _), (train_b, val_b, _) = build_datasets(DIGITS), build_datasets(DIGITS)
    assert torch.equal(val_a.tensors[0], val_b.tensors[0])
    assert torch.equal(train_a.tensors[0], train_b.tensors[0])
    _, val_c, _ = build_datasets({**DIGITS, "split_seed": 1})
    assert not torch.equal(val_a.tensors[0], val_c.tensors[0])


def test_no_validation_image_is_a_training_image():
    train, val, _ = build_datasets({**DIGITS, "image_size": 8, "train_samples": None})
    assert len(train) + len(val) == 1797
    rows = lambda ds: {bytes(x.numpy()) for x in ds.tensors[0]}  # noqa: E731
    # A few digits occur twice in the set itself; almost none may cross the split.
    assert len(rows(train) & rows(val)) <= 5


def test_stratified_split_shares_and_disjointness():
    labels = np.repeat(np.arange(4), [10, 20, 30, 40])
    first, rest = stratified_split(labels, 25, seed=0)
    assert len(first) == 25 and len(rest) == 75
    assert not set(first) & set(rest)
    share = np.bincount(labels[first])
    assert np.all(np.abs(share - [2.5, 5, 7.5, 10]) < 1)  # proportional, rounded
    again, _ = stratified_split(labels, 25, seed=0)
    other, _ = stratified_split(labels, 25, seed=1)
    assert np.array_equal(first, again) and not np.array_equal(first, other)


def test_identity_changes_with_what_changes_the_images():
    base = data_identity(DIGITS)
    assert base == data_identity(dict(DIGITS))
    for change in ({"image_size": 32}, {"train_samples": 400}, {"split_seed": 2}):
        assert data_identity({**DIGITS, **change}) != base
    # CIFAR's files are the same wherever they live; an ImageFolder tree is its path.
    cifar = {"name": "cifar10", "image_size": 32}
    assert data_identity({**cifar, "root": "/a"}) == data_identity({**cifar, "root": "/b"})
    folder = {"name": "imagefolder", "image_size": 32}
    assert data_identity({**folder, "root": "/a"}) != data_identity({**folder, "root": "/b"})


def test_unknown_dataset_name_is_a_clear_error():
    with pytest.raises(DatasetError, match="dataset.name must be one of"):
        build_datasets({"name": "mnist"})

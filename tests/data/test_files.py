"""cifar10/cifar100 (never downloaded), imagefolder trees, and torchvision's FakeData."""

import pytest
import torch
from PIL import Image

from ablation.data.build import _in_memory, build_datasets
from ablation.data.files import make_fake
from ablation.data.identity import DatasetError


def test_cifar_with_a_missing_root_says_how_to_get_the_data(tmp_path):
    root = tmp_path / "no-cifar-here"
    with pytest.raises(DatasetError, match="never downloads") as err:
        build_datasets({"name": "cifar10", "root": str(root), "image_size": 32})
    assert str(root) in str(err.value) and "download=True" in str(err.value)
    assert not root.exists()  # nothing was fetched or created
    with pytest.raises(DatasetError, match="dataset.root is required"):
        build_datasets({"name": "cifar100", "root": None})


def _write_tree(root, classes, per_class, size=12):
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            # Grey levels differ by class; mode "L" checks the conversion to RGB.
            Image.new("L", (size, size), color=40 * c + i).save(root / name / f"{i}.png")


def test_imagefolder_single_tree_is_split_by_class(tmp_path):
    _write_tree(tmp_path, ["cat", "dog", "emu"], per_class=10)
    train, val, info = build_datasets(
        {"name": "imagefolder", "root": str(tmp_path), "image_size": 16}
    )
    assert info["num_classes"] == 3 and info["in_channels"] == 3
    assert (len(train), len(val)) == (24, 6)
    image, label = train[0]
    assert image.shape == (3, 16, 16) and image.dtype == torch.float32
    assert sorted(val[i][1] for i in range(len(val))) == [0, 0, 1, 1, 2, 2]


def test_imagefolder_train_and_val_folders_and_subsets(tmp_path):
    _write_tree(tmp_path / "train", ["a", "b"], per_class=8)
    _write_tree(tmp_path / "val", ["a", "b"], per_class=3)
    cfg = {"name": "imagefolder", "root": str(tmp_path), "image_size": 8, "train_samples": 6}
    train, val, info = build_datasets(cfg)
    assert info["num_classes"] == 2 and (len(train), len(val)) == (6, 6)


def test_imagefolder_without_class_folders_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="dataset.root"):
        build_datasets({"name": "imagefolder", "root": str(tmp_path), "image_size": 8})
    with pytest.raises(DatasetError, match="not a directory"):
        build_datasets({"name": "imagefolder", "root": str(tmp_path / "x"), "image_size": 8})


def test_fake_data_is_deterministic_and_disjoint():
    cfg = {"name": "fake", "image_size": 8, "train_samples": 40, "val_samples": 10}
    train, val, info = build_datasets(cfg)
    assert info["num_classes"] == 10 and info["in_channels"] == 3
    assert train.tensors[0].shape == (40, 3, 8, 8) and len(val) == 10
    # Build it again from scratch, not from the in-process caches.
    _in_memory.cache_clear()
    make_fake.cache_clear()
    again, _, _ = build_datasets(cfg)
    assert torch.equal(train.tensors[0], again.tensors[0])
    assert not torch.equal(train.tensors[0][:10], val.tensors[0])

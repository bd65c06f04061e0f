"""cluttered-digits: a deterministic generator whose images a small CNN can learn."""

import hashlib

import numpy as np
import pytest
import torch
from torch import nn

from ablation.data.build import build_datasets
from ablation.data.cluttered import generate, make_cluttered
from ablation.data.digits import load_digit_images
from ablation.data.identity import data_identity
from ablation.vocabulary.datasets import ClutterParams


def _digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def test_generator_gives_the_same_bytes_twice_and_other_bytes_for_another_seed():
    first = _digest(*make_cluttered(32, 600, 200, split_seed=0))
    again = _digest(*make_cluttered(32, 600, 200, split_seed=0))
    other = _digest(*make_cluttered(32, 600, 200, split_seed=1))
    assert first == again
    assert other != first


def test_images_are_on_the_canvas_in_range_with_balanced_labels():
    x_train, y_train, x_val, y_val = make_cluttered(40, 1000, 300, split_seed=0)
    assert x_train.shape == (1000, 1, 40, 40) and x_val.shape == (300, 1, 40, 40)
    assert x_train.dtype == torch.float32
    assert float(x_train.min()) >= 0.0 and float(x_train.max()) <= 1.0
    counts = torch.bincount(y_train, minlength=10)
    assert counts.min() >= 70 and counts.max() <= 130  # about 100 of each digit


def test_the_digit_moves_around_the_canvas():
    images, labels = load_digit_images()
    no_clutter = ClutterParams(fragments=0)
    x, _ = generate(images[:200], 200, 40, labels=labels[:200], seed=3, params=no_clutter)
    ink = x[:, 0]
    cols = (ink.sum(dim=1) * torch.arange(40)).sum(dim=1) / ink.sum(dim=(1, 2))
    rows = (ink.sum(dim=2) * torch.arange(40)).sum(dim=1) / ink.sum(dim=(1, 2))
    # Centres of mass spread over much of the canvas, in both directions.
    assert cols.max() - cols.min() > 15 and rows.max() - rows.min() > 15


def test_clutter_adds_ink_that_is_not_the_digit():
    images, labels = load_digit_images()
    kw = {"labels": labels[:300], "seed": 5}
    clean, _ = generate(images[:300], 300, 40, params=ClutterParams(fragments=0), **kw)
    cluttered, _ = generate(images[:300], 300, 40, params=ClutterParams(fragments=6), **kw)
    # Same seed, same digit placements; clutter only ever adds ink (pixel-wise max).
    assert torch.all(cluttered >= clean - 1e-6)
    assert float((cluttered - clean).sum()) > 0.3 * float(clean.sum())


def test_train_and_val_images_come_from_disjoint_source_digits():
    # With no clutter and the digit filling the canvas, each image is its upsampled source.
    params = {"fragments": 0, "digit_size": [1.0, 1.0]}
    cfg = {"name": "cluttered-digits", "image_size": 8, "train_samples": 1300, "val_samples": 400}
    train, val, _ = build_datasets({**cfg, "clutter": params})
    as_bytes = lambda ds: {bytes(np.round(x.numpy(), 4)) for x in ds.tensors[0]}  # noqa: E731
    assert not as_bytes(train) & as_bytes(val)


def test_identity_names_the_generator_parameters():
    base = {"name": "cluttered-digits", "image_size": 32}
    assert data_identity(base)["clutter"] == {
        "fragments": 4,
        "fragment_size": 4,
        "digit_size": [0.35, 0.5],
    }
    assert data_identity(base) != data_identity({**base, "clutter": {"fragments": 2}})


@pytest.fixture
def one_torch_thread():
    # The machine is shared: one thread is faster than two fighting other processes.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.timeout(120)
def test_a_small_cnn_learns_cluttered_digits_well_above_chance(one_torch_thread):
    cfg = {"name": "cluttered-digits", "image_size": 32, "train_samples": 1200, "val_samples": 400}
    train, val, info = build_datasets(cfg)
    assert info["num_classes"] == 10 and info["in_channels"] == 1
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1),
        nn.BatchNorm2d(32),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.BatchNorm2d(64),
        nn.ReLU(),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 10),
    )
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-3)
    x, y = train.tensors
    order = torch.Generator().manual_seed(0)
    for _ in range(4):
        net.train()
        for idx in torch.randperm(len(x), generator=order).split(64):
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    net.eval()
    x_val, y_val = val.tensors
    with torch.no_grad():
        error = 100 * float((net(x_val).argmax(dim=1) != y_val).float().mean())
    assert error < 60.0, f"val error {error:.1f}% (chance is 90%)"

"""Fixtures of the run tests: tiny study files, and one Ray shared by the in-process runs."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import pytest
import yaml

TINY = {
    "dataset": {"name": "digits", "image_size": 16, "train_samples": 200, "val_samples": 100},
    "model": {"backbone": "resnet20", "attention": "cbam"},
    "train": {"epochs": 2, "batch_size": 64, "optimizer": {"name": "sgd", "lr": 0.05}},
    "factors": {"model.cbam.kernel_size": [3, 7]},
    "seeds": [0, 1],
    "resources": {"cpus_per_trial": 1, "max_concurrent": 2, "max_retries": 0},
}


def write_study(folder: Path, name: str, **changes) -> Path:
    """A tiny study file (2 variants x 2 seeds of resnet20 on 16px digits, 2 epochs)."""
    data = {"study": name, **TINY, **changes}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="session", autouse=True)
def _ray_token_of_our_own():
    """In-process Ray clusters get a token from the environment, never ~/.ray."""
    if not os.environ.get("RAY_AUTH_TOKEN"):
        # RAY_AUTH_MODE stays unset: ray.init then turns token mode on by itself.
        os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)
    yield
    import ray

    if ray.is_initialized():
        ray.shutdown()

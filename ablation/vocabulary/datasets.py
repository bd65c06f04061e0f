"""The data sets a study can name, with the shape of their images and labels.

`ablation.data` builds them; the study schema and the dry run read their shapes from here
without loading anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class DataSet:
    name: str
    in_channels: int
    num_classes: int | None  # None: counted from the class folders under `root`
    image_size: int  # the default `dataset.image_size`
    needs_root: bool  # read from files under `dataset.root`
    in_memory: bool  # generated or bundled, held as tensors


@dataclass(frozen=True)
class ClutterParams:
    """The cluttered-digits generator's knobs and their defaults (ablation/data/cluttered.py)."""

    fragments: int = 4
    fragment_size: int = 4  # source pixels (of 8) on each side of a clutter window
    digit_size: tuple[float, float] = (0.35, 0.5)  # digit side as a fraction of the canvas

    def as_dict(self) -> dict:
        return {**asdict(self), "digit_size": list(self.digit_size)}


DATASETS: dict[str, DataSet] = {
    d.name: d
    for d in (
        DataSet("digits", 1, 10, 32, needs_root=False, in_memory=True),
        DataSet("cluttered-digits", 1, 10, 40, needs_root=False, in_memory=True),
        DataSet("cifar10", 3, 10, 32, needs_root=True, in_memory=False),
        DataSet("cifar100", 3, 100, 32, needs_root=True, in_memory=False),
        DataSet("imagefolder", 3, None, 224, needs_root=True, in_memory=False),
        DataSet("fake", 3, 10, 32, needs_root=False, in_memory=True),
    )
}

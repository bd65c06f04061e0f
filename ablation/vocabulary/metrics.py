"""The metrics a trial reports: each name the trainer writes, the tracker logs, the report reads.

Per-epoch metrics come with each epoch's report; final ones once, when the trial ends. A study
compares variants on a *comparable* metric: one that measures the model (its error, its loss,
its cost), not the run (learning rate, time per epoch). Each metric carries how the report
shows it: the tables' column label, and a figure's axis label with the scale its values are
drawn at (parameters in millions).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One metric: its name, when it is reported, whether a study may compare on it, its labels."""

    name: str
    per_epoch: bool
    comparable: bool
    description: str
    label: str = ""  # a table's column head; the name where empty
    axis_label: str = ""  # a figure's axis, in units of value * axis_scale; the label where empty
    axis_scale: float = 1.0

    def __post_init__(self) -> None:
        # The defaults depend on other fields, which a dataclass default cannot express.
        if not self.label:
            object.__setattr__(self, "label", self.name)
        if not self.axis_label:
            object.__setattr__(self, "axis_label", self.label)


METRICS: tuple[Metric, ...] = (
    Metric(
        "val_top1_error",
        True,
        True,
        "top-1 error on the validation set, percent",
        "Top-1 err (%)",
        "Val top-1 error (%)",
    ),
    Metric(
        "val_top5_error", True, True, "top-5 error on the validation set, percent", "Top-5 err (%)"
    ),
    Metric("val_loss", True, True, "cross-entropy on the validation set", "Val loss"),
    Metric("train_loss", True, True, "mean training cross-entropy over the epoch", "Train loss"),
    Metric("lr", True, False, "learning rate at the end of the epoch"),
    Metric("epoch_seconds", True, False, "wall time of the epoch (train + validation)"),
    Metric("images_per_second", True, False, "training images per second in the epoch"),
    Metric("params", False, True, "trainable parameters", "Params", "Params (M)", 1e-6),
    Metric("gflops", False, True, "GFLOPs per image, one multiply-add = 1 FLOP", "GFLOPs"),
    Metric("latency_ms", False, True, "median inference latency at batch 1, ms", "Latency (ms)"),
    Metric("train_seconds", False, False, "training time of the whole trial", "Train time (s)"),
    Metric("kernel_build_seconds", False, False, "time spent building CBAM's CPU kernels"),
    Metric("compile_seconds", False, False, "torch.compile's warm-up (train.compile), seconds"),
    Metric("epochs_completed", False, False, "epochs the trial ran (fewer when stopped early)"),
)

EPOCH_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if m.per_epoch)
FINAL_METRICS: tuple[str, ...] = tuple(m.name for m in METRICS if not m.per_epoch)
# What a study's `metric.name` may be, in the order the docs list them.
COMPARABLE: tuple[str, ...] = tuple(m.name for m in METRICS if m.comparable)
# Comparable per-epoch metrics: learning curves, and what `metric.epoch` may pick an epoch of.
COMPARABLE_EPOCH: tuple[str, ...] = tuple(m.name for m in METRICS if m.comparable and m.per_epoch)
# The model's costs, known once the model is built.
COSTS: tuple[str, ...] = tuple(m.name for m in METRICS if m.comparable and not m.per_epoch)

BY_NAME: dict[str, Metric] = {m.name: m for m in METRICS}


def label(name: str) -> str:
    """A metric's table label; a name that is no metric of `METRICS` is shown as it is."""
    metric = BY_NAME.get(name)
    return metric.label if metric else name


def axis(name: str) -> tuple[str, float]:
    """A metric's axis label and the scale a figure draws its values at (name and 1 for a
    name that is no metric of `METRICS`)."""
    metric = BY_NAME.get(name)
    return (metric.axis_label, metric.axis_scale) if metric else (name, 1.0)

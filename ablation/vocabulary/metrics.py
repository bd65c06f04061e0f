"""The metrics a trial reports: each name the trainer writes, the tracker logs, the report reads.

Per-epoch metrics come with each epoch's report; final ones once, when the trial ends. A study
compares variants on a *comparable* metric: one that measures the model (its error, its loss,
its cost), not the run (learning rate, time per epoch).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    name: str
    per_epoch: bool
    comparable: bool
    description: str


METRICS: tuple[Metric, ...] = (
    Metric("val_top1_error", True, True, "top-1 error on the validation set, percent"),
    Metric("val_top5_error", True, True, "top-5 error on the validation set, percent"),
    Metric("val_loss", True, True, "cross-entropy on the validation set"),
    Metric("train_loss", True, True, "mean training cross-entropy over the epoch"),
    Metric("lr", True, False, "learning rate at the end of the epoch"),
    Metric("epoch_seconds", True, False, "wall time of the epoch (train + validation)"),
    Metric("images_per_second", True, False, "training images per second in the epoch"),
    Metric("params", False, True, "trainable parameters"),
    Metric("gflops", False, True, "GFLOPs per image, one multiply-add = 1 FLOP"),
    Metric("latency_ms", False, True, "median inference latency at batch 1, ms"),
    Metric("train_seconds", False, False, "training time of the whole trial"),
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

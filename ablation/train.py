"""One trial: a resolved configuration in, metrics out through a callback.

Read it top to bottom: set-up, data, model, optimizer and schedule, resume, the epoch loop
(train, evaluate, report), and the model's cost. Ray, MLflow and Optuna stay outside: the
runner passes `report` and persists the `state` each report carries.

    config = TrialConfig.model_validate(spec.config).settings()  # checked, pydantic-free
    final = train_trial(config, spec.seed, lambda m: print(m["epoch"], m["val_top1_error"]))

Every setting comes from `config`, whose keys and defaults ablation/vocabulary/trial.py defines;
none is restated here. `config` is the pydantic-free `TrialSettings`, so this side
(train, models, attention, data) runs where pydantic, Ray, MLflow and Optuna are absent: the
GPU check (benchmarks/gpu_check.py) runs it so.

On a GPU (docs/gpu.md): `train.precision` autocasts (bf16, or fp16 with a
GradScaler), `train.channels_last`, `train.compile` (torch.compile; its time is
`compile_seconds`, apart from the epoch times) and `train.data_placement` (in-memory sets held
and augmented on the device: ablation/data/device.py). A CUDA out-of-memory error ends the trial
with `TrialFailed` saying to raise `resources.gpus_per_trial`; `place_trial` sets a Ray
worker's CUDA device and caps its memory share.

Same seed, same machine, CPU: identical metrics run to run (fixed split, seeded
initialisation and shuffling, deterministic kernels). A non-finite loss raises `TrialFailed`
at once, so a diverged variant is a failed trial with a reason, never a NaN in the results.
"""

from __future__ import annotations

import copy
import functools
import gc
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ParamSpec

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from ablation.attention import set_cbam_backend
from ablation.attention.fast import native
from ablation.data.build import batch_loader, build_datasets, resident_arrays
from ablation.data.device import DeviceBatches
from ablation.data.identity import DatasetError
from ablation.models import build_model
from ablation.profile import profile_model
from ablation.vocabulary.trial import (
    DatasetSettings,
    ModelSettings,
    OptimizerSettings,
    TrainSettings,
    TrialSettings,
)

# Set to an integer to fix torch's CPU threads per trial (Ray also sets OMP_NUM_THREADS).
THREADS_ENV = "ABLATION_TORCH_THREADS"
# torch.compile's backend (default inductor). The CPU tests and the GPU check's CPU dry run
# set "eager": the same capture and guards, without minutes of C++ codegen.
COMPILE_BACKEND_ENV = "ABLATION_COMPILE_BACKEND"
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# The memory share `place_trial` capped this process to (None: uncapped), for the OOM message.
_memory_share: float | None = None


class TrialFailed(RuntimeError):
    """The trial cannot give a result (diverged, data missing, ...); the message says why."""


def place_trial(gpu_ids: Sequence[int | str], gpu_share: float, *, cuda: Any = torch.cuda) -> str:
    """The device of a trial that Ray gave `gpu_share` GPUs (ids `gpu_ids`): "cpu" without
    one, else "cuda:K", made this process's current device, its memory capped to the share.

    With `gpus_per_trial` below 1 several trials share a GPU; each may then allocate only its
    share (`torch.cuda.set_per_process_memory_fraction`), so one greedy trial runs out of
    memory itself instead of starving its neighbours. `cuda` is torch.cuda (a stand-in in the
    CPU tests).
    """
    global _memory_share
    if not gpu_ids or gpu_share <= 0 or not cuda.is_available():
        return "cpu"
    # Ray sets CUDA_VISIBLE_DEVICES to the GPUs it assigned, so the trial's GPU is the one of
    # the visible devices with its id; where Ray leaves visibility alone it is the id itself.
    first = str(gpu_ids[0])
    visible = [d.strip() for d in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if d]
    index = visible.index(first) if first in visible else 0 if visible else int(first)
    cuda.set_device(index)
    if gpu_share < 1:
        cuda.set_per_process_memory_fraction(float(gpu_share), index)
        _memory_share = float(gpu_share)
    return f"cuda:{index}"


@dataclass(frozen=True)
class _Numerics:
    """Where and in what precision a trial computes (from `train`'s settings and the device)."""

    device: torch.device
    autocast_dtype: torch.dtype | None  # None: fp32, no autocast
    use_scaler: bool  # fp16 on CUDA: a GradScaler
    memory_format: torch.memory_format

    @property
    def on_cuda(self) -> bool:
        return self.device.type == "cuda"

    def autocast(self) -> torch.autocast:
        """The autocast context of a forward pass (disabled in fp32)."""
        enabled = self.autocast_dtype is not None
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=enabled)

    def move(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """A batch on the trial's device, images in its memory format."""
        images = images.to(self.device, non_blocking=True, memory_format=self.memory_format)
        return images, labels.to(self.device, non_blocking=True)


P = ParamSpec("P")


def _fails_on_cuda_oom(train: Callable[P, dict]) -> Callable[P, dict]:
    """`train`, with a CUDA out-of-memory error turned into `TrialFailed` after the memory is
    released, so the worker takes the next trial instead of hanging on a full GPU."""

    @functools.wraps(train)
    def guarded(*args: P.args, **kwargs: P.kwargs) -> dict:
        try:
            return train(*args, **kwargs)
        except torch.cuda.OutOfMemoryError as err:
            message = _oom_message(err, kwargs.get("device"))
        # Outside the except block the error's traceback, whose frames hold the trial's
        # tensors, is gone: only now can the cached memory go back to the GPU.
        gc.collect()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()
        raise TrialFailed(message)

    return guarded


def _oom_message(err: BaseException, device: str | None) -> str:
    share = f" (this process may use {_memory_share:g} of the GPU)" if _memory_share else ""
    first_line = (str(err).splitlines() or [type(err).__name__])[0]
    return (
        f"CUDA out of memory on {device or 'cuda'}{share}: raise resources.gpus_per_trial so "
        f"fewer trials share a GPU, or lower train.batch_size. torch: {first_line}"
    )


@_fails_on_cuda_oom
def train_trial(
    config: TrialSettings,
    seed: int,
    report: Callable[[dict], None],
    *,
    device: str | None = None,
    resume: dict | None = None,
) -> dict:
    """Train and evaluate one variant with one seed; returns the final metrics.

    Calls `report` once per epoch with `epoch`, `train_loss`, `val_loss`, `val_top1_error`,
    `val_top5_error` (percent), `lr`, `epoch_seconds`, `images_per_second` and `state` (model,
    optimizer, scheduler, epoch, RNG states: hand it back as `resume` to continue after that
    epoch; it references live tensors, so serialise it during the call). Returns the last
    epoch's metrics plus `params`, `gflops`, `latency_ms` (batch 1), `train_seconds`,
    `kernel_build_seconds` (what this process spent compiling CBAM's CPU kernels, 0.0 when
    they came from the cache or were not needed), `compile_seconds` (torch.compile's warm-up,
    0.0 without `train.compile`; in `train_seconds`, not in any `epoch_seconds`) and
    `epochs_completed`. A CUDA out-of-memory error anywhere in the trial raises `TrialFailed`
    telling to raise `resources.gpus_per_trial`.
    """
    train_cfg = config.train
    epochs = train_cfg.epochs
    numerics = _set_up(train_cfg, seed, device)
    shuffle_rng = torch.Generator().manual_seed(seed)  # the order of training batches
    train_loader, val_loader, info = _data(config.dataset, train_cfg, numerics, seed, shuffle_rng)
    top_k = min(5, info["num_classes"])
    model = _model(config.model, train_cfg, info).to(
        numerics.device, memory_format=numerics.memory_format
    )

    # -- optimizer and schedule (per step: linear warm-up, then cosine / step / constant) ------
    optimizer = _optimizer(train_cfg.optimizer, model)
    lr_factor = _lr_schedule(train_cfg, epochs, len(train_loader))
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    scaler = torch.amp.GradScaler("cuda", enabled=numerics.use_scaler)
    criterion = nn.CrossEntropyLoss(label_smoothing=train_cfg.label_smoothing)

    # -- torch.compile: `forward` is the compiled model; `model` keeps the state and the cost --
    forward: Callable[..., torch.Tensor] = model
    compile_seconds = 0.0
    if train_cfg.compile:
        # dynamic=False: one graph per batch shape (two or three), no symbolic-shape tracing.
        backend = os.environ.get(COMPILE_BACKEND_ENV, "inductor")
        forward = torch.compile(model, backend=backend, dynamic=False)
        compile_seconds = _compile_warmup(
            forward,
            model,
            criterion,
            numerics,
            train_shape=(info["train_batch"], info["in_channels"], info["image_size"]),
            val_batch=info["val_batch"],
        )

    # -- resume ----------------------------------------------------------------------------
    parts = {"model": model, "optimizer": optimizer, "scheduler": scheduler, "scaler": scaler}
    start_epoch, train_seconds, metrics = 1, 0.0, {}
    if resume is not None:
        _restore(resume, parts, shuffle_rng, train_loader, numerics)
        start_epoch = resume["epoch"] + 1
        train_seconds, metrics = resume["train_seconds"], dict(resume["metrics"])
    train_seconds += compile_seconds

    # -- the epoch loop --------------------------------------------------------------------
    for epoch in range(start_epoch, epochs + 1):
        started = time.perf_counter()
        model.train()
        loss_sum, seen = 0.0, 0
        for step, (images, labels) in enumerate(train_loader, start=1):
            images, labels = numerics.move(images, labels)
            with numerics.autocast():
                loss = criterion(forward(images), labels)
            # .item() syncs with the GPU every step: the price of failing at the first bad step.
            loss_value = loss.item()
            if not math.isfinite(loss_value):
                raise TrialFailed(f"non-finite training loss at epoch {epoch}, step {step}")
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            step_lr = optimizer.param_groups[0]["lr"]
            scheduler.step()
            loss_sum += loss_value * len(labels)
            seen += len(labels)
        train_phase = time.perf_counter() - started

        val_loss, top1, topk = _evaluate(model, forward, val_loader, numerics, top_k)
        if not math.isfinite(val_loss):
            raise TrialFailed(f"non-finite validation loss at epoch {epoch}")
        epoch_seconds = time.perf_counter() - started
        train_seconds += epoch_seconds
        metrics = {
            "epoch": epoch,
            "train_loss": loss_sum / seen,
            "val_loss": val_loss,
            "val_top1_error": 100.0 * (1.0 - top1),
            "val_top5_error": 100.0 * (1.0 - topk),
            "lr": step_lr,  # the rate of the epoch's last step
            "epoch_seconds": epoch_seconds,
            "images_per_second": seen / train_phase,
        }
        state = {name: part.state_dict() for name, part in parts.items()}
        state.update(epoch=epoch, train_seconds=train_seconds, metrics=metrics)
        state["rng"] = _rng_state(shuffle_rng, numerics.on_cuda)
        if isinstance(train_loader, DeviceBatches):
            state["rng"]["augment"] = train_loader.rng_state()
        report({**metrics, "state": state})

    # -- cost of the trained model: params, GFLOPs, latency at batch 1 ----------------------
    size = info["image_size"]
    cost = profile_model(model, (1, info["in_channels"], size, size))
    return {
        **metrics,
        **cost,
        "train_seconds": train_seconds,  # includes the CBAM kernels' build, when there was one
        "kernel_build_seconds": native.compile_seconds(),
        "compile_seconds": compile_seconds,
        "epochs_completed": epochs,
    }


def _restore(
    resume: dict,
    parts: dict[str, Any],
    shuffle_rng: torch.Generator,
    train_loader: Any,
    numerics: _Numerics,
) -> None:
    """Load a checkpointed epoch's state (`resume`) into the trial's parts and generators."""
    for name, part in parts.items():
        part.load_state_dict(resume[name])
    _set_rng_state(resume["rng"], shuffle_rng, numerics.on_cuda)
    if isinstance(train_loader, DeviceBatches):
        train_loader.set_rng_state(resume["rng"].get("augment"))


def _set_up(train_cfg: TrainSettings, seed: int, device: str | None) -> _Numerics:
    """The trial's device and numerics, with torch's threads, seeds and determinism set."""
    where = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    on_cuda = where.type == "cuda"
    # bf16 autocast runs on the CPU too; fp16 needs CUDA (there with a GradScaler) and runs in
    # fp32 elsewhere.
    precision = train_cfg.precision if (on_cuda or train_cfg.precision == "bf16") else "fp32"
    if os.environ.get(THREADS_ENV):
        torch.set_num_threads(int(os.environ[THREADS_ENV]))
    deterministic = train_cfg.deterministic
    if deterministic and on_cuda:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    # Process-wide settings: set for every trial, since a Ray worker runs many.
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = on_cuda and not deterministic
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # model initialisation (and CUDA's generators)
    channels_last = train_cfg.channels_last
    return _Numerics(
        device=where,
        autocast_dtype=AUTOCAST_DTYPES.get(precision),
        use_scaler=precision == "fp16",
        memory_format=torch.channels_last if channels_last else torch.contiguous_format,
    )


def _data(
    data_cfg: DatasetSettings,
    train_cfg: TrainSettings,
    numerics: _Numerics,
    seed: int,
    shuffle_rng: torch.Generator,
) -> tuple[Any, Any, dict[str, Any]]:
    """(training batches, validation batches, the data set's info plus the first batch sizes
    `train_batch` and `val_batch`); a data set that cannot be built fails the trial."""
    batch_size, placement = train_cfg.batch_size, train_cfg.data_placement
    on_device = placement == "device" or (placement == "auto" and numerics.on_cuda)
    try:
        train_ds, val_ds, info = build_datasets(data_cfg.as_dict())
        arrays = resident_arrays(data_cfg.as_dict()) if on_device else None
    except DatasetError as err:
        raise TrialFailed(str(err)) from err
    info = {
        **info,
        "train_batch": min(batch_size, len(train_ds)),
        "val_batch": min(batch_size, len(val_ds)),
    }
    if arrays is None:
        loader = functools.partial(
            batch_loader,
            batch_size=batch_size,
            num_workers=data_cfg.num_workers,
            pin_memory=numerics.on_cuda,
        )
        return loader(train_ds, shuffle_rng=shuffle_rng), loader(val_ds, shuffle_rng=None), info
    # The whole set on the device, batches drawn and augmented there (no workers).
    a = arrays
    common = {"device": numerics.device, "mean": a.mean, "std": a.std, "image_size": a.image_size}
    common["memory_format"] = numerics.memory_format
    train_batches = DeviceBatches(
        a.x_train,
        a.y_train,
        batch_size,
        shuffle_rng=shuffle_rng,
        seed=seed,
        pad=a.pad,
        drop_last=len(a.y_train) > batch_size,
        **common,
    )
    val_batches = DeviceBatches(a.x_val, a.y_val, batch_size, shuffle_rng=None, **common)
    return train_batches, val_batches, info


def _model(model_cfg: ModelSettings, train_cfg: TrainSettings, info: dict[str, Any]) -> nn.Module:
    """The backbone with its attention, on the chosen CBAM backend; a model that cannot be
    built fails the trial."""
    try:
        model = build_model(
            model_cfg.backbone,
            model_cfg.attention,
            dict(model_cfg.cbam),
            num_classes=info["num_classes"],
            in_channels=info["in_channels"],
            attention_args=model_cfg.attention_args,
            backbone_args=model_cfg.backbone_args,
        )
        set_cbam_backend(model, train_cfg.cbam_backend)  # docs/backends.md
    except (ValueError, TypeError) as err:  # TypeError: a plugin given keywords it lacks
        raise TrialFailed(f"cannot build the model: {err}") from err
    return model


def _optimizer(opt_cfg: OptimizerSettings, model: nn.Module) -> torch.optim.Optimizer:
    """SGD (momentum, nesterov) or AdamW (betas) over the model's parameters."""
    if opt_cfg.name == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=opt_cfg.lr,
            momentum=opt_cfg.momentum,
            nesterov=opt_cfg.nesterov,
            weight_decay=opt_cfg.weight_decay,
        )
    return torch.optim.AdamW(
        model.parameters(),
        lr=opt_cfg.lr,
        betas=tuple(opt_cfg.betas),
        weight_decay=opt_cfg.weight_decay,
    )


def _compile_warmup(
    forward: Callable[..., torch.Tensor],
    model: nn.Module,
    criterion: nn.Module,
    numerics: _Numerics,
    *,
    train_shape: tuple[int, int, int],
    val_batch: int,
) -> float:
    """Seconds torch.compile takes to build the training and evaluation graphs.

    One forward and backward in train mode and one forward in eval mode on zero images, so
    the epochs time training, not compilation; the model's parameters, buffers (BatchNorm's
    running statistics) and gradients are put back, so the warm-up leaves no trace. A last
    ragged batch may still compile once more inside an epoch (another shape).
    """
    saved = copy.deepcopy(model.state_dict())
    n, channels, size = train_shape
    started = time.perf_counter()
    images = torch.zeros(n, channels, size, size, device=numerics.device)
    images = images.contiguous(memory_format=numerics.memory_format)
    labels = torch.zeros(n, dtype=torch.long, device=numerics.device)
    model.train()
    with numerics.autocast():
        loss = criterion(forward(images), labels)
    loss.backward()
    model.eval()
    with torch.inference_mode(), numerics.autocast():
        forward(images[:val_batch])
    if numerics.on_cuda:
        torch.cuda.synchronize(numerics.device)
    seconds = time.perf_counter() - started
    model.zero_grad(set_to_none=True)
    model.load_state_dict(saved)
    return seconds


def _lr_schedule(
    train_cfg: TrainSettings, epochs: int, steps_per_epoch: int
) -> Callable[[int], float]:
    """The learning-rate factor at optimizer step `step` (0-based), for LambdaLR."""
    warmup, kind, gamma = train_cfg.warmup_epochs, train_cfg.schedule, train_cfg.gamma
    milestones = train_cfg.milestones or [epochs // 2, (3 * epochs) // 4]

    def factor(step: int) -> float:
        t = step / steps_per_epoch  # epochs done, fractional
        if t < warmup:
            return (step + 1) / (warmup * steps_per_epoch)
        if kind == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * (t - warmup) / max(epochs - warmup, 1e-9)))
        if kind == "step":
            return gamma ** sum(t >= m for m in milestones)
        return 1.0

    return factor


@torch.inference_mode()
def _evaluate(
    model: nn.Module,
    forward: Callable[..., torch.Tensor],
    loader: DataLoader | DeviceBatches,
    numerics: _Numerics,
    top_k: int,
) -> tuple[float, float, float]:
    """(mean cross-entropy, top-1 accuracy, top-k accuracy) on `loader`, with `forward`."""
    model.eval()
    loss_sum, correct1, correctk, seen = 0.0, 0, 0, 0
    for images, labels in loader:
        images, labels = numerics.move(images, labels)
        with numerics.autocast():
            logits = forward(images)
        loss_sum += nn.functional.cross_entropy(logits.float(), labels, reduction="sum").item()
        hits = logits.topk(top_k, dim=1).indices == labels[:, None]
        correct1 += int(hits[:, 0].sum())
        correctk += int(hits.any(dim=1).sum())
        seen += len(labels)
    return loss_sum / seen, correct1 / seen, correctk / seen


def _rng_state(shuffle_rng: torch.Generator, on_cuda: bool) -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if on_cuda else None,
        "shuffle": shuffle_rng.get_state(),
    }


def _set_rng_state(state: dict[str, Any], shuffle_rng: torch.Generator, on_cuda: bool) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if on_cuda and state.get("cuda") is not None:
        torch.cuda.set_rng_state_all(state["cuda"])
    shuffle_rng.set_state(state["shuffle"])

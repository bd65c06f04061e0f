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

On a GPU (README "Run on a GPU cluster"): `train.precision` autocasts (bf16, or fp16 with a
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
import gc
import math
import os
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, TensorDataset

from ablation.attention import set_cbam_backend
from ablation.attention.fast import native
from ablation.data.build import build_datasets, resident_arrays
from ablation.data.device import DeviceBatches
from ablation.data.identity import DatasetError
from ablation.models import build_model
from ablation.profile import profile_model
from ablation.vocabulary.trial import TrainSettings, TrialSettings

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


def train_trial(
    config: TrialSettings,
    seed: int,
    report: Callable[[dict], None],
    *,
    device: str | None = None,
    resume: dict | None = None,
) -> dict:
    """Train and evaluate one variant with one seed; returns the final metrics (`_train`).

    A CUDA out-of-memory error anywhere in the trial raises `TrialFailed` telling to raise
    `resources.gpus_per_trial`, after the memory is released, so the worker takes the next
    trial instead of hanging on a full GPU.
    """
    try:
        return _train(config, seed, report, device=device, resume=resume)
    except torch.cuda.OutOfMemoryError as err:
        message = _oom_message(err, device)
    # Outside the except block the error's traceback, whose frames hold the trial's tensors,
    # is gone: only now can the cached memory go back to the GPU.
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    raise TrialFailed(message)


def _oom_message(err: BaseException, device: str | None) -> str:
    share = f" (this process may use {_memory_share:g} of the GPU)" if _memory_share else ""
    first_line = (str(err).splitlines() or [type(err).__name__])[0]
    return (
        f"CUDA out of memory on {device or 'cuda'}{share}: raise resources.gpus_per_trial so "
        f"fewer trials share a GPU, or lower train.batch_size. torch: {first_line}"
    )


def _train(
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
    `epochs_completed`.
    """
    data_cfg, model_cfg, train_cfg = config.dataset, config.model, config.train
    opt_cfg = train_cfg.optimizer
    epochs, batch_size = train_cfg.epochs, train_cfg.batch_size

    # -- set-up: device, threads, seeds, determinism ------------------------------------------
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    on_cuda = device.type == "cuda"
    # bf16 autocast runs on the CPU too; fp16 needs CUDA (there with a GradScaler) and runs in
    # fp32 elsewhere, as `amp` always did.
    precision = train_cfg.precision if (on_cuda or train_cfg.precision == "bf16") else "fp32"
    autocast_dtype = AUTOCAST_DTYPES.get(precision)
    use_scaler = precision == "fp16"
    memory_format = torch.channels_last if train_cfg.channels_last else torch.contiguous_format
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
    shuffle_rng = torch.Generator().manual_seed(seed)  # the order of training batches

    # -- data ------------------------------------------------------------------------------
    placement = train_cfg.data_placement
    on_device = placement == "device" or (placement == "auto" and on_cuda)
    try:
        train_ds, val_ds, info = build_datasets(data_cfg.as_dict())
        arrays = resident_arrays(data_cfg.as_dict()) if on_device else None
    except DatasetError as err:
        raise TrialFailed(str(err)) from err
    if arrays is not None:
        # The whole set on the device, batches drawn and augmented there (no workers).
        a = arrays
        common = {"device": device, "mean": a.mean, "std": a.std, "image_size": a.image_size}
        common["memory_format"] = memory_format
        train_loader: Any = DeviceBatches(
            a.x_train, a.y_train, batch_size, shuffle_rng=shuffle_rng, seed=seed, pad=a.pad,
            drop_last=len(a.y_train) > batch_size, **common,
        )  # fmt: skip
        val_loader: Any = DeviceBatches(a.x_val, a.y_val, batch_size, shuffle_rng=None, **common)
    else:
        num_workers = data_cfg.num_workers
        train_loader = _loader(train_ds, batch_size, num_workers, on_cuda, shuffle_rng=shuffle_rng)
        val_loader = _loader(val_ds, batch_size, num_workers, on_cuda, shuffle_rng=None)
    num_classes = info["num_classes"]
    top_k = min(5, num_classes)

    # -- model -----------------------------------------------------------------------------
    try:
        model = build_model(
            model_cfg.backbone,
            model_cfg.attention,
            dict(model_cfg.cbam),
            num_classes=num_classes,
            in_channels=info["in_channels"],
        )
        set_cbam_backend(model, train_cfg.cbam_backend)  # README "CBAM backends"
    except ValueError as err:
        raise TrialFailed(f"cannot build the model: {err}") from err
    model = model.to(device, memory_format=memory_format)

    # -- optimizer and schedule (per step: linear warm-up, then cosine / step / constant) ------
    if opt_cfg.name == "sgd":
        optimizer = torch.optim.SGD(
            model.parameters(),
            lr=opt_cfg.lr,
            momentum=opt_cfg.momentum,
            nesterov=opt_cfg.nesterov,
            weight_decay=opt_cfg.weight_decay,
        )
    else:
        optimizer = torch.optim.AdamW(
            model.parameters(),
            lr=opt_cfg.lr,
            betas=tuple(opt_cfg.betas),
            weight_decay=opt_cfg.weight_decay,
        )
    steps_per_epoch = len(train_loader)
    lr_factor = _lr_schedule(train_cfg, epochs, steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)
    criterion = nn.CrossEntropyLoss(label_smoothing=train_cfg.label_smoothing)

    # -- torch.compile: `forward` is the compiled model; `model` keeps the state and the cost --
    forward: Callable[..., torch.Tensor] = model
    compile_seconds = 0.0
    if train_cfg.compile:
        # dynamic=False: one graph per batch shape (two or three), no symbolic-shape tracing.
        backend = os.environ.get(COMPILE_BACKEND_ENV, "inductor")
        forward = torch.compile(model, backend=backend, dynamic=False)
        compile_seconds = _compile_warmup(
            forward, model, criterion, device, memory_format, autocast_dtype,
            train_shape=(min(batch_size, len(train_ds)), info["in_channels"], info["image_size"]),
            val_batch=min(batch_size, len(val_ds)),
        )  # fmt: skip

    # -- resume ----------------------------------------------------------------------------
    start_epoch, train_seconds, metrics = 1, 0.0, {}
    if resume is not None:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        scheduler.load_state_dict(resume["scheduler"])
        scaler.load_state_dict(resume["scaler"])
        _set_rng_state(resume["rng"], shuffle_rng, on_cuda)
        if isinstance(train_loader, DeviceBatches):
            train_loader.set_rng_state(resume["rng"].get("augment"))
        start_epoch = resume["epoch"] + 1
        train_seconds, metrics = resume["train_seconds"], dict(resume["metrics"])
    train_seconds += compile_seconds

    # -- the epoch loop --------------------------------------------------------------------
    for epoch in range(start_epoch, epochs + 1):
        started = time.perf_counter()
        model.train()
        loss_sum, seen = 0.0, 0
        for step, (images, labels) in enumerate(train_loader, start=1):
            images = images.to(device, non_blocking=True, memory_format=memory_format)
            labels = labels.to(device, non_blocking=True)
            with torch.autocast(
                device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None
            ):
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

        val_loss, top1, topk = _evaluate(
            model, forward, val_loader, device, memory_format, autocast_dtype, top_k
        )
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
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": scaler.state_dict(),
            "epoch": epoch,
            "train_seconds": train_seconds,
            "metrics": metrics,
            "rng": _rng_state(shuffle_rng, on_cuda),
        }
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


def _loader(
    ds: Dataset,
    batch_size: int,
    num_workers: int,
    pin_memory: bool,
    *,
    shuffle_rng: torch.Generator | None,
) -> DataLoader:
    """Batches of `ds`; shuffled (with `shuffle_rng`) for training, in order for evaluation."""
    train = shuffle_rng is not None
    # Drop a ragged last training batch (BatchNorm dislikes a batch of one), unless it is all.
    drop_last = train and len(ds) > batch_size
    if isinstance(ds, TensorDataset) and num_workers == 0:
        # In-memory images: index whole batches at once instead of collating single images.
        order = RandomSampler(ds, generator=shuffle_rng) if train else range(len(ds))
        sampler = BatchSampler(order, batch_size, drop_last)
        return DataLoader(
            ds, batch_size=None, sampler=sampler, pin_memory=pin_memory, generator=shuffle_rng
        )
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=train,
        generator=shuffle_rng,
        drop_last=drop_last,
        num_workers=num_workers,
        pin_memory=pin_memory,
        persistent_workers=num_workers > 0,
    )


def _compile_warmup(
    forward: Callable[..., torch.Tensor],
    model: nn.Module,
    criterion: nn.Module,
    device: torch.device,
    memory_format: torch.memory_format,
    autocast_dtype: torch.dtype | None,
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
    enabled = autocast_dtype is not None
    images = torch.zeros(n, channels, size, size, device=device)
    images = images.contiguous(memory_format=memory_format)
    labels = torch.zeros(n, dtype=torch.long, device=device)
    model.train()
    with torch.autocast(device.type, dtype=autocast_dtype, enabled=enabled):
        loss = criterion(forward(images), labels)
    loss.backward()
    model.eval()
    with torch.inference_mode(), torch.autocast(device.type, dtype=autocast_dtype, enabled=enabled):
        forward(images[:val_batch])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
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
    device: torch.device,
    memory_format: torch.memory_format,
    autocast_dtype: torch.dtype | None,
    top_k: int,
) -> tuple[float, float, float]:
    """(mean cross-entropy, top-1 accuracy, top-k accuracy) on `loader`, with `forward`."""
    model.eval()
    loss_sum, correct1, correctk, seen = 0.0, 0, 0, 0
    for images, labels in loader:
        images = images.to(device, non_blocking=True, memory_format=memory_format)
        labels = labels.to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
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

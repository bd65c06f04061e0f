"""The device check: everything issue 15 asks of a GPU, measured in one run of at most 8 minutes.

    python3 benchmarks/gpu_check.py              # on the GPU machine, from the repo root
    python3 benchmarks/gpu_check.py --cpu-dry-run  # every part on the CPU at toy sizes (< 1 min)

It runs on a bare python3 with torch (2.11 there) and the repo on sys.path: it imports only
the training side (train, models, attention, data, vocabulary), never Ray, MLflow, Optuna or
pydantic, so the trial configurations below are complete resolved configs (every key;
tests/gpu/test_gpu_check.py checks them against the study schema). Without a GPU it says so
and exits 0 at once. The last thing it prints is one JSON summary (benchmarks/README.md):

- `tests`: the tests marked `cuda` (tests/gpu/), with pytest where the image has it, else
  run here function by function; counts of passed / failed / skipped;
- `cbam_overhead`: a ResNet-50 training step (batch 64, 224 px, bf16, channels_last) with
  and without CBAM, eager and compiled, ours (reference and fused backends) beside timm's
  CbamModule, interleaved rounds, medians;
- `packing`: the same CIFAR-shaped trial (fake data, 32 px, ResNet-20, 10 classes, 2 epochs)
  as 1, 2, 4 and 8 processes at once on one GPU: wall time, trials per GPU-hour, mean GPU
  utilisation and memory (NVML), speed-up over 1;
- `loader`: device-resident batches against the DataLoader path, images/s.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from ablation.vocabulary.cbam import DEFAULTS  # noqa: E402

# CBAM's default knobs as the schema dumps them (lists): the vocabulary is their one source.
CBAM_DEFAULTS = {k: list(v) if isinstance(v, tuple) else v for k, v in DEFAULTS.as_dict().items()}

# The device the tests in tests/gpu/ run on (the dry run sets cpu).
TEST_DEVICE_ENV = "ABLATION_TEST_DEVICE"


def trial_config(
    *,
    image_size: int = 32,
    train_samples: int = 5000,
    val_samples: int = 1000,
    epochs: int = 2,
    batch_size: int = 256,
    precision: str = "bf16",
    compile: bool = False,
    data_placement: str = "device",
    channels_last: bool = True,
) -> dict[str, Any]:
    """A complete resolved trial config (the schema's dump: every key) for the packed trial."""
    return {
        "dataset": {
            "name": "fake",
            "root": None,
            "image_size": image_size,
            "train_samples": train_samples,
            "val_samples": val_samples,
            "split_seed": 0,
            "num_workers": 0,
            "clutter": None,
            "args": {},
        },
        "model": {
            "backbone": "resnet20",
            "backbone_args": {},
            "attention": "cbam",
            "attention_args": {},
            "cbam": CBAM_DEFAULTS,
        },
        "train": {
            "epochs": epochs,
            "batch_size": batch_size,
            "optimizer": {
                "name": "sgd",
                "lr": 0.1,
                "momentum": 0.9,
                "nesterov": False,
                "weight_decay": 5.0e-4,
                "betas": [0.9, 0.999],
            },
            "schedule": "cosine",
            "milestones": None,
            "gamma": 0.1,
            "warmup_epochs": 0,
            "label_smoothing": 0.0,
            "amp": False,
            "precision": precision,
            "channels_last": channels_last,
            "compile": compile,
            "data_placement": data_placement,
            "deterministic": False,
            "cbam_backend": "auto",
        },
        "metric": {"name": "val_top1_error", "mode": "min", "epoch": None},
    }


# -- the tests marked cuda ------------------------------------------------------------------


def run_tests(device: str) -> dict[str, Any]:
    env = {**os.environ, TEST_DEVICE_ENV: device}
    if importlib.util.find_spec("pytest") is not None:
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "junit.xml"
            cmd = [
                sys.executable,
                "-m",
                "pytest",
                "tests/gpu/test_cuda.py",
                "-m",
                "cuda",
                "-q",
                "-p",
                "no:cacheprovider",
                f"--junitxml={report}",
            ]
            proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True)
            if not report.exists():
                return {"runner": "pytest", "error": proc.stdout[-2000:] + proc.stderr[-2000:]}
            suite = ET.parse(report).getroot()
            suite = suite if suite.tag == "testsuite" else suite[0]
            counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
            failed = [
                c.get("name")
                for c in suite.iter("testcase")
                if c.find("failure") is not None or c.find("error") is not None
            ]
            passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
            return {
                "runner": "pytest",
                "passed": passed,
                "failed": len(failed),
                "skipped": counts["skipped"],
                "failed_names": failed,
                "tail": proc.stdout[-1500:] if failed else "",
            }
    # No pytest in the image: run each test function of the module here.
    os.environ[TEST_DEVICE_ENV] = device
    spec = importlib.util.spec_from_file_location("gpu_tests", REPO / "tests/gpu/test_cuda.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    passed, skipped, failed = 0, 0, []
    for name in sorted(n for n in dir(module) if n.startswith("test_")):
        try:
            getattr(module, name)()
            passed += 1
        except unittest.SkipTest:
            skipped += 1
        except Exception as err:  # a failed test is a count and a name, not the end of the check
            failed.append(f"{name}: {type(err).__name__}: {err}"[:300])
    return {
        "runner": "builtin",
        "passed": passed,
        "failed": len(failed),
        "skipped": skipped,
        "failed_names": failed,
    }


# -- CBAM's training-step overhead on ResNet-50 ----------------------------------------------


def cbam_overhead(device: str, dry: bool) -> dict[str, Any]:
    from ablation.attention import set_cbam_backend
    from ablation.models import build_model

    batch, size, rounds, steps = (2, 16, 2, 1) if dry else (64, 224, 5, 10)
    # Toy size: ResNet-50 traces for minutes on a CPU; the CIFAR ResNet-20 exercises the same code.
    backbone = "resnet20" if dry else "resnet50"
    classes = 10 if dry else 1000
    dev = torch.device(device)
    variants: dict[str, Any] = {}

    def ours(attention: str, backend: str = "reference"):
        def make():
            model = build_model(backbone, attention, None, num_classes=classes)
            set_cbam_backend(model, backend)
            return model

        return make

    variants = {
        "none": ours("none"),
        "cbam_reference": ours("cbam"),
        "cbam_fused": ours("cbam", "fused"),
    }
    timm_note = None
    if dry:
        timm_note = "dry run: no timm column (timm has no CIFAR ResNet-20)"
    elif importlib.util.find_spec("timm") is not None:
        import timm

        variants["timm_none"] = lambda: timm.create_model(backbone, num_classes=1000)
        variants["timm_cbam"] = lambda: timm.create_model(
            backbone, num_classes=1000, attn_layer="cbam"
        )
    else:
        timm_note = "timm not installed: no timm CbamModule column"
    backend = "eager" if dry else "inductor"
    results: dict[str, Any] = {
        "backbone": backbone,
        "batch": batch,
        "image_size": size,
        "precision": "bf16",
        "channels_last": True,
        "rounds": rounds,
        "note": timm_note,
    }
    for compiled in (False, True):
        steps_of = {}
        for name, make in variants.items():
            if dry and compiled and name == "cbam_fused":
                continue  # compiling it takes minutes on a CPU; tests/gpu compile it on CUDA
            model = make().to(dev, memory_format=torch.channels_last)
            fwd = torch.compile(model, backend=backend) if compiled else model
            opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
            x = torch.randn(batch, 3, size, size, device=dev).contiguous(
                memory_format=torch.channels_last
            )
            y = torch.randint(0, classes, (batch,), device=dev)

            def step(fwd=fwd, opt=opt, x=x, y=y):
                with torch.autocast(dev.type, dtype=torch.bfloat16):
                    loss = torch.nn.functional.cross_entropy(fwd(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

            started = time.perf_counter()
            step()
            step()  # warm-up (and, compiled, the compile)
            _sync(dev)
            steps_of[name] = (step, time.perf_counter() - started)
        times: dict[str, list[float]] = {n: [] for n in steps_of}
        for _ in range(rounds):  # interleaved: drift hits every variant alike
            for name, (step, _) in steps_of.items():
                _sync(dev)
                started = time.perf_counter()
                for _ in range(steps):
                    step()
                _sync(dev)
                times[name].append((time.perf_counter() - started) / steps * 1000)
        med = {n: statistics.median(t) for n, t in times.items()}
        part = {"step_ms": med, "warmup_seconds": {n: s for n, (_, s) in steps_of.items()}}
        part["cbam_overhead"] = {
            name.removeprefix("cbam_"): med[name] / med["none"] - 1
            for name in ("cbam_reference", "cbam_fused")
            if name in med
        }
        if "timm_cbam" in med:
            part["cbam_overhead"]["timm"] = med["timm_cbam"] / med["timm_none"] - 1
        results["compiled" if compiled else "eager"] = part
        del steps_of
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return results


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


# -- several trials on one GPU ---------------------------------------------------------------


def one_trial(args: argparse.Namespace) -> None:
    """A child process: one packed trial, then its final metrics as one JSON line."""
    from ablation.train import place_trial, train_trial
    from ablation.vocabulary.trial import TrialSettings

    device = place_trial([0], args.share) if args.device == "cuda" else "cpu"
    cfg = json.loads(args.trial)
    final = train_trial(TrialSettings.from_dict(cfg), 0, lambda m: None, device=device)
    print(json.dumps({k: v for k, v in final.items() if isinstance(v, int | float)}))


def packing(device: str, dry: bool) -> dict[str, Any]:
    counts = (1, 2) if dry else (1, 2, 4, 8)
    if dry:  # toy trials: the processes' start-up, not the training, is what the CPU exercises
        cfg = trial_config(image_size=16, train_samples=32, val_samples=16, batch_size=16, epochs=1)
        cfg["train"].update(precision="fp32", channels_last=False)
    else:
        cfg = trial_config()
    nvml = _Nvml() if device == "cuda" else None
    rows = []
    for n in counts:
        cmd = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--trial",
            json.dumps(cfg),
            "--device",
            device,
            "--share",
            str(1.0 / n),
        ]
        env = {**os.environ, "ABLATION_TORCH_THREADS": "1"}
        if nvml:
            nvml.start()
        started = time.perf_counter()
        procs = [
            subprocess.Popen(
                cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            for _ in range(n)
        ]
        outs = [p.communicate() for p in procs]
        wall = time.perf_counter() - started
        samples = nvml.stop() if nvml else {}
        ok = [
            json.loads(o.strip().splitlines()[-1])
            for (o, _), p in zip(outs, procs, strict=True)
            if p.returncode == 0 and o.strip()
        ]
        row = {
            "processes": n,
            "finished": len(ok),
            "wall_seconds": wall,
            "trials_per_gpu_hour": len(ok) * 3600 / wall,
            **samples,
        }
        if len(ok) < n:
            row["errors"] = [
                e[-400:] for (_, e), p in zip(outs, procs, strict=True) if p.returncode
            ]
        if ok:
            row["val_top1_error_mean"] = statistics.mean(r["val_top1_error"] for r in ok)
        rows.append(row)
    base = rows[0]["trials_per_gpu_hour"] or float("nan")
    for row in rows:
        row["speedup_over_1"] = row["trials_per_gpu_hour"] / base
    data, epochs = cfg["dataset"], cfg["train"]["epochs"]
    trial = f"fake {data['image_size']}px resnet20+cbam 10 classes, {epochs} epochs"
    return {"trial": trial, "rows": rows}


class _Nvml:
    """GPU utilisation and memory sampled every 0.2 s while the trials run (nvidia-ml-py)."""

    def __init__(self) -> None:
        try:
            import pynvml

            pynvml.nvmlInit()
            self.nv, self.handle = pynvml, pynvml.nvmlDeviceGetHandleByIndex(0)
        except Exception:  # no NVML: the rows just lack the utilisation columns
            self.nv = None

    def start(self) -> None:
        self.util: list[float] = []
        self.mem: list[float] = []
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while self.running and self.nv is not None:
            self.util.append(self.nv.nvmlDeviceGetUtilizationRates(self.handle).gpu)
            self.mem.append(self.nv.nvmlDeviceGetMemoryInfo(self.handle).used / 2**30)
            time.sleep(0.2)

    def stop(self) -> dict[str, float]:
        self.running = False
        self.thread.join()
        if not self.util:
            return {}
        return {
            "gpu_util_mean_percent": statistics.mean(self.util),
            "gpu_memory_max_gib": max(self.mem),
        }


# -- device-resident batches against the DataLoader path -----------------------------------


def loader(device: str, dry: bool) -> dict[str, Any]:
    from ablation.data.build import batch_loader as _loader
    from ablation.data.device import DeviceBatches

    n, batch = (256, 64) if dry else (50_000, 512)
    dev = torch.device(device)
    x = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)
    y = torch.randint(0, 10, (n,))
    xf = x.float() / 255
    results = {}
    for name in ("dataloader", "device_resident"):
        g = torch.Generator().manual_seed(0)
        if name == "device_resident":
            batches: Any = DeviceBatches(
                x,
                y,
                batch,
                device=dev,
                shuffle_rng=g,
                pad=4,
                mean=(0.5,) * 3,
                std=(0.25,) * 3,
                drop_last=True,
            )
        else:
            from torch.utils.data import TensorDataset

            batches = _loader(TensorDataset(xf, y), batch, 0, dev.type == "cuda", shuffle_rng=g)
        seen, started = 0, time.perf_counter()
        for images, labels in batches:
            images = images.to(dev, non_blocking=True)
            seen += len(labels.to(dev, non_blocking=True))
        _sync(dev)
        results[f"{name}_images_per_second"] = seen / (time.perf_counter() - started)
    results["note"] = "the DataLoader path here has no augmentation; the resident one crops+flips"
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-dry-run", action="store_true", help="every part, CPU, toy sizes")
    parser.add_argument("--trial", help=argparse.SUPPRESS)  # a packed trial's child process
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    parser.add_argument("--share", type=float, default=1.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.trial:
        one_trial(args)
        return 0
    if not torch.cuda.is_available() and not args.cpu_dry_run:
        print(
            f"gpu_check: no CUDA GPU here (torch {torch.__version__}): nothing to measure. "
            "Run it on the GPU machine, or with --cpu-dry-run to exercise it on the CPU."
        )
        return 0
    dry = args.cpu_dry_run
    device = "cpu" if dry else "cuda"
    if dry:
        os.environ.setdefault("ABLATION_COMPILE_BACKEND", "eager")
        torch.set_num_threads(1)
    summary: dict[str, Any] = {
        "device": torch.cuda.get_device_name(0) if not dry else "cpu",
        "torch": torch.__version__,
        "dry_run": dry,
    }
    started = time.perf_counter()
    failed = False
    for part, fn in (
        ("tests", lambda: run_tests(device)),
        ("cbam_overhead", lambda: cbam_overhead(device, dry)),
        ("packing", lambda: packing(device, dry)),
        ("loader", lambda: loader(device, dry)),
    ):
        t0 = time.perf_counter()
        try:
            summary[part] = fn()
        except Exception as err:  # one broken part must not lose the others' figures
            summary[part] = {"error": f"{type(err).__name__}: {err}"[:1000]}
            failed = True
        summary[part]["seconds"] = time.perf_counter() - t0
        print(f"gpu_check: {part} done in {summary[part]['seconds']:.1f}s", file=sys.stderr)
    failed = failed or summary["tests"].get("failed", 0) > 0
    summary["seconds"] = time.perf_counter() - started
    print(json.dumps(summary, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

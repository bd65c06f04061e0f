"""Wall-clock cost of CBAM: plain ResNet vs ResNet + CBAM (fused, eager, timm), side by side.

    .venv/bin/python benchmarks/cbam_overhead.py            # everything, ~10 min on 2 threads
    .venv/bin/python benchmarks/cbam_overhead.py --only blocks --steps 20
    .venv/bin/python benchmarks/cbam_overhead.py --modes inference --variants fused passes timm

CBAM goes where the project puts it: after the last BN of every residual branch, before the
addition (`ablation.models.resnet.insert_attention`). Variants:

- plain:  torchvision ResNet-50 (or the CIFAR ResNet-20), no attention;
Each project variant is the project's `CBAM` on one `train.cbam_backend` (docs/backends.md):

- fused:  backend "kernels" (what "auto" picks on float32 CPU): `ablation.attention.fast`, on the
          compiled kernels of `ablation.attention.fast.native` (built once, cached; the build
          time is measured in a fresh cache and printed with the tables); in inference the
          whole forward is one kernel call, written over the BN's output in the models;
- passes: (not run by default) fused with inference on the per-pass kernels instead;
- stock:  backend "fused": the same fused path on stock PyTorch ops only (no compiler needed);
- eager:  backend "reference": `CBAM.forward`, the paper's composition with
          plain autograd (the default of a CBAM module, and what "auto" runs elsewhere);
- timm:   `timm.layers.CbamModule` (benchmark-only extra `bench`).

All variants are timed in one process, interleaved round by round (the order rotates every
round) so that load from other users of the machine hits them alike; the tables show the
median of the rounds and the overhead over plain, both as a ratio of medians and as the
median of the per-round ratios (paired, robust to drift).

--tuned-malloc reruns the script with glibc's malloc told to keep freed memory
(GLIBC_TUNABLES, see MALLOC_TUNABLES): with the defaults, every large activation is fresh
mmap'd memory, and the page faults that follow are a large and noisy share of a CPU step.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn

from ablation.attention import CBAM, set_cbam_backend
from ablation.attention.fast import cbam_forward, native
from ablation.models.cifar_resnet import CifarResNet
from ablation.models.resnet import insert_attention


def _backend(backend: str) -> Callable[[int], nn.Module]:
    """The project's CBAM on one backend (ablation.vocabulary.cbam.CBAM_BACKENDS)."""
    return lambda channels: set_cbam_backend(CBAM(channels), backend)


class PassesCBAM(CBAM):
    """The kernels backend with inference on the per-pass kernels (as training runs them)
    rather than in one call: what `fused` inference was before `native.infer`."""

    def forward(self, f: Tensor) -> Tensor:
        with native.use_kernels(True, whole_inference=False):
            return cbam_forward(self, f)


def _timm_cbam(channels: int) -> nn.Module:
    from timm.layers.cbam import CbamModule  # the `bench` extra

    return CbamModule(channels)


ATTENTIONS: dict[str, Callable[[int], nn.Module] | None] = {
    "plain": None,
    "fused": _backend("kernels"),
    "passes": PassesCBAM,
    "stock": _backend("fused"),
    "eager": _backend("reference"),
    "timm": _timm_cbam,
}


def build(backbone: str, attention: str) -> nn.Module:
    torch.manual_seed(0)
    model = torchvision.models.resnet50() if backbone == "resnet50" else CifarResNet(20)
    make = ATTENTIONS[attention]
    if make is not None:
        insert_attention(model, make)
    return model


def interleaved(tasks: dict[str, Callable[[], None]], steps: int, warmup: int) -> dict:
    """Per task, (wall, process CPU) seconds per call: `steps` rounds, each task once per
    round, in an order that rotates every round."""
    for fn in tasks.values():
        for _ in range(warmup):
            fn()
    names = list(tasks)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
    for r in range(steps):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            wall, cpu = time.perf_counter(), time.process_time()
            tasks[name]()
            times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    return times


def report(title: str, times: dict[str, list[tuple[float, float]]], base: str) -> None:
    """Medians and overheads over `base`: wall-clock (ratio of medians, and the median of
    the per-round ratios), and process CPU time (less sensitive to other users' load)."""
    wall = {name: [w for w, _ in ts] for name, ts in times.items()}
    cpu = {name: [c for _, c in ts] for name, ts in times.items()}
    med = {name: statistics.median(ts) for name, ts in wall.items()}
    med_cpu = {name: statistics.median(ts) for name, ts in cpu.items()}
    print(f"\n{title}")
    print("| variant | wall ms (median) | overhead | paired overhead | CPU ms | CPU overhead |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in times:
        if name == base:
            cells = ("-", "-", "-")
        else:
            paired = statistics.median(
                t / b - 1 for t, b in zip(wall[name], wall[base], strict=True)
            )
            cells = (
                f"{med[name] / med[base] - 1:+.1%}",
                f"{paired:+.1%}",
                f"{med_cpu[name] / med_cpu[base] - 1:+.1%}",
            )
        print(
            f"| {name} | {med[name] * 1e3:.1f} | {cells[0]} | {cells[1]} "
            f"| {med_cpu[name] * 1e3:.1f} | {cells[2]} |"
        )


MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=1073741824"


def cpu_model() -> str:
    """The CPU's name and vector width: conv speed (hence every ratio here) depends on it."""
    name, flags = platform.processor() or platform.machine(), set()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                name = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    vectors = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    return f"CPU {name} ({vectors})"


def kernel_build_seconds() -> float:
    """Seconds to build the kernels in a fresh cache, measured in a separate process."""
    with tempfile.TemporaryDirectory() as cache:
        code = "from ablation.attention.fast import native; native._library(); "
        code += "print(native.compile_seconds())"
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "XDG_CACHE_HOME": cache},
            capture_output=True,
            text=True,
            check=True,
        )
    return float(out.stdout.strip())


def report_startup(build: float, times: dict[str, list[tuple[float, float]]]) -> None:
    """The kernels' build time charged to a 1-minute trial of the plain model."""
    plain = statistics.median(w for w, _ in times["plain"])
    fused = statistics.median(w for w, _ in times["fused"])
    steps = 60.0 / plain
    total = steps * fused + build
    print(
        f"\nstart-up: kernel build {build:.2f} s (fresh cache; later processes load it, and "
        f"`make` builds it at setup); a 1-minute plain trial ({steps:.0f} steps) takes "
        f"{steps * fused:.1f} s with fused CBAM, {total:.1f} s if it must build the kernels "
        f"first: overhead {steps * fused / 60.0 - 1:+.1%}, with the build {total / 60.0 - 1:+.1%}"
    )


def bench_models(backbone: str, batch: int, size: int, classes: int, args) -> None:
    models = {name: build(backbone, name) for name in args.variants}
    x = torch.randn(batch, 3, size, size)
    target = torch.randint(0, classes, (batch,))
    if args.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
        for m in models.values():
            m.to(memory_format=torch.channels_last)

    def train_step(model: nn.Module, opt: torch.optim.Optimizer) -> Callable[[], None]:
        def step() -> None:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), target).backward()
            opt.step()

        return step

    def infer(model: nn.Module) -> Callable[[], None]:
        def step() -> None:
            with torch.inference_mode():
                model(x)

        return step

    shape = f"batch {batch} at {size}x{size}"
    if "train" in args.modes:
        for m in models.values():
            m.train()
        opts = {
            n: torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9) for n, m in models.items()
        }
        tasks = {n: train_step(m, opts[n]) for n, m in models.items()}
        times = interleaved(tasks, args.steps, args.warmup)
        report(f"{backbone}, train step (forward+backward+SGD), {shape}", times, "plain")
        if {"plain", "fused"} <= set(times):
            report_startup(args.build_seconds, times)
    if "inference" in args.modes:
        for m in models.values():
            m.eval()
        times = interleaved({n: infer(m) for n, m in models.items()}, args.steps, args.warmup)
        report(f"{backbone}, inference (eval, inference_mode), {shape}", times, "plain")


def bench_blocks(args, mode: str) -> None:
    what = "forward+backward" if mode == "train" else "inference forward (eval, inference_mode)"
    print(f"\nblock level: {what} of one CBAM, batch {args.batch} (ms, median)")
    names = [n for n in args.variants if n != "plain"]
    print("| shape | " + " | ".join(names) + " | fused / timm |")
    print("|---|" + "---:|" * (len(names) + 1))
    for c, hw in ((256, 56), (512, 28), (1024, 14), (2048, 7)):
        x = torch.randn(args.batch, c, hw, hw)
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        dy = torch.randn_like(x)
        tasks = {}
        for name in names:
            torch.manual_seed(0)
            module = ATTENTIONS[name](c).train(mode == "train")
            xg = x.clone().requires_grad_()

            def step(module: nn.Module = module, xg: Tensor = xg, dy: Tensor = dy) -> None:
                module(xg).backward(dy)
                xg.grad = None

            def infer(module: nn.Module = module, x: Tensor = x) -> None:
                with torch.inference_mode():
                    module(x)

            tasks[name] = step if mode == "train" else infer
        # Blocks are short: more rounds for the same confidence.
        times = interleaved(tasks, 3 * args.steps, args.warmup)
        med = {n: statistics.median(w for w, _ in ts) * 1e3 for n, ts in times.items()}
        ratio = f"{med['fused'] / med['timm']:.2f}" if {"fused", "timm"} <= set(med) else "-"
        cells = " | ".join(f"{med[n]:.2f}" for n in names)
        print(f"| {c}x{hw}x{hw} | {cells} | {ratio} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=9, help="timed rounds per table")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument(
        "--batch", type=int, default=8, help="ResNet-50 batch (224x224), and the blocks'"
    )
    parser.add_argument("--cifar-batch", type=int, default=128, help="ResNet-20 batch (32x32)")
    parser.add_argument("--only", choices=("resnet50", "cifar", "blocks"), action="append")
    parser.add_argument(
        "--modes", nargs="+", default=["train", "inference"], choices=("train", "inference")
    )
    parser.add_argument(
        "--variants",
        nargs="+",
        default=[name for name in ATTENTIONS if name != "passes"],
        choices=ATTENTIONS,
        help="default: all but passes (which differs from fused in inference only)",
    )
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument(
        "--tuned-malloc", action="store_true", help="rerun with GLIBC_TUNABLES=MALLOC_TUNABLES"
    )
    args = parser.parse_args()
    if args.tuned_malloc and os.environ.get("GLIBC_TUNABLES") != MALLOC_TUNABLES:
        env = {**os.environ, "GLIBC_TUNABLES": MALLOC_TUNABLES}
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    if "plain" not in args.variants:
        args.variants.insert(0, "plain")
    torch.set_num_threads(args.threads)
    only = set(args.only or ("resnet50", "cifar", "blocks"))
    fmt = "channels_last" if args.channels_last else "NCHW"
    args.build_seconds = kernel_build_seconds()
    if native._library() is None:
        sys.exit("the CBAM kernels did not build (is g++ installed?): see native.py")
    malloc = os.environ.get("GLIBC_TUNABLES") or "glibc defaults"
    print(
        f"{cpu_model()}; torch {torch.__version__}, {torch.get_num_threads()} threads, {fmt}, "
        f"{args.steps} interleaved rounds after {args.warmup} warm-up, malloc: {malloc}"
    )
    if "resnet50" in only:
        bench_models("resnet50", args.batch, 224, 1000, args)
    if "cifar" in only:
        bench_models("resnet20", args.cifar_batch, 32, 10, args)
    if "blocks" in only:
        for mode in args.modes:
            bench_blocks(args, mode)


if __name__ == "__main__":
    main()

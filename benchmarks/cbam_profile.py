"""Where one CBAM's time goes: torch.profiler over forward+backward (or inference) steps.

    .venv/bin/python benchmarks/cbam_profile.py --channels 2048 --size 7
    .venv/bin/python benchmarks/cbam_profile.py --batch 128 --channels 16 --size 32 --threads 1
    .venv/bin/python benchmarks/cbam_profile.py --inference

The project's `CBAM` (paper defaults) on a random (batch, channels, size, size) map; prints
the median step time without the profiler, then the profiler's table by self CPU time.
"Self" time of `_FusedCBAM` / `_FusedCBAMBackward` is what runs outside any aten op: Python,
and the compiled kernels called through ctypes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

from ablation.attention import CBAM, set_cbam_backend


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--channels", type=int, default=256)
    parser.add_argument("--size", type=int, default=56)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10, help="profiled steps")
    parser.add_argument("--inference", action="store_true", help="eval + inference_mode")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    module = set_cbam_backend(CBAM(args.channels), "kernels").train(not args.inference)
    x = torch.randn(args.batch, args.channels, args.size, args.size)
    dy = torch.randn_like(x)
    xg = x.clone().requires_grad_()

    def step() -> None:
        if args.inference:
            with torch.inference_mode():
                module(x)
        else:
            module(xg).backward(dy)
            xg.grad = None

    for _ in range(3):
        step()
    times = []
    for _ in range(20):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    what = "inference" if args.inference else "forward+backward"
    shape = f"{args.batch}x{args.channels}x{args.size}x{args.size}"
    print(f"{what} of one CBAM at {shape}, {args.threads} threads")
    print(f"median of 20 steps: {statistics.median(times) * 1e3:.2f} ms")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(args.steps):
            step()
    print(f"profiler, {args.steps} steps (totals are for all of them):")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


if __name__ == "__main__":
    main()

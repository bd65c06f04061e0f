"""Live progress of a study: trials done / running / failed / left, the ETA, the best variant.

`Progress` is plain state fed by the driver's trial events; `line()` renders it. On a terminal
the line is redrawn in place; elsewhere (logs, CI, Ray job logs) one line is printed per change.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TextIO

from ablation.vocabulary.direction import Direction


@dataclass
class Progress:
    study: str
    total: int
    metric: str
    mode: str  # min | max
    concurrency: int
    done: int = 0  # finished (incl. early-stopped and reused)
    failed: int = 0
    running: dict[str, str] = field(default_factory=dict)  # trial id -> "variant/seed=n e3"
    durations: list[float] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)  # variant -> metric per seed
    started_at: float = field(default_factory=time.monotonic)

    @property
    def left(self) -> int:
        return max(0, self.total - self.done - self.failed - len(self.running))

    def start(self, trial_id: str, label: str) -> None:
        self.running[trial_id] = label

    def epoch(self, trial_id: str, label: str, epoch: int) -> None:
        if trial_id in self.running:
            self.running[trial_id] = f"{label} e{epoch}"

    def finish(
        self,
        trial_id: str,
        variant: str,
        value: float | None,
        *,
        seconds: float | None = None,
        failed: bool = False,
    ) -> None:
        self.running.pop(trial_id, None)
        if failed:
            self.failed += 1
        else:
            self.done += 1
            if value is not None and math.isfinite(value):
                self.values.setdefault(variant, []).append(value)
        if seconds is not None:
            self.durations.append(seconds)

    def grow(self, n: int) -> None:
        """More trials became known (a sampler chose another variant)."""
        self.total += n

    def best(self) -> tuple[str, float, int] | None:
        """(variant, mean metric over its finished seeds, n seeds) of the best variant so far."""
        return best_variant(self.values, self.mode)

    def eta_seconds(self) -> float | None:
        if not self.durations:
            return None
        per_trial = statistics.fmean(self.durations)
        slots = max(1, self.concurrency)
        return per_trial * (self.left + 0.5 * len(self.running)) / slots

    def line(self) -> str:
        parts = [
            f"{self.study}: {self.done}/{self.total} done",
            f"{len(self.running)} running",
            f"{self.failed} failed",
            f"{self.left} left",
        ]
        eta = self.eta_seconds()
        if eta is not None and (self.left or self.running):
            parts.append(f"ETA {_clock(eta)}")
        best = self.best()
        if best:
            variant, mean, n = best
            parts.append(f"best {variant} {self.metric}={mean:.4g} (n={n})")
        parts.append(f"[{_clock(time.monotonic() - self.started_at)}]")
        return " | ".join(parts)


def best_variant(
    values: Mapping[str, list[float]], mode: str | Direction
) -> tuple[str, float, int] | None:
    """(variant, mean metric over its seeds, n seeds) of the best variant, or None for none."""
    if not values:
        return None
    means = {variant: statistics.fmean(xs) for variant, xs in values.items()}
    variant = Direction.of(mode).best_of(means)
    return variant, means[variant], len(values[variant])


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Printer:
    """Shows a Progress: redrawn in place on a TTY, one line per change elsewhere."""

    def __init__(self, progress: Progress, stream: TextIO | None = None) -> None:
        self.progress = progress
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self._last = ""

    def show(self) -> None:
        text = self.progress.line()
        # The elapsed clock changes every second: compare without it to print only on change.
        key = text.rsplit(" | [", 1)[0]
        if self.tty:
            self.stream.write("\r\033[K" + text)
            self.stream.flush()
        elif key != self._last:
            self.stream.write(text + "\n")
            self.stream.flush()
        self._last = key

    def say(self, message: str) -> None:
        """A message of its own line (the progress line is redrawn after it on a TTY)."""
        if self.tty:
            self.stream.write("\r\033[K")
        self.stream.write(message + "\n")
        self.stream.flush()
        if self.tty:
            self.show()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

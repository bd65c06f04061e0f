"""Which way a metric improves: the one place that reads a study's ``metric.mode``."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import TypeVar

K = TypeVar("K")


class Direction(StrEnum):
    """``min`` (lower is better: errors, losses, costs) or ``max`` (higher is better).

    A `StrEnum`, so a Direction is also its plain word (``Direction.MIN == "min"``): plans,
    tags and JSON keep the study file's spelling.
    """

    MIN = "min"
    MAX = "max"

    @classmethod
    def of(cls, mode: str | Direction) -> Direction:
        """The direction a ``metric.mode`` names; ValueError for anything else."""
        try:
            return cls(mode)
        except ValueError:
            raise ValueError(f"metric mode must be 'min' or 'max', not {mode!r}") from None

    @property
    def sign(self) -> float:
        """+1 where higher is better, -1 where lower is: ``sign * value`` grows as it improves."""
        return -1.0 if self is Direction.MIN else 1.0

    def improves(self, change: float) -> bool:
        """Whether a change of the metric (variant - baseline) is an improvement."""
        return self.sign * change > 0

    def best(self, items: Iterable[K], key: Callable[[K], float]) -> K:
        """The item whose `key` is best in this direction (the first among ties)."""
        pick = min if self is Direction.MIN else max
        return pick(items, key=key)

    def best_of(self, values: Mapping[K, float]) -> K:
        """The key of the best value of a mapping (variant -> mean metric, say)."""
        return self.best(values, values.__getitem__)

    @property
    def optuna(self) -> str:
        """Optuna's word for it: ``minimize`` or ``maximize``."""
        return "minimize" if self is Direction.MIN else "maximize"

    @property
    def phrase(self) -> str:
        """How a page says it: ``lower is better`` or ``higher is better``."""
        return "lower is better" if self is Direction.MIN else "higher is better"

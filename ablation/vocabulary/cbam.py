"""CBAM's knobs: names, allowed values and the paper's defaults, defined once, torch-free.

Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018, arXiv:1807.06521.
The study schema (`model.cbam`), the module (`ablation.attention.CBAM`), the fast backends
and `ablation profile`'s `k=v` words all take their knobs from here. Plain stdlib only, so the
training side imports it without pydantic and the schema imports it without torch.

`CBAM_BACKENDS` names the implementations of the same equations that `train.cbam_backend`
chooses between (see ablation/attention/__init__.py and docs/backends.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

CHANNEL_POOLS = ("avg", "max", "lp", "lse")
SPATIAL_POOLS = ("avg", "max")
ORDERS = ("channel-first", "spatial-first", "parallel")
GATES = ("channel", "spatial")
# "official": the official code's ResidualNet init (MLP biases 0, spatial conv kaiming-normal
# fan-out, spatial BatchNorm scale 0); "pytorch": PyTorch's module defaults.
INITS = ("official", "pytorch")
# auto: the measured-fastest backend for the input (docs/backends.md); reference: the
# paper's composition with plain autograd; fused: one autograd function on stock ops;
# kernels: fused, with the big passes on the compiled CPU kernels where they serve.
CBAM_BACKENDS = ("auto", "reference", "fused", "kernels")
DEFAULT_BACKEND = "auto"


ALLOWED: dict[str, tuple[str, ...]] = {
    "channel_pool": CHANNEL_POOLS,
    "spatial_pool": SPATIAL_POOLS,
    "order": ORDERS,
    "gates": GATES,
    "init": INITS,
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _subset(knob: str, value: Any) -> tuple[str, ...]:
    allowed = ALLOWED[knob]
    expected = f"a non-empty list of distinct values among {', '.join(allowed)}"
    if not isinstance(value, list | tuple) or not value:
        raise ValueError(f"{knob} must be {expected}; got {value!r}")
    for item in value:
        if item not in allowed:
            raise ValueError(f"{knob} must be {expected}; got unknown {item!r}")
    if len(set(value)) != len(value):
        raise ValueError(f"{knob} must be {expected}; got a duplicate in {list(value)!r}")
    return tuple(value)


@dataclass(frozen=True)
class CBAMKnobs:
    """One CBAM's knobs, checked on construction (ValueError naming the knob).

    Pools and gates are tuples, in the order given (the spatial pools' order is the conv's
    input channel order). The defaults are the paper's; `init` defaults to the official code's.
    """

    reduction: int = 16
    channel_pool: tuple[str, ...] = ("avg", "max")
    spatial_pool: tuple[str, ...] = ("avg", "max")
    kernel_size: int = 7
    order: str = "channel-first"
    gates: tuple[str, ...] = ("channel", "spatial")
    spatial_norm: bool = False
    init: str = "official"

    def __post_init__(self) -> None:
        if not _is_int(self.reduction) or self.reduction < 1:
            raise ValueError(f"reduction must be an integer >= 1; got {self.reduction!r}")
        k = self.kernel_size
        if not _is_int(k) or k < 1 or k % 2 == 0:
            raise ValueError(f"kernel_size must be an odd integer >= 1 (3, 7, ...); got {k!r}")
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {', '.join(ORDERS)}; got {self.order!r}")
        if not isinstance(self.spatial_norm, bool):
            raise ValueError(f"spatial_norm must be true or false; got {self.spatial_norm!r}")
        if self.init not in INITS:
            raise ValueError(f"init must be one of {', '.join(INITS)}; got {self.init!r}")
        # Lists (from YAML or JSON) become tuples, so the knobs hash and compare as values.
        object.__setattr__(self, "channel_pool", _subset("channel_pool", self.channel_pool))
        object.__setattr__(self, "spatial_pool", _subset("spatial_pool", self.spatial_pool))
        object.__setattr__(self, "gates", _subset("gates", self.gates))

    def as_dict(self) -> dict[str, Any]:
        """Every knob by name (pools and gates as tuples)."""
        return asdict(self)


KNOBS: tuple[str, ...] = tuple(f.name for f in fields(CBAMKnobs))
DEFAULTS = CBAMKnobs()
# The kind of each knob's value, for parsers of text (`ablation profile k=v`):
# "int", "bool", "str" (one of ALLOWED) or "list" (a subset of ALLOWED).
KINDS: dict[str, str] = {
    name: (
        "list"
        if isinstance(value, tuple)
        else "bool"
        if isinstance(value, bool)
        else "int"
        if isinstance(value, int)
        else "str"
    )
    for name, value in DEFAULTS.as_dict().items()
}


def check_cbam_knobs(knobs: Mapping[str, Any]) -> CBAMKnobs:
    """The knobs of a mapping (missing ones at their defaults), checked.

    Raises ValueError naming the first unknown or bad knob and what it allows.
    """
    unknown = sorted(set(knobs) - set(KNOBS))
    if unknown:
        raise ValueError(f"unknown CBAM knob {unknown[0]!r}; allowed: {', '.join(KNOBS)}")
    return CBAMKnobs(**knobs)

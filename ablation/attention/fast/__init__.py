"""CBAM's fast backends: the same equations as `ablation.attention.cbam`, fewer memory passes.

- `fused.py`: one autograd function with a hand-written backward, on stock PyTorch ops
  (backend "fused": CPU and CUDA, every dtype and knob);
- `native.py` + `cbam_kernels.cpp`: compiled CPU kernels for the big passes of the fused
  path (backend "kernels": float32 CPU tensors with avg/max channel pools; elsewhere the
  kernels backend runs the stock-op fused path).

A backend is put in by `set_cbam_backend(model, backend)` (`train.cbam_backend`): each CBAM
module becomes a `FastCBAM` that holds the very same gate modules, so parameters, buffers and
state_dict keys stay the reference's and `CBAM.forward` stays the paper's composition.
tests/attention/test_backends.py, test_fused.py and test_native.py check each backend
against the reference, forward and gradients, every knob, NCHW and channels_last.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from torch import Tensor, nn

from ablation.attention.cbam import CBAM
from ablation.attention.fast import native
from ablation.attention.fast.fused import cbam_forward, fused_cbam
from ablation.vocabulary.cbam import CBAM_BACKENDS

__all__ = [
    "FastCBAM",
    "cbam_forward",
    "fused_cbam",
    "native",
    "reference_path",
    "resolve_backend",
    "set_cbam_backend",
]

# The pools the compiled kernels serve (lp and lse are dense; the fused path runs them on
# stock ops).
_KERNEL_POOLS = ("avg", "max")
_REFERENCE = contextvars.ContextVar("cbam_reference_path", default=False)


class FastCBAM(CBAM):
    """A CBAM module run by a fast backend: its very gate modules, the same equations."""

    def __init__(self, cbam: CBAM, backend: str) -> None:
        # Not CBAM.__init__: that would build new gates (and draw random numbers for them).
        nn.Module.__init__(self)
        self.channels, self.knobs, self.order = cbam.channels, cbam.knobs, cbam.order
        self.inplace = cbam.inplace
        # The same modules, so the same Parameters and BatchNorm buffers, under the same keys.
        self.channel_gate, self.spatial_gate = cbam.channel_gate, cbam.spatial_gate
        self.backend = _checked(backend)
        self.train(cbam.training)

    def forward(self, f: Tensor) -> Tensor:
        backend = "reference" if _REFERENCE.get() else resolve_backend(self.backend, f, self)
        if backend == "reference":
            return self.reference_forward(f)
        # fused.py: the memory-bound pooling and gating in one autograd function, its big
        # passes on the compiled kernels for backend "kernels".
        return cbam_forward(self, f, kernels=backend == "kernels")

    def reference_forward(self, f: Tensor) -> Tensor:
        """The paper's composition of the same gates (`CBAM.forward`): what the backend equals."""
        return super().forward(f)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, backend={self.backend!r}"


def set_cbam_backend(model: nn.Module, backend: str) -> nn.Module:
    """Run every CBAM module of `model` on `backend` (one of CBAM_BACKENDS).

    Each CBAM is replaced by a FastCBAM over its own gate modules: the weights and the result
    stay those of the reference, only the forward and backward passes change. `model` is
    changed in place and returned; a CBAM given alone comes back as its FastCBAM.
    """
    _checked(backend)
    if isinstance(model, FastCBAM):
        model.backend = backend
        return model
    if isinstance(model, CBAM):
        return model if backend == "reference" else FastCBAM(model, backend)
    for name, child in model.named_children():
        replaced = set_cbam_backend(child, backend)
        if replaced is not child:
            setattr(model, name, replaced)
    return model


def resolve_backend(backend: str, f: Tensor, module: CBAM) -> str:
    """The backend that runs `module` on `f`: "reference", "fused" or "kernels".

    "auto" is what benchmarks/README.md measured faster than the reference: the kernels
    where they serve (float32 CPU input, avg/max channel pools, kernels built); the reference
    everywhere else (CUDA included: there the fused path is stock ops, see
    docs/backends.md). "kernels" where they do not serve runs the fused path on stock ops.
    """
    if backend != "auto":
        return backend
    pools = module.channel_gate.pools if module.channel_gate is not None else ()
    if set(pools) <= set(_KERNEL_POOLS) and native.available(f):
        return "kernels"
    return "reference"


@contextlib.contextmanager
def reference_path() -> Iterator[None]:
    """Run every CBAM through its reference composition inside the block: FLOP counts then
    follow the equations, not the fast path's implementation (which pools with matrix
    products)."""
    token = _REFERENCE.set(True)
    try:
        yield
    finally:
        _REFERENCE.reset(token)


def _checked(backend: str) -> str:
    if backend not in CBAM_BACKENDS:
        raise ValueError(f"cbam_backend must be one of {', '.join(CBAM_BACKENDS)}; got {backend!r}")
    return backend

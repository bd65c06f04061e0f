"""The one private PyTorch switch the fast path uses: oneDNN off around a small conv's backward.

oneDNN (mkldnn) is several times slower than aten's own kernel for the backward of the
spatial gate's k x k conv (one output channel) at small CPU batches (fused.py, `_no_onednn`).
PyTorch's public switch, `torch.backends.mkldnn.flags()`, also resets TF32 and warns on every
call; underneath it calls the private `torch._C._set_mkldnn_enabled`, used here directly.
Written against PyTorch `WRITTEN_FOR` (the version pyproject.toml pins); on another PyTorch
without these names the switch is left alone (slower, never wrong). On the pinned one their
absence is an error. tests/attention/test_torch_private.py checks both names and that no
other module of the package reaches into torch's privates.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch

# The PyTorch release (major, minor) whose private names this module was written for.
WRITTEN_FOR = (2, 14)
# Every private name used below (module, attribute), for the test that checks they exist.
REACHES = (("torch._C", "_get_mkldnn_enabled"), ("torch._C", "_set_mkldnn_enabled"))


def written_for(version: str | None = None) -> bool:
    """Whether `version` (default: the installed PyTorch's) is the release this module knows."""
    major, minor, *_ = (version or torch.__version__).split(".")
    return (int(major), int(minor)) == WRITTEN_FOR


@contextlib.contextmanager
def onednn_off() -> Iterator[None]:
    """oneDNN off inside the block and back on after. The switch is process-wide: hold it
    only around the few operations that need it. Nothing changes where oneDNN is off already
    (or the switch is gone from another PyTorch)."""
    switch = _switch()
    if switch is None or not switch[0]():
        yield
        return
    switch[1](False)
    try:
        yield
    finally:
        switch[1](True)


def _switch() -> tuple[Callable[[], bool], Callable[[bool], None]] | None:
    get = getattr(torch._C, "_get_mkldnn_enabled", None)
    set_ = getattr(torch._C, "_set_mkldnn_enabled", None)
    if get is not None and set_ is not None:
        return get, set_
    if written_for():
        known = ".".join(map(str, WRITTEN_FOR))
        raise RuntimeError(
            f"PyTorch {torch.__version__} has no torch._C._get/_set_mkldnn_enabled, which "
            f"PyTorch {known} has: update ablation/attention/fast/torch_private.py"
        )
    return None

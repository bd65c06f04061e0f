"""CPU kernels for CBAM's memory-bound passes (`cbam_kernels.cpp`), built on first use.

The fused path (`fused.py`) reads and writes the (N, C, H, W) feature map several times with
stock PyTorch ops. These kernels do the same work in fewer passes: pooling with sum, max and
argmax in one read, the spatial pools of x * a without forming x * a, the two gates and the
pools' gradients applied in one read and one write. They are plain C++ (no torch headers),
compiled with the system's g++ in about a second the first time a process needs them and
cached on disk; `compile_seconds()` reports what that cost this process (0.0 when the cache
served it).

They serve float32 CPU tensors. Everything else (CUDA, float64, half types, the lp/lse
pools) takes the stock-op path, which needs no compiler; so does everything when g++ is
missing or when ABLATION_CBAM_KERNELS=0 is set. Threads: torch's OpenMP runtime, with
torch.get_num_threads() threads.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor

from ablation.vocabulary.cbam import ORDERS

__all__ = [
    "available",
    "compile_seconds",
    "conv",
    "conv_backward",
    "dual_reduce",
    "gate",
    "infer",
    "pool",
    "use_kernels",
    "whole_inference",
]

ENV_SWITCH = "ABLATION_CBAM_KERNELS"
_SOURCE = Path(__file__).with_name("cbam_kernels.cpp")
_FLAGS = ("-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c++17")
_log = logging.getLogger(__name__)
_compile_seconds = 0.0
_ENABLED = contextvars.ContextVar("cbam_kernels_enabled", default=True)
_WHOLE_INFERENCE = contextvars.ContextVar("cbam_kernels_whole_inference", default=True)

_VOID = ctypes.c_void_p
_N = ctypes.c_int64
_INT = ctypes.c_int


def available(x: Tensor) -> bool:
    """True when the kernels serve `x` (float32, CPU), are switched on and could be built."""
    return (
        x.dtype == torch.float32
        and x.device.type == "cpu"
        and _ENABLED.get()
        and _library() is not None
    )


@contextlib.contextmanager
def use_kernels(enabled: bool, *, whole_inference: bool = True) -> Iterator[None]:
    """Inside the block, CBAM uses the kernels (where they serve) or, with False, the
    stock-op path: for comparisons and tests. whole_inference=False runs inference on the
    per-pass kernels that training uses instead of one `infer` call (for comparisons).
    ABLATION_CBAM_KERNELS=0 turns the kernels off for the whole process."""
    token = _ENABLED.set(enabled)
    whole = _WHOLE_INFERENCE.set(whole_inference)
    try:
        yield
    finally:
        _WHOLE_INFERENCE.reset(whole)
        _ENABLED.reset(token)


def whole_inference() -> bool:
    """False inside `use_kernels(..., whole_inference=False)`."""
    return _WHOLE_INFERENCE.get()


def compile_seconds() -> float:
    """Seconds this process spent compiling the kernels (0.0: cached, or not needed yet)."""
    return _compile_seconds


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ablation" / "cbam-kernels"


def _cpu_signature() -> str:
    """-march=native code is only valid on CPUs with the same features."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        flags = ""
    return f"{platform.machine()} {flags}"


@functools.cache
def _library() -> ctypes.CDLL | None:
    global _compile_seconds
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "off", "false", "no"):
        return None
    compiler = shutil.which(os.environ.get("CXX", "g++"))
    if compiler is None:
        _log.info("CBAM kernels: no C++ compiler found; using the stock-op path")
        return None
    source = _SOURCE.read_bytes()
    key = hashlib.sha256(
        source + " ".join((compiler, *_FLAGS, _cpu_signature(), torch.__version__)).encode()
    ).hexdigest()[:16]
    for directory in (_cache_dir(), Path(tempfile.gettempdir()) / "ablation-cbam-kernels"):
        path = directory / f"cbam_kernels-{key}.so"
        try:
            if not path.exists():
                start = time.perf_counter()
                _build(compiler, path)
                _compile_seconds += time.perf_counter() - start
            return _bind(ctypes.CDLL(str(path)))
        except (OSError, subprocess.CalledProcessError) as err:
            detail = getattr(err, "stderr", None) or ""
            _log.warning("CBAM kernels: could not build or load %s (%s) %s", path, err, detail)
    _log.warning("CBAM kernels unavailable; using the stock-op path")
    return None


def _build(compiler: str, path: Path) -> None:
    """Compile to a private name, then rename: concurrent workers never load half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".so", dir=path.parent)
    os.close(fd)
    try:
        subprocess.run(
            [compiler, *_FLAGS, "-o", tmp, str(_SOURCE)],
            check=True,
            capture_output=True,
            text=True,
        )
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    pool_args = [_VOID, _N, _N, _N, _VOID, _VOID, _VOID, _VOID, _INT]
    lib.cbam_pool_inner.argtypes = pool_args
    lib.cbam_pool_outer.argtypes = pool_args
    lib.cbam_gate.argtypes = [_VOID, _N, _N, _N, _VOID, _INT, _VOID, _INT, _VOID, _INT]
    lib.cbam_gate.argtypes += [_VOID, _VOID, _VOID, _INT]
    lib.cbam_dual_reduce.argtypes = [_VOID, _VOID, _N, _N, _N, _VOID, _VOID, _VOID, _VOID, _INT]
    lib.cbam_infer.argtypes = [_VOID, _VOID, _N, _N, _N, _N, _INT, _INT]  # x, y, shape, layout
    lib.cbam_infer.argtypes += [_VOID, _VOID, _VOID, _VOID, _N, _INT, _INT]  # channel gate
    lib.cbam_infer.argtypes += [_VOID, _N, _INT, _INT]  # spatial conv
    lib.cbam_infer.argtypes += [_VOID, _VOID, _VOID, _VOID, ctypes.c_double, _INT]  # BN, threads
    lib.cbam_conv_forward.argtypes = [_VOID, _N, _N, _N, _N, _VOID, _N, _VOID, _INT]
    lib.cbam_conv_backward.argtypes = [_VOID, _VOID, _VOID, _N, _N, _N, _N, _N, _VOID, _VOID]
    lib.cbam_conv_backward.argtypes += [_INT]
    names = ("cbam_pool_inner", "cbam_pool_outer", "cbam_gate", "cbam_dual_reduce", "cbam_infer")
    names += ("cbam_conv_forward", "cbam_conv_backward")
    for name in names:
        getattr(lib, name).restype = None
    return lib


def _ptr(t: Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def _vec(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.contiguous()


def pool(
    v3: Tensor,
    dim: int,
    weight: Tensor | None = None,
    *,
    want_sum: bool = True,
    want_max: bool = True,
    want_index: bool = False,
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Sum, max and argmax of v3 * weight over `dim` (1 or 2) of a contiguous (N, A, B)
    float32 tensor, in one pass. `weight` is (N, B) for dim 2 and (N, A) for dim 1; the
    results have the other shape. Unrequested results are None."""
    lib = _library()
    n, rows, cols = v3.shape
    shape = (n, rows) if dim == 2 else (n, cols)
    total = torch.empty(shape, dtype=v3.dtype) if want_sum else None
    top = torch.empty(shape, dtype=v3.dtype) if (want_max or want_index) else None
    index = torch.empty(shape, dtype=torch.int64) if want_index else None
    fn = lib.cbam_pool_inner if dim == 2 else lib.cbam_pool_outer
    weight = _vec(weight)
    fn(
        v3.data_ptr(),
        n,
        rows,
        cols,
        _ptr(weight),
        _ptr(total),
        _ptr(top),
        _ptr(index),
        torch.get_num_threads(),
    )
    return total, top if want_max else None, index


def gate(
    v3: Tensor,
    g1: tuple[Tensor, int] | None,
    h1: tuple[Tensor, int] | None = None,
    g2: tuple[Tensor, int] | None = None,
    h2: tuple[Tensor | None, Tensor | None] = (None, None),
    out: Tensor | None = None,
) -> Tensor:
    """(v3 * g1 + h1) * g2 + h2 over a contiguous (N, A, B) float32 tensor, in one pass.

    g1, h1, g2 are (vector, dim) with dim 1 for an (N, A) vector broadcast along B and dim 2
    for an (N, B) vector broadcast along A; None is absent (1, 0, 1). h2 is (per-A, per-B),
    either None. `out` may be v3 itself."""
    lib = _library()
    n, rows, cols = v3.shape
    out = torch.empty_like(v3) if out is None else out

    def term(t: tuple[Tensor, int] | None) -> tuple[Tensor | None, int]:
        return (None, 0) if t is None else (t[0].contiguous(), int(t[1] == 2))

    (g1t, g1b), (h1t, h1b), (g2t, g2b) = term(g1), term(h1), term(g2)
    h2a, h2b = _vec(h2[0]), _vec(h2[1])
    lib.cbam_gate(
        v3.data_ptr(),
        n,
        rows,
        cols,
        _ptr(g1t),
        g1b,
        _ptr(h1t),
        h1b,
        _ptr(g2t),
        g2b,
        _ptr(h2a),
        _ptr(h2b),
        out.data_ptr(),
        torch.get_num_threads(),
    )
    return out


def dual_reduce(
    dy3: Tensor,
    x3: Tensor,
    weight_a: Tensor | None,
    weight_b: Tensor | None,
    *,
    want_a: bool = True,
    want_b: bool = True,
) -> tuple[Tensor | None, Tensor | None]:
    """With p = dy3 * x3 ((N, A, B), contiguous float32): (sum over B of p * weight_b,
    sum over A of p * weight_a), shapes (N, A) and (N, B), reading dy3 and x3 once.
    A None weight is 1; an unwanted result is None."""
    lib = _library()
    n, rows, cols = x3.shape
    out_a = torch.empty((n, rows), dtype=x3.dtype) if want_a else None
    out_b = torch.empty((n, cols), dtype=x3.dtype) if want_b else None
    weight_a, weight_b = _vec(weight_a), _vec(weight_b)
    lib.cbam_dual_reduce(
        dy3.data_ptr(),
        x3.data_ptr(),
        n,
        rows,
        cols,
        _ptr(weight_a),
        _ptr(weight_b),
        _ptr(out_a),
        _ptr(out_b),
        torch.get_num_threads(),
    )
    return out_a, out_b


def conv(maps: Tensor, weight: Tensor) -> Tensor:
    """The spatial gate's convolution: (N, P, H, W) maps and a (1, P, k, k) weight, both
    contiguous float32, zero padding k // 2, no bias -> (N, 1, H, W)."""
    n, planes, h, w = maps.shape
    out = torch.empty((n, 1, h, w), dtype=maps.dtype)
    _library().cbam_conv_forward(
        maps.data_ptr(),
        n,
        planes,
        h,
        w,
        weight.data_ptr(),
        weight.shape[-1],
        out.data_ptr(),
        torch.get_num_threads(),
    )
    return out


def conv_backward(
    grad: Tensor, maps: Tensor, weight: Tensor, *, want_maps: bool = True, want_weight: bool = True
) -> tuple[Tensor | None, Tensor | None]:
    """Gradients of `conv` for the maps and the weight from the output's gradient `grad`
    ((N, 1, H, W), contiguous float32); an unwanted one is None."""
    n, planes, h, w = maps.shape
    grad_maps = torch.empty_like(maps) if want_maps else None
    grad_weight = torch.empty_like(weight) if want_weight else None
    _library().cbam_conv_backward(
        grad.data_ptr(),
        maps.data_ptr(),
        weight.data_ptr(),
        n,
        planes,
        h,
        w,
        weight.shape[-1],
        _ptr(grad_maps),
        _ptr(grad_weight),
        torch.get_num_threads(),
    )
    return grad_maps, grad_weight


# cbam_infer's order argument: the index in the vocabulary's ORDERS (0 channel-first,
# 1 spatial-first, 2 parallel, as cbam_kernels.cpp reads it).
ORDER_CODES = {order: code for code, order in enumerate(ORDERS)}


def infer(
    x: Tensor,
    *,
    channels_last: bool,
    order: str,
    mlp: tuple[Tensor, Tensor, Tensor, Tensor] | None,
    channel_pool: tuple[str, ...],
    conv_weight: Tensor | None,
    spatial_pool: tuple[str, ...],
    bn: tuple[Tensor, Tensor, Tensor, Tensor, float] | None,
    out: Tensor | None = None,
) -> Tensor:
    """The whole CBAM forward of a float32 CPU batch, without autograd, in one call.

    x is (N, C, H, W), contiguous in NCHW or channels_last (`channels_last` says which);
    mlp = (W0, b0, W1, b1) and the conv weight (1, len(spatial_pool), k, k) are float32 and
    contiguous, None for a gate that is off; pools among avg and max; bn = (weight, bias,
    running_mean, running_var, eps) of an eval-mode BatchNorm2d(1), or None. Returns y in
    x's memory format, written to `out` if given (which may be x itself: in place)."""
    lib = _library()
    n, c, h, w = x.shape
    y = torch.empty_like(x) if out is None else out
    w0, b0, w1, b1 = mlp if mlp is not None else (None, None, None, None)
    hidden = w0.shape[0] if w0 is not None else 0
    slots = {kind: i for i, kind in enumerate(spatial_pool)} if conv_weight is not None else {}
    k = conv_weight.shape[-1] if conv_weight is not None else 0
    bn_w, bn_b, bn_mean, bn_var, eps = bn if bn is not None else (None, None, None, None, 0.0)
    lib.cbam_infer(
        x.data_ptr(),
        y.data_ptr(),
        n,
        c,
        h,
        w,
        int(channels_last),
        ORDER_CODES[order],
        _ptr(w0),
        _ptr(b0),
        _ptr(w1),
        _ptr(b1),
        hidden,
        int("avg" in channel_pool),
        int("max" in channel_pool),
        _ptr(conv_weight),
        k,
        slots.get("avg", -1),
        slots.get("max", -1),
        _ptr(bn_w),
        _ptr(bn_b),
        _ptr(bn_mean),
        _ptr(bn_var),
        float(eps),
        torch.get_num_threads(),
    )
    return y


def main() -> None:
    """`python -m ablation.attention`: build the kernels into the cache now and say what
    happened. The setup (`make`) runs it, so that no trial pays the build."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    lib = _library()
    if lib is None:
        print(
            "CBAM kernels: unavailable (no C++ compiler, a failed build, or "
            f"{ENV_SWITCH}=0): CBAM runs on stock PyTorch ops"
        )
    elif _compile_seconds > 0:
        print(f"CBAM kernels: built in {_compile_seconds:.1f} s into {lib._name}")
    else:
        print(f"CBAM kernels: cached in {lib._name}")

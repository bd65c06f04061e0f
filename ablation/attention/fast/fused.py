"""Fast CBAM: the same equations as `cbam.py`, with the memory-bound parts fused.

Woo et al., "CBAM: Convolutional Block Attention Module", ECCV 2018, arXiv:1807.06521.

CBAM's FLOPs are negligible; its time is memory traffic over the (N, C, H, W) feature map.
Every order of the two gates has the form

    y = x * a[n, c] * b[n, h, w]      a = Mc(.) (N, C),  b = Ms(.) (N, H, W)

(a = 1 or b = 1 when that gate is off). `fused_cbam` computes it with one custom autograd
function whose forward reads x a few times and writes one buffer (the output), and whose
backward writes one buffer (dy * x first, then finished in place into the input gradient),
instead of autograd's chain of full-size intermediates:

- the gated intermediate (x * a, or x * b) is the output buffer, finished in place; nothing
  full-size is saved for backward but x itself (which the graph holds anyway);
- the max pools keep their argmax (N x C or N x HW indices, taken from CPU max pooling's
  vectorised kernel, see `_max`) and their backward is a scatter of N x C values, not the
  default dense "equal-to-max" mask over the whole map;
- avg pools of a gated map are weighted sums (a batched vector-matrix product), so the
  gated map is not read again; their gradient is folded into the single pass that forms
  the input gradient (addcmul with broadcast terms) instead of a separate full-size add;
- the small parts (the channel MLP, the k x k conv, BatchNorm, sigmoids) run through plain
  autograd on a detached sub-graph that backward differentiates with `torch.autograd.grad`,
  so every knob (lp/lse pools, spatial BatchNorm in training or eval) is supported exactly.
  lp and lse channel pools are dense by nature: they are differentiated by plain autograd
  inside that sub-graph (correct, not sped up).

Two implementations of the big passes share everything else (the small sub-graphs, the
order of the gates' backward, the saved state):

- the compiled kernels of `native.py` (float32 on CPU, avg/max pools; `kernels=True`):
  each pool is one read of x with sum, max and argmax together, the spatial-first and
  channel-first pools read x weighted by the other gate instead of a formed x * a; the
  output is one read and one write; backward reads dy and x once for dL/da and dL/db and
  forms the input gradient in one more pass; the sub-graph's k x k conv (one output
  channel) and its backward run on them too (`_SpatialConv`). Built with g++ at setup or
  on first use (a few seconds, cached), see `native.compile_seconds()`;
- stock PyTorch ops (everything else: CUDA, float64, half types under autocast, lp/lse
  pools, no compiler, `kernels=False`, or ABLATION_CBAM_KERNELS=0), described above.

Both memory formats are native: a contiguous NCHW input is viewed as (N, C, HW) and a
channels_last input as (N, HW, C), without copies; the output has the input's format.
With no gradient needed (inference), a graph-free forward runs: on the kernels, the whole
forward in one call (`native.infer`: each sample's passes back to back, in the cache), and
with `inplace`, over x's own memory; on stock ops, amax without indices.
The stock-op path runs the same code on CPU and CUDA with no compiler.

API (what `FastCBAM.forward` calls for the fused and kernels backends; names as in `cbam.py`)::

    fused_cbam(
        x,                                  # (N, C, H, W), NCHW or channels_last
        mlp=(W0, b0, W1, b1) | None,        # Linear(C, C/r), Linear(C/r, C); None = no gate
        channel_pool=("avg", "max"),        # among avg, max, lp, lse
        spatial_conv_weight=w | None,       # (1, len(spatial_pool), k, k); None = no spatial gate
        spatial_bn=nn.BatchNorm2d(1) | None,
        spatial_pool=("avg", "max"),        # among avg, max; concatenated in this order
        order="channel-first",              # or "spatial-first", "parallel"
        inplace=False,                      # inference may write the output over x
        kernels=True,                       # False: stock ops only (backend "fused")
    ) -> Tensor

Which gates run follows from `mlp` and `spatial_conv_weight` being given. For a `CBAM`
module `m`, `cbam_forward(m, x)` gathers exactly those arguments.

Ties in a max pool send the whole gradient to one of the tied positions (autograd's amax
splits it evenly); both are valid subgradients and ties do not occur on real-valued maps.
Double backward (create_graph=True) is not supported by the fused path.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from ablation.attention.fast import native, torch_private
from ablation.vocabulary.cbam import CHANNEL_POOLS as _CHANNEL_POOLS
from ablation.vocabulary.cbam import ORDERS as _ORDERS
from ablation.vocabulary.cbam import SPATIAL_POOLS as _SPATIAL_POOLS

__all__ = ["cbam_forward", "fused_cbam"]

_SPARSE = ("avg", "max")  # pools whose gradient the fused backward forms itself


def fused_cbam(
    x: Tensor,
    *,
    mlp: tuple[Tensor, Tensor | None, Tensor, Tensor | None] | None,
    channel_pool: Sequence[str] = ("avg", "max"),
    spatial_conv_weight: Tensor | None,
    spatial_bn: nn.BatchNorm2d | None = None,
    spatial_pool: Sequence[str] = ("avg", "max"),
    order: str = "channel-first",
    inplace: bool = False,
    kernels: bool = True,
) -> Tensor:
    """CBAM of `x` (eq. 1-3 of the paper) with fused pooling and gating; see the module doc.

    inplace: when no autograd graph is recorded (inference), the output may be written over
    x, which the caller then must not use again (for an x that dies with the call, such as a
    BatchNorm's output: it saves allocating and faulting in a fresh buffer).
    kernels: False keeps the big passes on stock ops even where native.py's kernels serve
    (backend "fused"); True uses them there (backend "kernels")."""
    if x.dim() != 4:
        raise ValueError(f"fused_cbam expects an (N, C, H, W) tensor; got shape {tuple(x.shape)}")
    if order not in _ORDERS:
        raise ValueError(f"order must be one of {', '.join(_ORDERS)}; got {order!r}")
    if mlp is None and spatial_conv_weight is None:
        return x
    channel_pool = tuple(channel_pool) if mlp is not None else ()
    spatial_pool = tuple(spatial_pool) if spatial_conv_weight is not None else ()
    if mlp is not None and (not channel_pool or set(channel_pool) - set(_CHANNEL_POOLS)):
        raise ValueError(f"channel_pool must be among {_CHANNEL_POOLS}; got {channel_pool!r}")
    if spatial_conv_weight is not None and (
        not spatial_pool or set(spatial_pool) - set(_SPATIAL_POOLS)
    ):
        raise ValueError(f"spatial_pool must be among {_SPATIAL_POOLS}; got {spatial_pool!r}")

    channels_last = not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)
    if not channels_last:
        x = x.contiguous()
    n, c, h, w = x.shape
    spec = _Spec(
        channel_pool=channel_pool,
        spatial_pool=spatial_pool,
        order=order if (mlp is not None and spatial_conv_weight is not None) else "parallel",
        channels_last=channels_last,
        shape=(n, c, h, w),
        native=kernels and native.available(x) and set(channel_pool) <= set(_SPARSE),
    )
    w0, b0, w1, b1 = mlp if mlp is not None else (None, None, None, None)
    bn_w = spatial_bn.weight if spatial_bn is not None else None
    bn_b = spatial_bn.bias if spatial_bn is not None else None
    tensors = (x, w0, b0, w1, b1, spatial_conv_weight, bn_w, bn_b)
    needs_graph = torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in tensors
    )
    if spec.native and not needs_graph and native.whole_inference():
        y = _infer_native(spec, x, mlp, spatial_conv_weight, spatial_bn, inplace)
        if y is not None:
            return y
    # Under autocast the pools and products stay in x's dtype and the small parts in the
    # parameters' dtype (they cost nothing); the gates are cast to x's dtype.
    with torch.autocast(x.device.type, enabled=False):
        if needs_graph:
            return _FusedCBAM.apply(spec, spatial_bn, *tensors)
        y, _ = _forward(
            spec, x, (w0, b0, w1, b1), spatial_conv_weight, spatial_bn, build_graph=False
        )
        return y


def cbam_forward(module: nn.Module, x: Tensor, *, kernels: bool = True) -> Tensor:
    """`fused_cbam` with the parameters and knobs of an `ablation.attention.CBAM` module."""
    cg, sg = module.channel_gate, module.spatial_gate
    mlp = None
    if cg is not None:
        first, last = cg.mlp[0], cg.mlp[2]
        mlp = (first.weight, first.bias, last.weight, last.bias)
    return fused_cbam(
        x,
        mlp=mlp,
        channel_pool=cg.pools if cg is not None else (),
        spatial_conv_weight=sg.conv.weight if sg is not None else None,
        spatial_bn=sg.norm if sg is not None and isinstance(sg.norm, nn.BatchNorm2d) else None,
        spatial_pool=sg.pools if sg is not None else (),
        order=module.order,
        inplace=module.inplace,
        kernels=kernels,
    )


@dataclass(frozen=True)
class _Spec:
    channel_pool: tuple[str, ...]  # () = no channel gate
    spatial_pool: tuple[str, ...]  # () = no spatial gate
    order: str  # "parallel" also stands for a single gate: it then sees x
    channels_last: bool
    shape: tuple[int, int, int, int]
    native: bool = False  # the compiled kernels of native.py serve the big passes

    # In the 3-d view, NCHW is (N, C, HW) and channels_last is (N, HW, C).
    @property
    def cdim(self) -> int:
        return 2 if self.channels_last else 1

    @property
    def sdim(self) -> int:
        return 1 if self.channels_last else 2

    def chan(self, v: Tensor) -> Tensor:
        """(N, C) -> broadcastable over the 3-d view."""
        return v.unsqueeze(self.sdim)

    def spat(self, v: Tensor) -> Tensor:
        """(N, HW) -> broadcastable over the 3-d view."""
        return v.unsqueeze(self.cdim)


def _view3(t: Tensor, channels_last: bool) -> Tensor:
    n, c, h, w = t.shape
    if channels_last:
        return t.permute(0, 2, 3, 1).reshape(n, h * w, c)  # a view: NHWC is contiguous
    return t.view(n, c, h * w)


def _sum_hw(spec: _Spec, v3: Tensor, weight: Tensor | None = None) -> Tensor:
    """sum over space of v * weight[n, hw] -> (N, C), without forming the product."""
    if weight is None:
        return v3.sum(spec.sdim)
    return _vecmat(weight, v3 if spec.channels_last else v3.transpose(1, 2))


def _sum_c(spec: _Spec, v3: Tensor, weight: Tensor | None = None) -> Tensor:
    """sum over channels of v * weight[n, c] -> (N, HW), without forming the product."""
    if weight is None:
        return v3.sum(spec.cdim)
    return _vecmat(weight, v3.transpose(1, 2) if spec.channels_last else v3)


def _vecmat(vec: Tensor, mat: Tensor) -> Tensor:
    """(N, K) x (N, K, M) -> (N, M). Always vector-times-matrix, also when `mat` is a
    transposed view: on CPU that form is 5-9x faster than the matrix-times-vector bmm."""
    return torch.bmm(vec.unsqueeze(1), mat).squeeze(1)


def _max(v3: Tensor, dim: int, with_index: bool) -> tuple[Tensor, Tensor | None]:
    """Max of the 3-d view over `dim`, and with_index its argmax."""
    if not with_index:
        return v3.amax(dim), None
    if v3.device.type != "cpu":
        values, index = v3.max(dim)
        return values, index
    n, rows, cols = v3.shape
    if dim == 1:
        return _max_outer(v3)
    block = _block(rows, cols)
    if block is not None:
        # Short rows (14x14, 7x7 maps): transpose blocks of `block` rows into a scratch copy
        # and take the vectorised outer max over them (8x1024x196: 0.47 ms vs 0.83 ms).
        blocks = v3.reshape(n * rows // block, block, cols).transpose(1, 2).contiguous()
        values, index = _max_outer(blocks)
        return values.view(n, rows), index.view(n, rows)
    # Over the contiguous dim, aten's max-with-index is scalar code (10-20x slower than amax
    # on a 56x56 map). Split the row into (outer, inner) and take the vectorised outer max
    # first, then a short max over `inner` of what is left.
    inner = _split(cols)
    if inner is None:
        values, index = v3.max(dim)
        return values, index
    partial, partial_index = _max_outer(v3.reshape(n * rows, cols // inner, inner))
    values, j = partial.max(1)
    index = partial_index.gather(1, j.unsqueeze(1)).squeeze(1) * inner + j
    return values.view(n, rows), index.view(n, rows)


def _max_outer(v3: Tensor) -> tuple[Tensor, Tensor]:
    """(max, argmax) of (N, A, B) over A. Seen as an (N, B, A, 1) channels_last image,
    it is CPU max pooling's vectorised kernel (B lanes at once) with indices."""
    n, rows, cols = v3.shape
    image = v3.view(n, rows, 1, cols).permute(0, 3, 1, 2)
    values, index = F.adaptive_max_pool2d(image, 1, return_indices=True)
    return values.view(n, cols), index.view(n, cols)


@functools.lru_cache(maxsize=256)
def _block(rows: int, cols: int) -> int | None:
    """Rows per transposed block for the max over short contiguous rows (cols < 256, where
    the split below does not apply), where that beats aten's max (measured at 7x7 to 15x15
    maps, and rows of 16 to 64 channels in channels_last)."""
    if cols >= 256:
        return None
    return next((b for b in (64, 32, 16) if rows % b == 0), None)


@functools.lru_cache(maxsize=256)
def _split(cols: int) -> int | None:
    """The divisor of `cols` nearest its square root, when the two-step max pays off."""
    if cols < 256:
        return None
    best = min(
        (d for d in range(8, cols // 8 + 1) if cols % d == 0),
        key=lambda d: abs(d * d - cols),
        default=None,
    )
    return best


def _channel_logits(descriptors: list[Tensor], mlp: tuple) -> Tensor:
    """sum_p W1 relu(W0 d_p + b0) + b1, the MLP applied once to the stacked descriptors."""
    w0, b0, w1, b1 = mlp
    hidden = F.relu(F.linear(torch.stack(descriptors).to(w0.dtype), w0, b0))
    return F.linear(hidden, w1, b1).sum(0)


def _spatial_logits(
    maps: list[Tensor], spec: _Spec, weight: Tensor, bn: nn.BatchNorm2d | None
) -> Tensor:
    """conv_kxk of the concatenated (N, HW) maps (+ BatchNorm) -> (N, HW)."""
    n, _, h, w = spec.shape
    stacked = torch.stack(maps, dim=1).view(n, len(maps), h, w).to(weight.dtype)
    if spec.native and weight.dtype == torch.float32 and weight.device.type == "cpu":
        out = _SpatialConv.apply(stacked, weight)
    else:
        out = F.conv2d(stacked, weight, padding=weight.shape[-1] // 2)
    if bn is not None:
        out = bn(out)
    return out.view(n, h * w)


class _SpatialConv(torch.autograd.Function):
    """The k x k conv of the spatial gate on the kernels (native.conv): one output channel
    and two input maps are far from what oneDNN and aten's convolutions are built for (at
    128x2x32x32, 7x7, one thread: 7.8 ms forward and 44.6 ms backward there, 4.0 and 7.2 ms
    here; benchmarks/cbam_profile.py, see benchmarks/README.md)."""

    @staticmethod
    def forward(ctx: Any, maps: Tensor, weight: Tensor) -> Tensor:
        maps, weight = maps.contiguous(), weight.contiguous()
        ctx.save_for_backward(maps, weight)
        return native.conv(maps, weight)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        maps, weight = ctx.saved_tensors
        return native.conv_backward(
            grad.contiguous(),
            maps,
            weight,
            want_maps=ctx.needs_input_grad[0],
            want_weight=ctx.needs_input_grad[1],
        )


def _no_onednn(t: Tensor) -> contextlib.AbstractContextManager[None]:
    """oneDNN off for the backward of the k x k conv with one output channel, on CPU at small
    batch: there it is several times slower than aten's own (8x2x56x56, 7x7: 8-17 ms vs 3-5
    ms); from batch 16 up oneDNN is the faster (128x2x32x32: 24 ms vs 27 ms). The switch is
    process-wide, so it is held only around this backward."""
    if t.device.type != "cpu" or t.shape[0] >= 16:
        return contextlib.nullcontext()
    return torch_private.onednn_off()


def _dense_pool(z3: Tensor, kind: str, dim: int) -> Tensor:
    if kind == "lp":  # the official code's lp_pool2d(2, (H, W)): the L2 norm over space
        return z3.pow(2).sum(dim).sqrt()
    return torch.logsumexp(z3, dim=dim)  # lse


class _Saved:
    """What backward needs besides x: gates, argmax indices, the small sub-graphs."""

    a: Tensor | None = None  # (N, C) channel gate
    b: Tensor | None = None  # (N, HW) spatial gate
    c_leaves: dict[str, Tensor] | None = None  # pool kind -> detached (N, C) descriptor leaf
    c_out: Tensor | None = None  # a, as the output of the channel sub-graph
    c_dense: tuple[Tensor, Tensor | None] | None = None  # (x leaf, b leaf) for lp/lse
    c_index: Tensor | None = None  # (N, C) argmax over space
    s_leaves: dict[str, Tensor] | None = None
    s_out: Tensor | None = None
    s_index: Tensor | None = None  # (N, HW) argmax over channels


def _channel_small(
    spec: _Spec,
    descriptors: dict[str, Tensor],
    mlp: tuple,
    saved: _Saved,
    build_graph: bool,
    dtype: torch.dtype,
    dense_map: Any = None,
    x3: Tensor | None = None,
    b: Tensor | None = None,
) -> Tensor:
    """Mc from the pooled descriptors: the MLP and sigmoid; with build_graph, on detached
    leaves recorded in `saved` for backward. lp/lse pools pool `dense_map(leaves)`, the map
    x * b formed once: from detached leaves of x3 and b inside the sub-graph, or with
    leaves=None outside it."""
    dense = [k for k in spec.channel_pool if k not in _SPARSE]
    if not build_graph:
        if dense:
            src = dense_map(None)
            for kind in dense:
                descriptors[kind] = _dense_pool(src, kind, spec.sdim)
        logits = _channel_logits([descriptors[k] for k in spec.channel_pool], mlp)
        return torch.sigmoid(logits).to(dtype)
    with torch.enable_grad():
        leaves = {k: d.detach().requires_grad_() for k, d in descriptors.items()}
        if dense:
            x_leaf = x3.detach().requires_grad_()
            b_leaf = b.detach().requires_grad_() if b is not None else None
            src = dense_map((x_leaf, b_leaf))
            for kind in dense:
                leaves[kind] = _dense_pool(src, kind, spec.sdim)
            saved.c_dense = (x_leaf, b_leaf)
        out = torch.sigmoid(_channel_logits([leaves[k] for k in spec.channel_pool], mlp))
    saved.c_leaves = {k: v for k, v in leaves.items() if k in _SPARSE}
    saved.c_out = out
    return out.detach().to(dtype)


def _spatial_small(
    spec: _Spec,
    maps: dict[str, Tensor],
    conv_weight: Tensor,
    bn: nn.BatchNorm2d | None,
    saved: _Saved,
    build_graph: bool,
    dtype: torch.dtype,
) -> Tensor:
    """Ms from the pooled maps: conv (+ BatchNorm) and sigmoid; with build_graph, on
    detached leaves recorded in `saved` for backward."""
    if not build_graph:
        ordered = [maps[k] for k in spec.spatial_pool]
        return torch.sigmoid(_spatial_logits(ordered, spec, conv_weight, bn)).to(dtype)
    with torch.enable_grad():
        leaves = {k: m.detach().requires_grad_() for k, m in maps.items()}
        ordered = [leaves[k] for k in spec.spatial_pool]
        out = torch.sigmoid(_spatial_logits(ordered, spec, conv_weight, bn))
    saved.s_leaves, saved.s_out = leaves, out
    return out.detach().to(dtype)


def _forward(
    spec: _Spec,
    x: Tensor,
    mlp: tuple,
    conv_weight: Tensor | None,
    bn: nn.BatchNorm2d | None,
    *,
    build_graph: bool,
) -> tuple[Tensor, _Saved]:
    """y = x * a * b; with build_graph, also what backward needs."""
    if spec.native:
        return _forward_native(spec, x, mlp, conv_weight, bn, build_graph=build_graph)
    n, c, h, w = spec.shape
    hw = h * w
    saved = _Saved()
    x3 = _view3(x, spec.channels_last)
    # y is allocated 4-d (x's memory format) and written through its 3-d view: the caller
    # gets a tensor that is no view, so in-place use (ResNet's `out += identity`) is allowed.
    y = torch.empty_like(x)
    y3 = _view3(y, spec.channels_last)

    def channel_gate(z3: Tensor | None, b: Tensor | None) -> Tensor:
        # Descriptors of x * b (b = None: of x). z3 is x * b when already formed.
        descriptors: dict[str, Tensor] = {}
        for kind in spec.channel_pool:
            if kind == "avg":
                descriptors[kind] = _sum_hw(spec, x3, b) / hw
            elif kind == "max":
                src = x3 if b is None else z3
                descriptors[kind], saved.c_index = _max(src, spec.sdim, build_graph)

        def dense_map(leaves: tuple[Tensor, Tensor | None] | None) -> Tensor:
            if leaves is None:  # no graph: the product is formed already
                return x3 if b is None else z3
            x_leaf, b_leaf = leaves
            return x_leaf if b_leaf is None else x_leaf * spec.spat(b_leaf)

        return _channel_small(spec, descriptors, mlp, saved, build_graph, x.dtype, dense_map, x3, b)

    def spatial_gate(z3: Tensor | None, a: Tensor | None) -> Tensor:
        # Maps of x * a (a = None: of x). z3 is x * a when already formed.
        maps: dict[str, Tensor] = {}
        for kind in spec.spatial_pool:
            if kind == "avg":
                if a is not None and spec.channels_last:
                    maps[kind] = z3.sum(spec.cdim) / c  # inner-dim sum beats the bmm here
                else:
                    maps[kind] = _sum_c(spec, x3, a) / c
            else:
                src = x3 if a is None else z3
                maps[kind], saved.s_index = _max(src, spec.cdim, build_graph)
        return _spatial_small(spec, maps, conv_weight, bn, saved, build_graph, x.dtype)

    has_c, has_s = bool(spec.channel_pool), bool(spec.spatial_pool)
    if spec.order == "channel-first":
        a = channel_gate(None, None)
        torch.mul(x3, spec.chan(a), out=y3)  # x * a: the spatial gate's input, then y
        b = spatial_gate(y3, a)
        y3.mul_(spec.spat(b))
    elif spec.order == "spatial-first":
        b = spatial_gate(None, None)
        torch.mul(x3, spec.spat(b), out=y3)
        a = channel_gate(y3, b)
        y3.mul_(spec.chan(a))
    else:  # parallel, or a single gate
        a = channel_gate(None, None) if has_c else None
        b = spatial_gate(None, None) if has_s else None
        if a is not None:
            torch.mul(x3, spec.chan(a), out=y3)
            if b is not None:
                y3.mul_(spec.spat(b))
        else:
            torch.mul(x3, spec.spat(b), out=y3)
    saved.a, saved.b = a, b
    return y, saved


def _forward_native(
    spec: _Spec,
    x: Tensor,
    mlp: tuple,
    conv_weight: Tensor | None,
    bn: nn.BatchNorm2d | None,
    *,
    build_graph: bool,
) -> tuple[Tensor, _Saved]:
    """`_forward` with native.py's kernels: each pool is one read of x (the gated map x * a
    or x * b is never formed), and y = x * a * b is one read and one write."""
    n, c, h, w = spec.shape
    saved = _Saved()
    x3 = _view3(x, spec.channels_last)

    def pools(kinds: tuple[str, ...], dim: int, weight: Tensor | None, size: int):
        """avg/max of x * weight over `dim` of the view (one read), and the argmax."""
        total, top, index = native.pool(
            x3,
            dim,
            weight,
            want_sum="avg" in kinds,
            want_max="max" in kinds,
            want_index=build_graph and "max" in kinds,
        )
        pooled = {"avg": total / size if total is not None else None, "max": top}
        return {k: pooled[k] for k in kinds}, index

    def channel_gate(b: Tensor | None) -> Tensor:  # Mc of x * b (b = None: of x)
        descriptors, saved.c_index = pools(spec.channel_pool, spec.sdim, b, h * w)
        return _channel_small(spec, descriptors, mlp, saved, build_graph, x.dtype)

    def spatial_gate(a: Tensor | None) -> Tensor:  # Ms of x * a (a = None: of x)
        maps, saved.s_index = pools(spec.spatial_pool, spec.cdim, a, c)
        return _spatial_small(spec, maps, conv_weight, bn, saved, build_graph, x.dtype)

    a = b = None
    if spec.order == "channel-first":
        a = channel_gate(None)
        b = spatial_gate(a)
    elif spec.order == "spatial-first":
        b = spatial_gate(None)
        a = channel_gate(b)
    else:  # parallel, or a single gate
        a = channel_gate(None) if spec.channel_pool else None
        b = spatial_gate(None) if spec.spatial_pool else None
    # y is allocated 4-d (x's memory format): the caller gets a tensor that is no view.
    y = torch.empty_like(x)
    gates = [(a, spec.cdim), (b, spec.sdim)]
    g1, g2 = [g if g[0] is not None else None for g in gates]
    native.gate(x3, g1, None, g2, out=_view3(y, spec.channels_last))
    saved.a, saved.b = a, b
    return y, saved


def _infer_native(
    spec: _Spec,
    x: Tensor,
    mlp: tuple | None,
    conv_weight: Tensor | None,
    bn: nn.BatchNorm2d | None,
    inplace: bool,
) -> Tensor | None:
    """Inference on the kernels: the whole forward in one call (native.infer), or None where
    that call does not serve (a BatchNorm on batch statistics, parameters not float32)."""
    bn_args = None
    if bn is not None:
        if bn.training or bn.running_mean is None:
            return None  # batch statistics, and their running update: the general path
        bn_args = (bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.eps)
    params = [*(mlp or ()), conv_weight, *(bn_args[:4] if bn_args else ())]
    if any(t is not None and (t.dtype != torch.float32 or t.device.type != "cpu") for t in params):
        return None
    mlp = tuple(t.contiguous() if t is not None else None for t in mlp) if mlp else None
    return native.infer(
        x,
        channels_last=spec.channels_last,
        order=spec.order,
        mlp=mlp,
        channel_pool=spec.channel_pool,
        conv_weight=conv_weight.contiguous() if conv_weight is not None else None,
        spatial_pool=spec.spatial_pool,
        bn=bn_args,
        out=x if inplace else None,
    )


def _grad(out: Tensor, grad_out: Tensor, inputs: list[Tensor | None]) -> list[Tensor | None]:
    """Gradients of a small sub-graph; None for inputs that are absent or need none."""
    wanted = [t for t in inputs if t is not None and t.requires_grad]
    # retain_graph: the outer graph may be differentiated again (retain_graph=True, gradcheck);
    # the sub-graph is small and dies with the outer one.
    grads = iter(torch.autograd.grad(out, wanted, grad_out, retain_graph=True, allow_unused=True))
    result = []
    for t in inputs:
        g = next(grads) if t is not None and t.requires_grad else None
        result.append(g)
    return result


def _gate_grads(spec: _Spec, s: _Saved, x3: Tensor, da: Tensor | None, db: Tensor | None, params):
    """The gates' sub-graphs differentiated in the order the gates ran: returns (channel pool
    grads, lp/lse leaf grads, MLP grads, spatial pool grads, conv/BN grads). da and db are
    dL/da and dL/db through the product y = x * a * b only."""
    w0, b0, w1, b1, conv_w, bn_w, bn_b = params
    c = spec.shape[1]
    hw = spec.shape[2] * spec.shape[3]
    cdim, sdim = spec.cdim, spec.sdim
    a, b = s.a, s.b

    def channel_backward(da: Tensor):
        leaves = s.c_leaves
        kinds = [k for k in ("avg", "max") if k in leaves]
        dense = list(s.c_dense) if s.c_dense is not None else [None, None]
        grads = _grad(
            s.c_out, da.to(s.c_out.dtype), [leaves[k] for k in kinds] + dense + [w0, b0, w1, b1]
        )
        g = dict(zip(kinds, grads[: len(kinds)], strict=True))
        return g, grads[len(kinds) : len(kinds) + 2], grads[len(kinds) + 2 :]

    def spatial_backward(db: Tensor):
        leaves = s.s_leaves
        kinds = [k for k in ("avg", "max") if k in leaves]
        with _no_onednn(db):
            grads = _grad(
                s.s_out, db.to(s.s_out.dtype), [leaves[k] for k in kinds] + [conv_w, bn_w, bn_b]
            )
        return dict(zip(kinds, grads[: len(kinds)], strict=True)), grads[len(kinds) :]

    c_grads, c_dense, c_param_grads = {}, [None, None], [None] * 4
    s_grads, s_param_grads = {}, [None] * 3
    if spec.order == "channel-first":
        # b was computed from x * a: its pools' gradients reach a (and x, below).
        s_grads, s_param_grads = spatial_backward(db)
        if "avg" in s_grads:
            da = da + _sum_hw(spec, x3, s_grads["avg"]) / c
        if "max" in s_grads:
            x_at = x3.gather(cdim, s.s_index.unsqueeze(cdim)).squeeze(cdim)
            da = da.scatter_add(1, s.s_index, x_at * s_grads["max"])
        c_grads, c_dense, c_param_grads = channel_backward(da)
    elif spec.order == "spatial-first":
        c_grads, c_dense, c_param_grads = channel_backward(da)
        if "avg" in c_grads:
            db = db + _sum_c(spec, x3, c_grads["avg"]) / hw
        if "max" in c_grads:
            x_at = x3.gather(sdim, s.c_index.unsqueeze(sdim)).squeeze(sdim)
            db = db.scatter_add(1, s.c_index, x_at * c_grads["max"])
        if c_dense[1] is not None:
            db = db + c_dense[1]
        s_grads, s_param_grads = spatial_backward(db)
    else:
        if a is not None:
            c_grads, c_dense, c_param_grads = channel_backward(da)
        if b is not None:
            s_grads, s_param_grads = spatial_backward(db)
    return c_grads, c_dense, c_param_grads, s_grads, s_param_grads


def _direct_grads_native(
    spec: _Spec, dy3: Tensor, x3: Tensor, a: Tensor | None, b: Tensor | None
) -> tuple[Tensor | None, Tensor | None]:
    """(dL/da, dL/db) through y = x * a * b, i.e. the sums over space and over channels of
    dy * x weighted by the other gate, in one read of dy and x."""
    if not spec.channels_last:  # (N, C, HW): the A rows are channels
        return native.dual_reduce(dy3, x3, a, b, want_a=a is not None, want_b=b is not None)
    db, da = native.dual_reduce(dy3, x3, b, a, want_a=b is not None, want_b=a is not None)
    return da, db


def _input_grad_native(
    spec: _Spec,
    s: _Saved,
    x: Tensor,
    dy3: Tensor,
    c_grads: dict[str, Tensor],
    s_grads: dict[str, Tensor],
) -> Tensor:
    """dL/dx = outer * (dy * inner + inner avg-pool grads) + outer avg-pool grads in one pass
    (native.gate), then the max pools' grads scattered to their argmax positions."""
    _, c, h, w = spec.shape
    a, b = s.a, s.b
    cd, sd = spec.cdim, spec.sdim  # where per-channel / per-position vectors lie in the view
    c_avg = c_grads["avg"] / (h * w) if "avg" in c_grads else None
    s_avg = s_grads["avg"] / c if "avg" in s_grads else None

    def term(v: Tensor | None, dim: int) -> tuple[Tensor, int] | None:
        return (v, dim) if v is not None else None

    c_scale = s_scale = None  # the outer gate, for the inner max pool's grads
    if spec.order == "channel-first":
        g1, h1, g2, h2 = term(b, sd), term(s_avg, sd), term(a, cd), {cd: c_avg}
        s_scale = a
    elif spec.order == "spatial-first":
        g1, h1, g2, h2 = term(a, cd), term(c_avg, cd), term(b, sd), {sd: s_avg}
        c_scale = b
    else:  # parallel (both pools see x), or a single gate
        g1, h1 = term(a, cd) or term(b, sd), None
        g2 = term(b, sd) if a is not None else None
        h2 = {cd: c_avg} | ({sd: s_avg} if s_avg is not None else {})
    dx = torch.empty_like(x)
    dx3 = _view3(dx, spec.channels_last)
    native.gate(dy3, g1, h1, g2, (h2.get(1), h2.get(2)), out=dx3)

    def scatter(grads, index, dim, scale):
        if "max" not in grads:
            return
        values = grads["max"] if scale is None else grads["max"] * scale.gather(1, index)
        dx3.scatter_add_(dim, index.unsqueeze(dim), values.unsqueeze(dim))

    scatter(c_grads, s.c_index, sd, c_scale)
    scatter(s_grads, s.s_index, cd, s_scale)
    return dx


class _FusedCBAM(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, spec: _Spec, bn: nn.BatchNorm2d | None, x: Tensor, *params: Tensor):
        w0, b0, w1, b1, conv_w, _bn_w, _bn_b = params
        y, saved = _forward(spec, x, (w0, b0, w1, b1), conv_w, bn, build_graph=True)
        ctx.spec, ctx.saved, ctx.params = spec, saved, params
        ctx.save_for_backward(x)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, dy: Tensor):
        spec, s = ctx.spec, ctx.saved
        (x,) = ctx.saved_tensors
        _, c, h, w = spec.shape
        hw = h * w
        fmt = torch.channels_last if spec.channels_last else torch.contiguous_format
        x3 = _view3(x, spec.channels_last)
        dy3 = _view3(dy.contiguous(memory_format=fmt), spec.channels_last)
        cdim, sdim = spec.cdim, spec.sdim
        a, b = s.a, s.b

        # dL/da and dL/db through y = x * a * b.
        if spec.native:
            dx = None  # the kernels form dL/da and dL/db without a scratch product
            da, db = _direct_grads_native(spec, dy3, x3, a, b)
        else:  # p = dy * x is the one scratch buffer, later finished into the input gradient
            dx = torch.empty_like(x)
            p = torch.mul(dy3, x3, out=_view3(dx, spec.channels_last))
            da = _sum_hw(spec, p, b) if a is not None else None
            db = _sum_c(spec, p, a) if b is not None else None
        grads = _gate_grads(spec, s, x3, da, db, ctx.params)
        c_grads, c_dense, c_param_grads, s_grads, s_param_grads = grads

        if not ctx.needs_input_grad[2]:
            dx = None
        elif spec.native:
            dx = _input_grad_native(spec, s, x, dy3, c_grads, s_grads)
        else:
            # dx = outer * (dy * inner + inner pool grads) + outer pool grads, formed in p.
            c_terms = (spec.chan, sdim, s.c_index, c_grads, hw)
            s_terms = (spec.spat, cdim, s.s_index, s_grads, c)
            gate_a = (spec.chan(a), c_terms) if a is not None else None
            gate_b = (spec.spat(b), s_terms) if b is not None else None
            extra = None
            if spec.order == "channel-first":
                inner, outer = gate_b, gate_a
            elif spec.order == "spatial-first":
                inner, outer = gate_a, gate_b
            elif a is not None and b is not None:  # parallel: both pools see x
                inner, outer, extra = (gate_a[0], None), (gate_b[0], c_terms), s_terms
            else:
                inner, outer = gate_a or gate_b, None

            def bias(terms):  # the avg pool's gradient, spread evenly over what it pooled
                broadcast, _, _, grads, size = terms
                return broadcast(grads["avg"] / size) if "avg" in grads else None

            def scatter(t: Tensor, terms) -> None:  # the max pool's, to its argmax
                _, dim, index, grads, _ = terms
                if "max" in grads:
                    t.scatter_add_(dim, index.unsqueeze(dim), grads["max"].unsqueeze(dim))

            scale, terms = inner
            t = p
            avg = bias(terms) if terms is not None else None
            if avg is not None:
                torch.addcmul(avg, dy3, scale, out=t)
            else:
                torch.mul(dy3, scale, out=t)
            if terms is not None:
                scatter(t, terms)
            if outer is not None:
                scale, terms = outer
                avg = bias(terms)
                if avg is not None:
                    torch.addcmul(avg, t, scale, out=t)
                else:
                    t.mul_(scale)
                scatter(t, terms)
            if extra is not None:
                avg = bias(extra)
                if avg is not None:
                    t.add_(avg)
                scatter(t, extra)
            if c_dense[0] is not None:
                t.add_(c_dense[0])

        return (None, None, dx, *c_param_grads, *s_param_grads)

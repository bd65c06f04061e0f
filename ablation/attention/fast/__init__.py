"""CBAM's fast backends: the same equations as `ablation.attention.cbam`, fewer memory passes.

- `fused.py`: one autograd function with a hand-written backward, on stock PyTorch ops
  (backend "fused": CPU and CUDA, every dtype and knob);
- `native.py` + `cbam_kernels.cpp`: compiled CPU kernels for the big passes of the fused
  path (backend "kernels": float32 CPU tensors with avg/max channel pools; elsewhere the
  kernels backend runs the stock-op fused path).

`CBAM.forward` runs the reference composition unless its `backend` chooses one of these
(`train.cbam_backend`). tests/attention/test_fused.py and test_native.py check each against
the reference, forward and gradients, every knob, NCHW and channels_last.
"""

from ablation.attention.fast import native
from ablation.attention.fast.fused import cbam_forward, fused_cbam

__all__ = ["cbam_forward", "fused_cbam", "native"]

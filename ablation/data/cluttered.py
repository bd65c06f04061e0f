"""`cluttered-digits`: scikit-learn's digits scattered on a larger canvas among clutter.

In the spirit of Cluttered MNIST (Mnih et al., "Recurrent Models of Visual Attention", 2014),
built from the 8x8 digits so it needs no download. Each image is made as follows:

1. the digit (one of the 1797, from the train or the val pool of the fixed split) is scaled to
   a random side of `digit_size` x canvas (uniform in the range, default 0.35..0.5 of the
   canvas, i.e. 11..16 px on a 32 px canvas) and placed at a uniformly random position that
   keeps it entirely on the canvas;
2. `fragments` clutter pieces (default 4) are added: each is a random `fragment_size` x
   `fragment_size` window (default 4 x 4 of the 8 x 8 source pixels, i.e. a quarter of a digit)
   cut from another random digit of the same pool, scaled like a digit (its own random scale)
   and placed at a uniformly random position where it lies entirely on the canvas;
3. the layers are combined with a pixel-wise maximum (ink on a black background), in [0, 1].

The label is the digit's. Clutter looks like pieces of digits, so a classifier must find the
whole digit, and *where* it is changes from image to image: spatial attention has something to
find. Scaling and placement use bilinear sampling of all images at once (batched matrix products).

Deterministic: a pure function of (pool images, n, canvas, parameters, generator seed); train
and val images use different seeds derived from the split seed, and val digits are digits the
training images never show.
"""

from __future__ import annotations

import numpy as np
import torch

from ablation.data.digits import load_digit_images, split_digits
from ablation.vocabulary.datasets import ClutterParams

DEFAULT_CLUTTER = ClutterParams()

NUM_CLASSES = 10
DEFAULT_TRAIN_SAMPLES = 4000
DEFAULT_VAL_SAMPLES = 1000
# Share of the 1797 source digits held out for the val images (their digits are never trained on).
VAL_POOL_FRACTION = 0.25


def _place(
    sources: torch.Tensor, left: torch.Tensor, top: torch.Tensor, side: torch.Tensor, canvas: int
) -> torch.Tensor:
    """Draw each (1, 8, 8) source with its top-left corner at (left, top) and `side` px wide.

    Positions are in canvas pixels (floats); returns (B, 1, canvas, canvas). Bilinear sampling
    with zero padding is separable: out = Wy @ source @ Wx^T with tent-shaped weights, which is
    several times faster than `affine_grid` + `grid_sample` for these tiny sources.
    """

    def weights(offset: torch.Tensor) -> torch.Tensor:  # (B, canvas, 8)
        centres = torch.arange(canvas) + 0.5  # output pixel centres, canvas px
        s = (centres[None, :] - offset[:, None]) * (8 / side[:, None])  # in source px
        return (1 - (s[:, :, None] - 0.5 - torch.arange(8)).abs()).clamp_(min=0)

    wy, wx = weights(top), weights(left)
    return (wy @ sources[:, 0] @ wx.transpose(1, 2)).unsqueeze(1)


def generate(
    images: np.ndarray,
    n: int,
    canvas: int,
    *,
    labels: np.ndarray,
    seed: int,
    params: ClutterParams = DEFAULT_CLUTTER,
) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` cluttered images (n, 1, canvas, canvas) in [0, 1] and their labels, from `images`."""
    if canvas < 8:
        raise ValueError("cluttered-digits needs image_size >= 8")
    g = torch.Generator().manual_seed(seed)
    pool = torch.from_numpy(np.ascontiguousarray(images)).unsqueeze(1)  # (P, 1, 8, 8)
    n_pool = len(pool)

    def uniform(*shape: int, low: float | torch.Tensor = 0.0, high: float | torch.Tensor = 1.0):
        return low + (high - low) * torch.rand(*shape, generator=g)

    lo, hi = params.digit_size
    # Cycle through a shuffled pool so every source digit appears about equally often.
    digit_idx = torch.cat([torch.randperm(n_pool, generator=g) for _ in range(-(-n // n_pool))])[:n]
    side = uniform(n, low=lo * canvas, high=hi * canvas)
    left = uniform(n, high=canvas - side)
    top = uniform(n, high=canvas - side)
    out = _place(pool[digit_idx], left, top, side, canvas)

    k, f = params.fragments, params.fragment_size
    if k > 0:
        m = n * k
        # Clutter comes from another digit: never the image's own source.
        other = (
            digit_idx.repeat_interleave(k) + torch.randint(1, n_pool, (m,), generator=g)
        ) % n_pool
        cx = torch.randint(0, 8 - f + 1, (m,), generator=g)
        cy = torch.randint(0, 8 - f + 1, (m,), generator=g)
        cols = torch.arange(8)
        window = ((cols >= cx[:, None]) & (cols < cx[:, None] + f)).float()  # (m, 8) in x
        window_y = ((cols >= cy[:, None]) & (cols < cy[:, None] + f)).float()  # (m, 8) in y
        pieces = pool[other] * (window_y[:, None, :, None] * window[:, None, None, :])
        frag_side = uniform(m, low=lo * canvas, high=hi * canvas)
        px = frag_side / 8  # canvas pixels per source pixel
        vis_left = uniform(m, high=canvas - f * px)
        vis_top = uniform(m, high=canvas - f * px)
        clutter = _place(pieces, vis_left - cx * px, vis_top - cy * px, frag_side, canvas)
        out = torch.maximum(out, clutter.view(n, k, canvas, canvas).amax(dim=1, keepdim=True))
    return out.clamp_(0.0, 1.0).contiguous(), torch.from_numpy(labels)[digit_idx]


def make_cluttered(
    image_size: int,
    train_samples: int | None,
    val_samples: int | None,
    split_seed: int,
    params: ClutterParams = DEFAULT_CLUTTER,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_train, y_train, x_val, y_val) for `cluttered-digits`, images not yet standardised."""
    images, labels = load_digit_images()
    train_pool, val_pool = split_digits(round(VAL_POOL_FRACTION * len(labels)), split_seed)
    # Independent streams for the two halves; both fixed by the split seed alone.
    seeds = np.random.SeedSequence([split_seed, 0xC1077E4]).generate_state(2)
    sizes = (train_samples or DEFAULT_TRAIN_SAMPLES, val_samples or DEFAULT_VAL_SAMPLES)
    (x_train, y_train), (x_val, y_val) = (
        generate(images[pool], n, image_size, labels=labels[pool], seed=int(seed), params=params)
        for pool, n, seed in zip((train_pool, val_pool), sizes, seeds, strict=True)
    )
    return x_train, y_train, x_val, y_val

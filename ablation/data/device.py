"""Device-resident batches: a whole in-memory set held on the trial's device, no DataLoader.

A small model on a GPU is starved by a DataLoader (collation, host-to-device copies, worker
processes); airbench trains CIFAR-10 in seconds by keeping the set on the GPU. `DeviceBatches`
moves the images once, then each epoch indexes whole batches there and augments them with
tensor ops (pad-and-crop, horizontal flip) drawn from a generator on that device.

Same order as the loader path: the batch order is drawn on the CPU from the trial's shuffle
generator exactly as `DataLoader(sampler=BatchSampler(RandomSampler(generator=g)),
generator=g)` draws it (one int64 base seed per epoch, then `randperm`, and one more
`randperm` when the sampler is exhausted), and only the
permutation (8 bytes an image) goes to the device. So for a set without augmentation
(digits, cluttered digits, fake) the batches, and hence the metrics, equal the loader
path's for the same seed (tests/data/test_device.py). With augmentation (CIFAR's arrays)
the crops and flips come from the device generator, not torchvision's per-image RNG: the
same distribution, other draws, so those metrics are not bit-equal to the loader path's.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor


class DeviceBatches:
    """Batches of (images, labels) held on `device`; shuffled when `shuffle_rng` is given.

    `x` float images (N, C, H, W), or uint8 ones with `mean`/`std` (per channel, on the 0..1
    scale) to standardise once on the device. `pad` > 0 turns on the training augmentation:
    a random crop of the image padded by `pad` black pixels, and a horizontal flip with
    probability 1/2, per image (torchvision's RandomCrop(padding=pad) + RandomHorizontalFlip).
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        batch_size: int,
        *,
        device: torch.device | str,
        shuffle_rng: torch.Generator | None,
        drop_last: bool = False,
        pad: int = 0,
        seed: int = 0,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        image_size: int | None = None,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> None:
        self.device = torch.device(device)
        x = x.to(self.device)
        if x.dtype == torch.uint8:
            x = x.float().div_(255)
        fill = torch.zeros(x.shape[1], device=self.device)
        if mean is not None and std is not None:
            m = torch.tensor(mean, device=self.device).view(1, -1, 1, 1)
            s = torch.tensor(std, device=self.device).view(1, -1, 1, 1)
            x = (x - m) / s
            fill = (fill - m.view(-1)) / s.view(-1)  # a black pixel, standardised
        if image_size is not None and image_size != x.shape[-1]:
            x = torch.nn.functional.interpolate(
                x, size=(image_size, image_size), mode="bilinear", antialias=True
            )
        self.size = x.shape[-1]
        self.pad = pad
        if pad:
            # Pad once, crop per batch: no per-step padding of the batch.
            padded = fill.view(1, -1, 1, 1).expand(
                x.shape[0], x.shape[1], x.shape[2] + 2 * pad, x.shape[3] + 2 * pad
            )
            padded = padded.clone()
            padded[:, :, pad:-pad, pad:-pad] = x
            x = padded
        self.x = x.contiguous(memory_format=memory_format)
        self.y = y.to(self.device)
        self.batch_size, self.drop_last = batch_size, drop_last
        self.shuffle_rng = shuffle_rng
        self.memory_format = memory_format
        self.augment_rng = torch.Generator(device=self.device).manual_seed(seed) if pad else None

    def __len__(self) -> int:
        n = len(self.y)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def order(self) -> Tensor:
        """This epoch's image order on the device, drawn as the DataLoader path draws it."""
        n = len(self.y)
        if self.shuffle_rng is None:
            # An unshuffled DataLoader still draws its base seed from torch's global RNG:
            # draw it too, so the RNG state (and a resumed run) stays the loader path's.
            torch.empty((), dtype=torch.int64).random_()
            return torch.arange(n, device=self.device)
        torch.empty((), dtype=torch.int64).random_(generator=self.shuffle_rng)
        return torch.randperm(n, generator=self.shuffle_rng).to(self.device)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        order = self.order()
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            images = self.x[idx] if not self.pad else self._augment(idx)
            yield images, self.y[idx]
        if self.shuffle_rng is not None:
            # RandomSampler, once exhausted, draws one more (empty) permutation: draw it too.
            torch.randperm(len(self.y), generator=self.shuffle_rng)

    def _augment(self, idx: Tensor) -> Tensor:
        b, size, g = len(idx), self.size, self.augment_rng
        shift = torch.randint(0, 2 * self.pad + 1, (2, b), device=self.device, generator=g)
        flip = torch.rand(b, device=self.device, generator=g) < 0.5
        steps = torch.arange(size, device=self.device)
        rows = (shift[0][:, None] + steps)[:, None, :, None]  # (B, 1, S, 1)
        cols = shift[1][:, None] + steps  # (B, S)
        cols = torch.where(flip[:, None], cols.flip(1), cols)[:, None, None, :]  # (B, 1, 1, S)
        channels = torch.arange(self.x.shape[1], device=self.device)[None, :, None, None]
        out = self.x[idx[:, None, None, None], channels, rows, cols]
        return out.contiguous(memory_format=self.memory_format)

    def rng_state(self) -> Tensor | None:
        return self.augment_rng.get_state() if self.augment_rng is not None else None

    def set_rng_state(self, state: Tensor | None) -> None:
        if self.augment_rng is not None and state is not None:
            self.augment_rng.set_state(state)

"""A data set of "your own": noisy stripes, horizontal or vertical, whose class is their angle.

Called by the service as `stripes(**dataset.args)`; returns the train and validation sets
(torch Datasets of (image, label)) and the number of classes. Channels and image size are read
off the first training image.
"""

import torch
from torch.utils.data import TensorDataset


def stripes(
    train_samples: int = 512,
    val_samples: int = 256,
    size: int = 16,
    noise: float = 1.0,
    seed: int = 0,
) -> dict:
    g = torch.Generator().manual_seed(seed)

    def make(n: int) -> TensorDataset:
        labels = torch.randint(0, 2, (n,), generator=g)
        phase = torch.randint(0, 4, (n, 1), generator=g)
        wave = ((torch.arange(size) + phase) % 4 < 2).float()  # n x size
        images = torch.where(
            labels[:, None, None].bool(),
            wave[:, :, None].expand(-1, -1, size),
            wave[:, None, :].expand(-1, size, -1),
        )
        images = images[:, None] + noise * torch.randn(n, 1, size, size, generator=g)
        return TensorDataset(images, labels)

    return {"train": make(train_samples), "val": make(val_samples), "num_classes": 2}

"""A loader that keeps a whole data set on the device and augments whole batches.

After airbench's CIFAR loader: the images live on the device as one uint8
tensor, an epoch is a seeded permutation, a batch is a slice of it, and
augmentation is a batch operation (:func:`random_crop_flip`). Each epoch's
permutation and augmentation come from a generator seeded by ``(seed,
epoch)``, so a run resumed at epoch ``e`` sees exactly the batches an
uninterrupted run would. :func:`for_recipe` makes the training loader a
recipe names (its batch size and augmentation); the chapters on training use
it through :func:`resnet_lab.runs.train_all`.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F

from . import device as dev
from .data import ImageSet
from .recipes import Recipe

__all__ = ["DeviceLoader", "for_recipe", "for_testing", "random_crop_flip", "AUGMENTATIONS"]

#: Batch augmentations: horizontal flips, or the paper's pad-4 + 32x32 crop + flip.
AUGMENTATIONS = (None, "flip", "crop_flip")


def random_crop_flip(x: torch.Tensor, pad: int, generator: torch.Generator, crop: bool = True) -> torch.Tensor:
    """Pad a batch (N, C, H, W) by ``pad`` zeros, take a random HxW crop per image, flip half of them.

    He et al. 2015, section 4.2: "4 pixels are padded on each side, and a
    32x32 crop is randomly sampled from the padded image or its horizontal
    flip". One gather does every crop at once. With ``crop=False`` only flips.
    """
    n, c, h, w = x.shape
    if crop:
        padded = F.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
        dx = torch.randint(0, 2 * pad + 1, (n,), generator=generator).to(x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chan = torch.arange(c, device=x.device)[None, :, None, None]
        x = padded[batch, chan, rows, cols]
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)[:, None, None, None]
    return torch.where(flip, x.flip(3), x)


class DeviceLoader:
    """Batches of a whole :class:`ImageSet` kept as tensors on one device.

    Batches come out as float, normalised with the set's mean and std, or with
    ``normalize=False`` only scaled to [0, 1] (what ``transforms.ToTensor``
    gives, as in D2L). ``augment`` is one of :data:`AUGMENTATIONS`.
    """

    def __init__(
        self,
        data: ImageSet,
        batch_size: int = 128,
        *,
        shuffle: bool | None = None,
        augment: str | None = None,
        normalize: bool = True,
        device: str | torch.device = "auto",
        seed: int = 0,
        drop_last: bool = False,
        channels_last: bool = True,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}")
        self.data = data
        self.device = dev.resolve(device)
        self.batch_size = batch_size
        self.shuffle = data.train if shuffle is None else shuffle
        self.augment = augment
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0
        # channels_last: measured ~20% faster for ResNet-20 training on 2 CPU
        # cores, and what cuDNN's tensor-core kernels want on a GPU.
        self.channels_last = channels_last
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)
        shape = (1, -1, 1, 1)
        self._mean = torch.tensor(data.mean, device=self.device).view(shape) * 255 if normalize else None
        self._std = torch.tensor(data.std, device=self.device).view(shape) * 255 if normalize else None

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_images(self) -> int:
        return len(self.labels)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose permutation and augmentation come next."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        n = len(self.labels)
        order = (torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)).to(self.device)
        self.epoch += 1
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            x = self.images[idx]
            if self.augment:
                x = random_crop_flip(x, 4, g, crop=self.augment == "crop_flip")
            x = x.float()
            x = (x - self._mean) / self._std if self._mean is not None else x / 255
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[idx]

    def __repr__(self) -> str:
        return (
            f"DeviceLoader({self.data.describe()}; batch {self.batch_size}, {len(self)} batches, "
            f"augment={self.augment}, device={self.device})"
        )


def for_recipe(recipe: Recipe, data: ImageSet, *, device: str | torch.device = "auto", seed: int = 0,
               normalize: bool = True) -> DeviceLoader:  # fmt: skip
    """The training loader ``recipe`` names: its batch size and augmentation, shuffled by ``seed``."""
    return DeviceLoader(data, recipe.batch_size, augment=recipe.augment, normalize=normalize, device=device,
                        seed=seed)  # fmt: skip


def for_testing(data: ImageSet, *, device: str | torch.device = "auto", normalize: bool = True,
                batch_size: int = 500) -> DeviceLoader:  # fmt: skip
    """A loader for evaluation: in order, no augmentation."""
    return DeviceLoader(data, batch_size, normalize=normalize, device=device)

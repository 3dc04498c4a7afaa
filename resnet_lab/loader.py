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
from . import distributed
from .data import ImageSet
from .recipes import Recipe

__all__ = ["DeviceLoader", "for_recipe", "for_testing", "random_crop_flip", "AUGMENTATIONS"]

#: Batch augmentations: horizontal flips, or the paper's pad-4 + 32x32 crop + flip.
AUGMENTATIONS = (None, "flip", "crop_flip")


def random_crop_flip(x: torch.Tensor, pad: int, generator: torch.Generator, crop: bool = True,
                     share: tuple[int, int] = (0, 1)) -> torch.Tensor:  # fmt: skip
    """Pad a batch (N, C, H, W) by ``pad`` zeros, take a random HxW crop per image, flip half of them.

    He et al. 2015, section 4.2: "4 pixels are padded on each side, and a
    32x32 crop is randomly sampled from the padded image or its horizontal
    flip". One gather does every crop at once. With ``crop=False`` only flips.
    ``share=(rank, world)``: ``x`` is rows ``rank::world`` of a batch of
    ``N * world`` images; the draws are made for the whole batch and this
    share's are used, so every image is augmented as in one process.
    """
    n, c, h, w = x.shape
    rank, world = share
    mine = slice(rank, None, world)
    if crop:
        padded = F.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n * world,), generator=generator)[mine].to(x.device)
        dx = torch.randint(0, 2 * pad + 1, (n * world,), generator=generator)[mine].to(x.device)
        rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
        cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
        batch = torch.arange(n, device=x.device)[:, None, None, None]
        chan = torch.arange(c, device=x.device)[None, :, None, None]
        x = padded[batch, chan, rows, cols]
    flip = (torch.rand(n * world, generator=generator) < 0.5)[mine].to(x.device)[:, None, None, None]
    return torch.where(flip, x.flip(3), x)


class DeviceLoader:
    """Batches of a whole :class:`ImageSet` kept as tensors on one device.

    Batches come out as float, normalised with the set's mean and std, or with
    ``normalize=False`` only scaled to [0, 1] (what ``transforms.ToTensor``
    gives, as in D2L). ``augment`` is one of :data:`AUGMENTATIONS`.

    ``shard=(rank, world)``: this process is rank ``rank`` of ``world``
    (chapter "Training on many devices"). ``batch_size`` stays the combined
    batch; each rank gets ``batch_size / world`` images of it, rows
    ``rank::world`` of the batch one process would take, which is the
    ``DistributedSampler`` contract (:func:`resnet_lab.distributed.shard_indices`):
    training loaders pad the epoch's order to a multiple of ``world``
    (:attr:`padding` images come twice) so every rank takes as many steps;
    with ``pad=False`` (evaluation) the shards are left uneven and every
    image comes exactly once, in batches of ``batch_size`` per rank. A
    training loader's ``len()`` is the same on every rank.
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
        shard: tuple[int, int] | None = None,
        pad: bool | None = None,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {augment!r}")
        rank, world = shard or (0, 1)
        if not (isinstance(world, int) and world >= 1 and isinstance(rank, int) and 0 <= rank < world):
            raise ValueError(f"shard must be (rank, world) with 0 <= rank < world, got {shard!r}")
        self.shuffle = data.train if shuffle is None else shuffle
        self.pad = self.shuffle if pad is None else pad
        if world > 1 and self.pad and batch_size % world:
            raise ValueError(f"a batch of {batch_size} does not split evenly over {world} ranks; use a batch size "
                             f"divisible by {world} (recipe.with_batch_size(...)), or another number of processes")
        self.rank, self.world_size = rank, world
        self.data = data
        self.device = dev.resolve(device)
        self.batch_size = batch_size
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
        if not self.pad:
            n = len(self._mine(torch.arange(len(self.labels))))
        else:
            n = len(self.labels) + self.padding
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_images(self) -> int:
        """Images in the whole data set (every rank's share together)."""
        return len(self.labels)

    @property
    def padding(self) -> int:
        """Images a training epoch repeats so that every rank gets as many (0 in one process)."""
        return distributed.padding(len(self.labels), self.world_size) if self.pad else 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose permutation and augmentation come next."""
        self.epoch = epoch

    def _mine(self, order: torch.Tensor) -> torch.Tensor:
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(len(self.labels), generator=g) if self.shuffle else torch.arange(len(self.labels))
        self.epoch += 1
        if self.pad:  # batches of the combined order, each split over the ranks
            order = distributed.pad_order(order, self.world_size)
            batches = [order[b * self.batch_size : (b + 1) * self.batch_size] for b in range(len(self))]
            batches = [self._mine(idx) for idx in batches]
        else:  # this rank's every world-th image, in batches of its own
            mine = self._mine(order)
            batches = [mine[b * self.batch_size : (b + 1) * self.batch_size] for b in range(len(self))]
        share = (self.rank, self.world_size) if self.pad else (0, 1)
        for idx in batches:
            idx = idx.to(self.device)
            x = self.images[idx]
            if self.augment:
                x = random_crop_flip(x, 4, g, crop=self.augment == "crop_flip", share=share)
            x = x.float()
            x = (x - self._mean) / self._std if self._mean is not None else x / 255
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[idx]

    def __repr__(self) -> str:
        share = ""
        if self.world_size > 1:
            share = f"; rank {self.rank} of {self.world_size}"
            if self.pad:
                share += (f": {self.batch_size // self.world_size} images of each combined batch, "
                          f"padding {self.padding}")
        return (f"DeviceLoader({self.data.describe()}; batch {self.batch_size}, {len(self)} batches, "
                f"augment={self.augment}, device={self.device}{share})")


def for_recipe(recipe: Recipe, data: ImageSet, *, device: str | torch.device = "auto", seed: int = 0,
               normalize: bool = True, shard: tuple[int, int] | None = None) -> DeviceLoader:  # fmt: skip
    """The training loader ``recipe`` names: its batch size and augmentation, shuffled by ``seed``; in a
    process group, this rank's share of every batch (``shard``, default :func:`resnet_lab.distributed.share`)."""
    return DeviceLoader(data, recipe.batch_size, augment=recipe.augment, normalize=normalize, device=device,
                        seed=seed, shard=shard or distributed.share())  # fmt: skip


def for_testing(data: ImageSet, *, device: str | torch.device = "auto", normalize: bool = True,
                batch_size: int = 500, shard: tuple[int, int] | None = None) -> DeviceLoader:  # fmt: skip
    """A loader for evaluation: in order, no augmentation, every image once; in a process group, this
    rank's share (``shard``, default :func:`resnet_lab.distributed.share`; :func:`resnet_lab.train.evaluate`
    sums the counts over the ranks)."""
    return DeviceLoader(data, batch_size, normalize=normalize, device=device, shard=shard or distributed.share())

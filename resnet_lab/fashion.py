"""Fashion-MNIST recipes: D2L's, the same through our trainer, and the laptop recipe.

Shared by the chapter "Training on Fashion-MNIST" and the scripts in
``benchmarks/``, so the book and the benchmarks measure the same thing.

* :func:`run_d2l_recipe`: D2L's pipeline as D2L teaches it
  (``d2l.load_data_fashion_mnist(256, resize=96)``, its ResNet-18,
  ``d2l.train_ch6`` with lr 0.05), limited to a number of steps.
* :func:`run_our_trainer_same_recipe`: the same model, data size, batch
  size, steps and plain SGD at lr 0.05, through :class:`DeviceLoader` + ``fit``.
* :func:`train_laptop_recipe`: the profile's model and schedule (the `cpu`
  profile's reaches 93% in under 10 minutes on two cores).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import time
from dataclasses import dataclass

import torch
from torch import nn

from . import models as M
from .data import DeviceLoader, ImageSet, load_fashion_mnist, prepare_fashion_mnist, resolve_device
from .profiles import FASHION_AUGMENT, FASHION_RECIPE, Profile
from .train import History, fit

__all__ = ["FirstBatches", "RecipeRun", "run_d2l_recipe", "run_our_trainer_same_recipe", "train_laptop_recipe"]


class FirstBatches:
    """The first ``n`` batches of a loader, with a matching ``len()`` (``train_ch6`` reads it)."""

    def __init__(self, loader, n: int) -> None:
        self.loader, self.n = loader, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return itertools.islice(iter(self.loader), self.n)


@dataclass
class RecipeRun:
    """One timed training run: what it reached and how fast."""

    name: str
    model: nn.Module
    images: int
    seconds: float
    test_accuracy: float
    test_images: int
    log: str = ""

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds


def _recipe_sizes(profile: Profile, batch: int | None) -> tuple[int, int, int]:
    """Batch size, training steps and test batches of the D2L recipe, the same for both runners.

    Sizes are rounded down to whole batches, at least 5: ``d2l.train_ch6``
    divides by (batches // 5).
    """
    batch = batch or profile.d2l_batch
    steps = max(5, (profile.d2l_train or 60_000) // batch)
    test_steps = max(5, (profile.d2l_test or 10_000) // batch)
    return batch, steps, test_steps


def run_d2l_recipe(profile: Profile, device: str | torch.device = "auto", batch: int | None = None,
                   data_root: str = "../data") -> RecipeRun:  # fmt: skip
    """D2L's recipe, for ``profile.d2l_train`` images' worth of steps per epoch.

    Needs ``d2l`` (``pip install --no-deps d2l==1.0.3``). Data comes from
    ``data_root`` (D2L reads ``../data``), prepared offline where possible.
    """
    import d2l.torch as d2l

    device = resolve_device(device)
    batch, steps, test_steps = _recipe_sizes(profile, batch)
    prepare_fashion_mnist(data_root, download=True)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    train_iter, test_iter = d2l.load_data_fashion_mnist(batch, resize=profile.d2l_resize)
    net = M.d2l_resnet18()
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        d2l.train_ch6(net, FirstBatches(train_iter, steps), FirstBatches(test_iter, test_steps), profile.d2l_epochs,
                      0.05, device)  # fmt: skip
    seconds = time.perf_counter() - t0
    accuracy = d2l.evaluate_accuracy_gpu(net, FirstBatches(test_iter, test_steps))
    return RecipeRun("d2l.train_ch6", net, steps * batch * profile.d2l_epochs, seconds, accuracy,
                     test_steps * batch, log.getvalue())  # fmt: skip


def run_our_trainer_same_recipe(profile: Profile, device: str | torch.device = "auto", batch: int | None = None,
                                progress: bool = False) -> RecipeRun:  # fmt: skip
    """The same model, data size, batches and SGD (lr 0.05, no momentum) through ``fit``."""
    batch, steps, test_steps = _recipe_sizes(profile, batch)
    torch.manual_seed(0)
    t0 = time.perf_counter()
    train = load_fashion_mnist(True, subset=steps * batch, resize=profile.d2l_resize)
    test = load_fashion_mnist(False, subset=test_steps * batch, resize=profile.d2l_resize)
    train_loader = DeviceLoader(train, batch, device=device, normalize=False, drop_last=True)
    test_loader = DeviceLoader(test, batch, device=device, normalize=False)
    net = M.d2l_resnet18()
    history = fit(net, train_loader, test_loader, epochs=profile.d2l_epochs, lr=0.05, momentum=0.0,
                  weight_decay=0.0, schedule="constant", device=device, progress=progress)  # fmt: skip
    seconds = time.perf_counter() - t0
    return RecipeRun("resnet_lab.fit", net, steps * batch * profile.d2l_epochs, seconds,
                     1 - history.final.test_error, len(test))  # fmt: skip


def train_laptop_recipe(profile: Profile, device: str | torch.device = "auto", progress: bool = True,
                        checkpoint: str | None = None, epochs: int | None = None,
                        ) -> tuple[nn.Module, History, float, ImageSet, ImageSet]:  # fmt: skip
    """The profile's Fashion-MNIST model and schedule; returns model, history, wall seconds, data sets.

    Wall time covers everything from reading the data to the last evaluation.
    """
    t0 = time.perf_counter()
    train = load_fashion_mnist(True, subset=profile.fashion_train)
    test = load_fashion_mnist(False, subset=profile.fashion_test)
    train_loader = DeviceLoader(train, profile.batch_size, augment=FASHION_AUGMENT, device=device, seed=0)
    test_loader = DeviceLoader(test, 1000, device=device)
    torch.manual_seed(0)
    model = M.cifar_model(profile.fashion_model, in_channels=1)
    history = fit(model, train_loader, test_loader, epochs=epochs or profile.fashion_epochs, lr=profile.fashion_lr,
                  device=device, progress=progress, checkpoint=checkpoint, **FASHION_RECIPE)  # fmt: skip
    return model, history, time.perf_counter() - t0, train, test

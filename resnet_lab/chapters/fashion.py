"""Chapter "Training on Fashion-MNIST": D2L's recipe two ways, then the laptop recipe.

:func:`laptop_networks` builds the network of the laptop recipe from the
chapter's sizes, :func:`same_start` the D2L pair; :func:`plan` enumerates
both for the chapter box.

D2L's ResNet-18 recipe runs two ways: by D2L's own pipeline, and by ours on the same images.

D2L 1.0, section 8.6 (Zhang et al. 2023), trains its ResNet-18 on
Fashion-MNIST resized to 96x96 with ``d2l.FashionMNIST(batch_size=128,
resize=(96, 96))``, ``ResNet18(lr=0.01)`` initialised by ``d2l.init_cnn``
and ``d2l.Trainer(max_epochs=10)``: plain SGD at 0.01 (:data:`resnet_lab.recipes.D2L`).
:func:`run_d2l` does exactly that with our :func:`~resnet_lab.models.d2l_resnet18`
(parameter for parameter D2L's network) on a chosen subset;
:func:`run_ours` trains the same network, from the same initial weights, on
the same images, with the same recipe, through :func:`resnet_lab.runs.train_all`.
Both are timed the same way: wall time from reading the data to the last
test pass. Used by the chapter "Training on Fashion-MNIST" and
``benchmarks/trainer_speed.py``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import torch
from torch import nn

from .. import device as dev
from .. import models as M
from .. import sizes as S
from ..data import balanced_indices, load_fashion_mnist, prepare_fashion_mnist
from ..history import RunKey
from ..loader import for_testing
from ..recipes import D2L
from ..runs import train_all
from ..sizes import PlannedRun, input_shape, split_size
from ..train import evaluate

__all__ = [
    "Sizes", "SIZES", "laptop_networks", "plan", "PipelineRun", "initial_network", "same_start", "run_d2l",
    "run_ours"
]  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Sizes:
    """D2L's recipe on ``d2l_train`` images for ``d2l_epochs`` (both pipelines), one epoch timed part by
    part on ``timing_images``, then the laptop recipe with ResNet-``depth`` for ``epochs``."""

    d2l_train: int | None = S.images()
    d2l_test: int | None = S.images()
    d2l_epochs: int = S.epochs()
    timing_images: int = S.images()
    depth: int = S.fixed()
    train: int | None = S.images()
    test: int | None = S.images()
    epochs: int = S.epochs()


SIZES = {
    "smoke": Sizes(d2l_train=256, d2l_test=128, d2l_epochs=1, timing_images=64, depth=8, train=512, test=256,
                   epochs=1),
    "cpu": Sizes(d2l_train=2_560, d2l_test=1_024, d2l_epochs=1, timing_images=512, depth=14, train=None, test=None,
                 epochs=4),
    "gpu": Sizes(d2l_train=None, d2l_test=None, d2l_epochs=10, timing_images=4_096, depth=20, train=None, test=None,
                 epochs=15),
    "paper": Sizes(d2l_train=None, d2l_test=None, d2l_epochs=10, timing_images=4_096, depth=20, train=None,
                   test=None, epochs=30),
}  # fmt: skip


def laptop_networks(sizes: Sizes) -> dict[RunKey, nn.Module]:
    """The network of the laptop recipe: the paper's CIFAR
    ResNet-``depth`` on one channel."""
    d = sizes.depth
    return {RunKey("ResNet", d): M.cifar_resnet(d, in_channels=1)}


def plan(sizes: Sizes) -> list[PlannedRun]:
    """D2L's ResNet-18 at 96x96 through both pipelines (:func:`same_start`), the timed epoch (tested
    once), then :func:`laptop_networks` (tested every epoch and once more by the chapter)."""
    d2l_train = split_size(sizes.d2l_train, "fashion_mnist", True)
    d2l_test = split_size(sizes.d2l_test, "fashion_mnist", False)
    theirs, ours = same_start()
    d2l_shape = (1, D2L.resize, D2L.resize)
    runs = [PlannedRun(f"D2L ResNet-18 ({who})", net, d2l_shape, d2l_train * sizes.d2l_epochs,
                       d2l_test * sizes.d2l_epochs, runner="other")
            for who, net in (("d2l", theirs), ("ours", ours))]  # fmt: skip
    runs.append(PlannedRun("D2L ResNet-18 (timed epoch)", theirs, d2l_shape, sizes.timing_images, d2l_test,
                           runner="other"))
    train, test = split_size(sizes.train, "fashion_mnist", True), split_size(sizes.test, "fashion_mnist", False)
    runs += [PlannedRun(str(key), net, input_shape("fashion_mnist"), train * sizes.epochs, test * (sizes.epochs + 1))
             for key, net in laptop_networks(sizes).items()]  # fmt: skip
    return runs


@dataclass
class PipelineRun:
    """One timed run of a pipeline: images trained on, wall seconds, test accuracy."""

    name: str
    model: nn.Module
    images: int
    seconds: float
    test_accuracy: float
    test_images: int

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds


def initial_network(seed: int = 0) -> nn.Module:
    """D2L's ResNet-18 with D2L's initialisation (``d2l.init_cnn``: Xavier-uniform conv and linear weights)."""
    torch.manual_seed(seed)
    net = M.d2l_resnet18()
    for m in net.modules():
        if type(m) in (nn.Linear, nn.Conv2d):
            nn.init.xavier_uniform_(m.weight)
    return net


def _subset(dataset, size: int | None):
    if size is None:
        return dataset
    return torch.utils.data.Subset(dataset, balanced_indices(dataset.targets, size, 10).tolist())


def run_d2l(net: nn.Module, train_images: int | None, test_images: int | None, epochs: int, device="auto",
            plot: bool = True, data_root: str = "../data") -> PipelineRun:  # fmt: skip
    """D2L's pipeline: ``d2l.FashionMNIST`` + a ``d2l.Classifier`` + ``d2l.Trainer`` (needs
    ``pip install --no-deps d2l==1.0.3``). Trains ``net`` in place; ``plot`` shows D2L's own board."""
    import d2l.torch as d2l

    class D2LResNet18(d2l.Classifier):
        def __init__(self, net: nn.Module, lr: float) -> None:
            super().__init__()
            self.lr, self.net = lr, net

    device = dev.resolve(device)
    prepare_fashion_mnist(data_root, download=True)
    t0 = time.perf_counter()
    data = d2l.FashionMNIST(batch_size=D2L.batch_size, resize=(D2L.resize, D2L.resize))  # reads ../data
    data.train, data.val = _subset(data.train, train_images), _subset(data.val, test_images)
    model = D2LResNet18(net, D2L.lr)
    model.board.display = plot
    trainer = d2l.Trainer(max_epochs=epochs, num_gpus=1 if device.type == "cuda" else 0)
    trainer.fit(model, data)
    seconds = time.perf_counter() - t0
    test = load_fashion_mnist(False, subset=test_images, resize=D2L.resize)
    _, error = evaluate(net, for_testing(test, normalize=False, device=device), device)
    return PipelineRun("D2L's pipeline (d2l.Trainer)", net, len(data.train) * epochs, seconds, 1 - error, len(test))


def run_ours(net: nn.Module, train_images: int | None, test_images: int | None, epochs: int,
             device="auto") -> PipelineRun:  # fmt: skip
    """The same network, images and recipe through ``load_fashion_mnist`` + ``train_all`` (no checkpoints)."""
    t0 = time.perf_counter()
    train = load_fashion_mnist(True, subset=train_images, resize=D2L.resize)
    test = load_fashion_mnist(False, subset=test_images, resize=D2L.resize)
    histories = train_all(D2L, {"resnet_lab": net}, train, test, epochs, device=device, normalize=False, runs=False,
                          probe_steps=0, say=lambda line: None)  # fmt: skip
    seconds = time.perf_counter() - t0
    h = histories["resnet_lab"]
    return PipelineRun("resnet_lab (train_all)", net, len(train) * epochs, seconds, 1 - h.final.test_error, len(test))


def same_start(seed: int = 0) -> tuple[nn.Module, nn.Module]:
    """Two copies of the same initial network, one for each pipeline."""
    net = initial_network(seed)
    return net, copy.deepcopy(net)

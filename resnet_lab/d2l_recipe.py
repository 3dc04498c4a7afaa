"""D2L's ResNet-18 recipe run two ways: by D2L's own pipeline, and by ours on the same images.

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

from . import models as M
from .data import balanced_indices, load_fashion_mnist, prepare_fashion_mnist
from .loader import DeviceLoader, resolve_device
from .recipes import D2L
from .runs import train_all
from .train import evaluate

__all__ = ["PipelineRun", "initial_network", "same_start", "run_d2l", "run_ours"]


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

    device = resolve_device(device)
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
    _, error = evaluate(net, DeviceLoader(test, 500, normalize=False, device=device), device)
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

"""Training recipes as data: how a network is trained, apart from how long and on what.

A :class:`Recipe` names the optimiser and its settings, the learning-rate
schedule, the warm-up, label smoothing, the augmentation and the batch size.
Profiles (:mod:`resnet_lab.profiles`) say how much data and how many epochs;
recipes say everything else. The book's recipes are the named instances
below, each with its source.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

__all__ = [
    "Recipe", "PAPER", "SHORT", "LAPTOP", "D2L", "TRANSFER", "FINE_TUNE", "RECIPES", "SCHEDULES", "SHORT_TUNING",
    "TUNING_COMMAND", "tuning_record", "best_on_validation",
]  # fmt: skip

SCHEDULES = ("step", "onecycle", "cosine", "constant")

#: Where ``benchmarks/tune_recipes.py`` records how :data:`SHORT`'s learning rate and weight decay were
#: chosen: the grid, each candidate's validation accuracy, the choice, the data, the command, device
#: and date. Shipped with the package, so the chapter can show it on Colab too.
SHORT_TUNING = Path(__file__).with_name("tuning_short.json")

#: The command that writes :data:`SHORT_TUNING` (from the repository root, offline CIFAR-10 subset).
TUNING_COMMAND = ("RESNET_LAB_DATA=../shared/data/cifar10-subset .venv/bin/python benchmarks/tune_recipes.py")


@dataclass(frozen=True)
class Recipe:
    """How to train: SGD settings, schedule, warm-up, label smoothing, augmentation, batch size.

    ``warmup_epochs`` ramps the rate linearly from ~0 over that many epochs
    (step and cosine schedules; one-cycle has its own ramp).
    ``backbone_lr_scale`` multiplies the rate of every parameter outside the
    classifier head ``fc`` (fine-tuning a pretrained network). ``resize``
    is the input size the recipe trains at (None: the data's own).
    """

    name: str
    lr: float
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: str = "step"
    warmup_epochs: float = 0.0
    label_smoothing: float = 0.0
    augment: str | None = None
    batch_size: int = 128
    backbone_lr_scale: float = 1.0
    resize: int | None = None
    source: str = ""

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not (self.lr > 0 and self.batch_size >= 1 and 0 <= self.momentum < 1 and self.warmup_epochs >= 0):
            raise ValueError(f"recipe {self.name!r} has an invalid setting: {self}")

    def replace(self, **changes) -> Recipe:
        """A copy with some settings changed (the name says so unless given)."""
        changes.setdefault("name", f"{self.name} (modified)")
        return replace(self, **changes)

    def with_batch_size(self, batch_size: int) -> Recipe:
        """The recipe at another batch size, with the learning rate scaled in proportion.

        Goyal et al. (2017, section 2.1), the linear scaling rule: when the
        batch is k times larger (or smaller), multiply the learning rate by k,
        so that an epoch moves the weights about as far. Chapter "The
        degradation experiment" runs the paper's recipe at batch 32 this way.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        if batch_size == self.batch_size:
            return self
        lr = self.lr * batch_size / self.batch_size
        return self.replace(batch_size=batch_size, lr=lr, name=f"{self.name}, batch {batch_size}, lr {lr:g}")

    def as_dict(self) -> dict:
        return asdict(self)


#: He et al. (2015), section 4.2, CIFAR-10: SGD with momentum 0.9, weight
#: decay 1e-4, batch 128, lr 0.1 divided by 10 at 32k and 48k of 64k
#: iterations (50% and 75%), 4-pixel pad + 32x32 crop + flip. The warm-up is
#: the book's choice, not the paper's: the paper warms up only ResNet-110, at
#: a constant 0.01 until training error is below 80% (about 400 iterations),
#: then returns to 0.1; the book ramps linearly over the first epoch for every
#: net, as a precaution for the deep plain nets (the book does not show that
#: they need it). Weight decay applies to conv and linear weights only, not to
#: BN parameters and biases (resnet_lab.train.param_groups); the paper names
#: no exception.
PAPER = Recipe("the paper's (He et al. 2015, 4.2)", lr=0.1, momentum=0.9, weight_decay=1e-4, schedule="step",
               warmup_epochs=1.0, augment="crop_flip", batch_size=128,
               source="He et al. (2015), section 4.2")  # fmt: skip

#: For short runs of the same CIFAR networks: one learning-rate cycle
#: (Smith & Topin 2019), Nesterov momentum 0.9, the paper's augmentation,
#: batch 128; these are fixed, not tuned. The peak learning rate and the
#: weight decay were chosen on a validation split: ``benchmarks/tune_recipes.py``
#: holds 1,000 images (100 per class) out of the 5,000-image CIFAR-10
#: training subset, trains a small network on the other 4,000 with every
#: candidate of a small grid, and keeps the highest validation accuracy. The
#: test set plays no part; the grid, the accuracies and the choice are in
#: :data:`SHORT_TUNING` (a test checks that the values here are its choice).
#: The ``gpu`` profile uses the same values on the full data set, where they
#: were not tuned. The grid brackets the values an earlier version of the book
#: used (lr 0.2, weight decay 5e-4), which were set with that chapter's test
#: curves in view; the choice, lr 0.4, lies at the grid's edge, 1.7 points
#: above the runner-up on 1,000 validation images (one standard error of
#: such a difference is about 2.1 points): the grid picks it, not clearly.
SHORT = Recipe("one-cycle (short runs)", lr=0.4, momentum=0.9, nesterov=True, weight_decay=5e-4,
               schedule="onecycle", augment="crop_flip", batch_size=128,
               source="one-cycle schedule of Smith & Topin (2019); lr and weight decay chosen on a validation "
                      "split of the CIFAR-10 training subset (benchmarks/tune_recipes.py)")  # fmt: skip

#: The book's Fashion-MNIST recipe for two CPU cores ("the laptop recipe"):
#: one-cycle, Nesterov, weight decay 5e-4, label smoothing 0.1 (Szegedy et
#: al. 2016), horizontal flips (chapter "Training on Fashion-MNIST"). Its
#: settings are common values for small ResNets (the paper's learning rate
#: 0.1; the weight decay and label smoothing widely used), not tuned on held-out
#: data: the repository holds no record of a search, and a validation grid at
#: the ``cpu`` profile's size (ResNet-14, 4 epochs of Fashion-MNIST) would cost
#: about 6 planned minutes per candidate on two cores (resnet_lab.profiles).
LAPTOP = Recipe("laptop (Fashion-MNIST)", lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
                schedule="onecycle", label_smoothing=0.1, augment="flip", batch_size=128,
                source="this book, chapter 'Training on Fashion-MNIST'")  # fmt: skip

#: D2L 1.0, section 8.6 (Zhang et al. 2023): ``ResNet18(lr=0.01)``,
#: ``d2l.Trainer(max_epochs=10)``, ``d2l.FashionMNIST(batch_size=128,
#: resize=(96, 96))``: plain SGD (no momentum, no weight decay) at a constant 0.01.
D2L = Recipe("D2L 1.0 (section 8.6)", lr=0.01, momentum=0.0, weight_decay=0.0, schedule="constant",
             batch_size=128, resize=96,
             source="Zhang et al. (2023), Dive into Deep Learning 1.0, section 8.6")  # fmt: skip

#: Training a network on a small new task (from scratch, or a linear probe
#: on frozen features): SGD with Nesterov momentum, a cosine schedule,
#: flips, batches of 64 (chapter "Transfer learning").
TRANSFER = Recipe("transfer", lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4, schedule="cosine",
                  augment="flip", batch_size=64, source="this book, chapter 'Transfer learning'")  # fmt: skip

#: Fine-tuning a pretrained network: the same, with the backbone at a tenth
#: of the head's rate, so that the new head learns faster than the features move.
FINE_TUNE = TRANSFER.replace(name="fine-tune", backbone_lr_scale=0.1)

RECIPES: dict[str, Recipe] = {"paper": PAPER, "short": SHORT, "laptop": LAPTOP, "d2l": D2L, "transfer": TRANSFER,
                              "fine-tune": FINE_TUNE}  # fmt: skip


def tuning_record(path: str | os.PathLike = SHORT_TUNING) -> dict:
    """The record ``benchmarks/tune_recipes.py`` wrote (by default :data:`SHORT_TUNING`): ``grid``,
    ``results`` (one entry per candidate: its settings and validation accuracy), ``choice``, ``data``,
    ``command``, ``device`` and ``date``. A clear error, with the command that writes it, if absent."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no tuning record at {path}; write it with: {TUNING_COMMAND}")
    return json.loads(path.read_text())


def best_on_validation(results: Sequence[dict]) -> dict:
    """The candidate with the highest ``val_accuracy`` (the first in ``results``' order on a tie): the
    rule ``benchmarks/tune_recipes.py`` chooses by."""
    if not results:
        raise ValueError("no candidates to choose from: results is empty")
    missing = [r for r in results if not isinstance(r.get("val_accuracy"), (int, float))]
    if missing:
        raise ValueError(f"every candidate needs a numeric val_accuracy; these have none: {missing}")
    return max(results, key=lambda r: r["val_accuracy"])  # max keeps the first of equal values

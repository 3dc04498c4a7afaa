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
Both are timed the same way: wall time from reading the data to the end of
training (each epoch's test pass included); D2L's progress board records its
curves during training and draws them only after the timed part. The chapter
runs :func:`run_d2l`; ``benchmarks/trainer_speed.py`` runs both.

A single timing of each says little about their ratio (the machine's load
moves from minute to minute), so the chapter times the two pipelines by
:func:`time_pipelines`: short stretches of training steps through each
pipeline's own loader and loop, in alternating order (D2L, ours; ours, D2L;
...), giving seconds per step and their ratio per repeat
(:func:`alternating_timing`, :class:`Timing`). :func:`batch_statistics_accuracy`
and :func:`batchnorm_claim` test why a briefly trained network scores near
chance in evaluation mode.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from .. import device as dev
from .. import models as M
from .. import sizes as S
from ..data import balanced_indices, load_fashion_mnist, prepare_fashion_mnist
from ..history import RunKey
from ..loader import DeviceLoader, for_recipe, for_testing
from ..recipes import D2L
from ..runs import train_all
from ..sizes import PlannedRun, input_shape, split_size
from ..train import evaluate, fit
from ..verdicts import Claim, Verdict, mean_and_spread, proportions_claim

__all__ = [
    "Sizes", "SIZES", "laptop_networks", "plan", "PipelineRun", "initial_network", "same_start", "run_d2l",
    "run_ours", "plot_board", "Timing", "alternating_timing", "time_pipelines", "batch_statistics_accuracy",
    "batchnorm_claim"
]  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Sizes:
    """D2L's recipe on ``d2l_train`` images for ``d2l_epochs`` through D2L's pipeline; both pipelines
    timed in ``pipeline_repeats`` alternating repeats of ``pipeline_steps`` timed steps (after one
    untimed step) of ``pipeline_batch`` images; one epoch timed part by part on ``timing_images``;
    then the laptop recipe with ResNet-``depth`` for ``epochs``."""

    d2l_train: int | None = S.images()
    d2l_test: int | None = S.images()
    d2l_epochs: int = S.epochs()
    pipeline_steps: int = S.steps()
    pipeline_repeats: int = S.fixed()
    pipeline_batch: int = S.images()
    timing_images: int = S.images()
    depth: int = S.fixed()
    train: int | None = S.images()
    test: int | None = S.images()
    epochs: int = S.epochs()


SIZES = {
    "smoke": Sizes(d2l_train=256, d2l_test=128, d2l_epochs=1, pipeline_steps=1, pipeline_repeats=2,
                   pipeline_batch=8, timing_images=64, depth=8, train=512, test=256, epochs=1),
    "cpu": Sizes(d2l_train=2_560, d2l_test=1_024, d2l_epochs=1, pipeline_steps=2, pipeline_repeats=3,
                 pipeline_batch=128, timing_images=512, depth=14, train=None, test=None, epochs=4),
    "gpu": Sizes(d2l_train=None, d2l_test=None, d2l_epochs=10, pipeline_steps=20, pipeline_repeats=3,
                 pipeline_batch=128, timing_images=4_096, depth=20, train=None, test=None,
                 epochs=15),
    "paper": Sizes(d2l_train=None, d2l_test=None, d2l_epochs=10, pipeline_steps=20, pipeline_repeats=3,
                   pipeline_batch=128, timing_images=4_096, depth=20, train=None,
                   test=None, epochs=30),
}  # fmt: skip


def laptop_networks(sizes: Sizes) -> dict[RunKey, nn.Module]:
    """The network of the laptop recipe: the paper's CIFAR
    ResNet-``depth`` on one channel."""
    d = sizes.depth
    return {RunKey("ResNet", d): M.cifar_resnet(d, in_channels=1)}


def plan(sizes: Sizes) -> list[PlannedRun]:
    """D2L's ResNet-18 at 96x96: its run through D2L's pipeline (tested every epoch, once more after,
    and once with batch statistics) and its share of the alternating timing; our pipeline's share of
    that timing; the timed epoch (tested once); then :func:`laptop_networks` (tested every epoch and
    once more by the chapter)."""
    d2l_train = split_size(sizes.d2l_train, "fashion_mnist", True)
    d2l_test = split_size(sizes.d2l_test, "fashion_mnist", False)
    theirs, ours = same_start()
    d2l_shape = (1, D2L.resize, D2L.resize)
    timed = sizes.pipeline_repeats * (sizes.pipeline_steps + 1) * sizes.pipeline_batch
    runs = [PlannedRun("D2L ResNet-18 (d2l)", theirs, d2l_shape, d2l_train * sizes.d2l_epochs + timed,
                       d2l_test * (sizes.d2l_epochs + 2), runner="other"),
            PlannedRun("D2L ResNet-18 (ours)", ours, d2l_shape, timed, 0, runner="other")]  # fmt: skip
    runs.append(PlannedRun("D2L ResNet-18 (timed epoch)", theirs, d2l_shape, sizes.timing_images, d2l_test,
                           runner="other"))
    train, test = split_size(sizes.train, "fashion_mnist", True), split_size(sizes.test, "fashion_mnist", False)
    runs += [PlannedRun(str(key), net, input_shape("fashion_mnist"), train * sizes.epochs, test * (sizes.epochs + 1))
             for key, net in laptop_networks(sizes).items()]  # fmt: skip
    return runs


@dataclass
class PipelineRun:
    """One timed run of a pipeline: images trained on, wall seconds, test accuracy, the curves D2L's
    progress board recorded (label -> (epoch, value) points; empty for ours) and the training steps
    taken (where the pipeline says)."""

    name: str
    model: nn.Module
    images: int
    seconds: float
    test_accuracy: float
    test_images: int
    curves: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    steps: int | None = None

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


def _d2l_classifier(net: nn.Module, on_step: Callable[[], None] | None = None):
    """``net`` as D2L's ``d2l.Classifier`` with D2L's rate; ``on_step`` is called as each training step
    ends (right after the optimizer's update, by a step hook: D2L's ``Trainer`` has no hook of its own
    there), the progress board records points without drawing them."""
    import d2l.torch as d2l

    class D2LResNet18(d2l.Classifier):
        def __init__(self, net: nn.Module, lr: float) -> None:
            super().__init__()
            self.lr, self.net = lr, net

        def configure_optimizers(self):
            optimizer = super().configure_optimizers()
            if on_step is not None:
                optimizer.register_step_post_hook(lambda *_: on_step())
            return optimizer

    model = D2LResNet18(net, D2L.lr)
    model.board.display = False
    return model


def _d2l_data(train_images: int | None, test_images: int | None, batch_size: int = D2L.batch_size):
    import d2l.torch as d2l

    data = d2l.FashionMNIST(batch_size=batch_size, resize=(D2L.resize, D2L.resize))  # reads ../data
    data.train, data.val = _subset(data.train, train_images), _subset(data.val, test_images)
    return data


def _d2l_trainer(epochs: int, device: torch.device):
    import d2l.torch as d2l

    return d2l.Trainer(max_epochs=epochs, num_gpus=1 if device.type == "cuda" else 0)


def run_d2l(net: nn.Module, train_images: int | None, test_images: int | None, epochs: int, device="auto",
            plot: bool = True, data_root: str = "../data") -> PipelineRun:  # fmt: skip
    """D2L's pipeline: ``d2l.FashionMNIST`` + a ``d2l.Classifier`` + ``d2l.Trainer`` (needs
    ``pip install --no-deps d2l==1.0.3``). Trains ``net`` in place. D2L's progress board records its
    curves during training (returned in ``curves``); ``plot`` draws them once training has ended,
    outside the timed part (D2L would redraw the board live, inside it)."""
    device = dev.resolve(device)
    prepare_fashion_mnist(data_root, download=True)
    t0 = time.perf_counter()
    data = _d2l_data(train_images, test_images)
    model = _d2l_classifier(net)
    trainer = _d2l_trainer(epochs, device)
    trainer.fit(model, data)
    dev.synchronize(device)
    seconds = time.perf_counter() - t0
    curves = {label: [(float(p.x), float(p.y)) for p in points]
              for label, points in getattr(model.board, "data", {}).items()}  # fmt: skip
    if plot:
        plot_board(curves)
    test = load_fashion_mnist(False, subset=test_images, resize=D2L.resize)
    _, error = evaluate(net, for_testing(test, normalize=False, device=device), device)
    return PipelineRun("D2L's pipeline (d2l.Trainer)", net, len(data.train) * epochs, seconds, 1 - error, len(test),
                       curves, trainer.train_batch_idx)  # fmt: skip


def plot_board(curves: Mapping[str, list[tuple[float, float]]]):
    """Draw the curves D2L's progress board recorded, in its styles (one line per label, against the
    epoch); returns the figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(3.5, 2.5))
    for (label, points), style, color in zip(curves.items(), ("-", "--", "-.", ":"), ("C0", "C1", "C2", "C3")):
        ax.plot([x for x, _ in points], [y for _, y in points], linestyle=style, color=color, label=label,
                marker="o" if len(points) == 1 else None)  # fmt: skip
    ax.set_xlabel("epoch")
    ax.legend()
    ax.grid(True)
    plt.show()
    return fig


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


#: A stretch of training: runs a few steps, calling the given ``mark`` once per step.
Stretch = Callable[[Callable[[], None]], None]


@dataclass
class Timing:
    """Seconds per training step of a ``baseline`` and a ``candidate`` pipeline, one value per repeat,
    measured in alternating order (``order``: the names in the order their stretches ran), and the
    wall seconds all the stretches took (untimed steps and set-up included)."""

    baseline: str
    candidate: str
    seconds: dict[str, list[float]]
    order: list[str]
    steps: int
    wall_seconds: float

    @property
    def ratios(self) -> list[float]:
        """Baseline's over candidate's seconds per step, per repeat (above 1: the candidate is faster)."""
        return [b / c for b, c in zip(self.seconds[self.baseline], self.seconds[self.candidate])]

    @property
    def spread(self) -> tuple[float, float, float, float]:
        """(mean, sample standard deviation, smallest, largest) of :attr:`ratios`."""
        mean, sd = mean_and_spread(self.ratios)
        return mean, sd, min(self.ratios), max(self.ratios)

    def claim(self) -> Claim:
        """Whether the candidate takes less time per step, decided on the per-repeat ratios: shown if
        every ratio is above 1 and the mean ratio exceeds 1 by more than the ratios' standard
        deviation; not shown if every ratio is below 1 and the mean is below 1 by more than it;
        else undecided (and always undecided with one repeat)."""
        ratios, (mean, sd, _, _) = self.ratios, self.spread
        n = len(ratios)
        evidence = {"ratio per repeat": [round(r, 3) for r in ratios], "mean": mean, "sd": sd, "repeats": n,
                    "timed steps per stretch": self.steps}  # fmt: skip
        name = f"{self.candidate} takes less time per step than {self.baseline}"
        if n < 2:
            return Claim(name, "undecided", "one repeat: no spread was measured.", evidence)
        rule = (f"paired over {n} alternating repeats: shown if every ratio > 1 and mean - 1 > sd; not shown "
                "if every ratio < 1 and 1 - mean > sd; else undecided.")  # fmt: skip
        if all(r > 1 for r in ratios) and mean - 1 > sd:
            status = "shown"
        elif all(r < 1 for r in ratios) and 1 - mean > sd:
            status = "not shown"
        else:
            status = "undecided"
        return Claim(name, status, rule, evidence)

    def rows(self) -> list[dict]:
        """One row per repeat: which ran first, each pipeline's seconds per step, their ratio."""
        return [{"repeat": i + 1, "first": self.order[2 * i],
                 f"{self.baseline} s/step": round(self.seconds[self.baseline][i], 3),
                 f"{self.candidate} s/step": round(self.seconds[self.candidate][i], 3),
                 "ratio": round(r, 3)}
                for i, r in enumerate(self.ratios)]  # fmt: skip

    def __str__(self) -> str:
        mean, sd, low, high = self.spread
        return (f"{self.baseline} / {self.candidate}, seconds per step: mean ratio {mean:.2f}x (sd {sd:.2f}, "
                f"{low:.2f}x to {high:.2f}x over {len(self.ratios)} alternating repeats of {self.steps} timed "
                f"step(s) each; {self.wall_seconds:.0f} s for all the stretches)\n{self.claim()}")  # fmt: skip


def alternating_timing(stretches: Mapping[str, Stretch], repeats: int, *,
                       clock: Callable[[], float] = time.perf_counter) -> Timing:  # fmt: skip
    """Run two stretches ``repeats`` times each in alternating order (A B, B A, A B, ...); each calls
    ``mark`` after its every step. A stretch's seconds per step run from its first mark to its last,
    divided by the steps between them, so its first step (loader start-up, first-call set-up) is
    left out. The first stretch named is the baseline of the ratios."""
    if len(stretches) != 2:
        raise ValueError(f"need exactly two stretches (baseline, candidate), got {list(stretches)}")
    if not isinstance(repeats, int) or repeats < 1:
        raise ValueError(f"repeats must be a positive int, got {repeats!r}")
    names = list(stretches)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    order: list[str] = []
    timed_steps: set[int] = set()
    start = clock()
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            marks: list[float] = []
            stretches[name](lambda: marks.append(clock()))
            if len(marks) < 2:
                raise ValueError(f"stretch {name!r} marked {len(marks)} step(s); it needs two or more (the "
                                 "first one is not timed)")  # fmt: skip
            seconds[name].append((marks[-1] - marks[0]) / (len(marks) - 1))
            timed_steps.add(len(marks) - 1)
            order.append(name)
    wall = clock() - start
    if len(timed_steps) != 1:
        raise ValueError(f"every stretch must time the same number of steps, got {sorted(timed_steps)}")
    return Timing(names[0], names[1], seconds, order, timed_steps.pop(), wall)


def time_pipelines(net: nn.Module, steps: int, repeats: int, batch_size: int = D2L.batch_size, device="auto",
                   data_root: str = "../data") -> Timing:  # fmt: skip
    """D2L's pipeline against ours on D2L's recipe, by :func:`alternating_timing`: each stretch trains a
    fresh copy of ``net`` for ``steps`` + 1 steps of ``batch_size`` images (the same images for both),
    through D2L's ``DataLoader`` and ``Trainer`` or through our ``DeviceLoader`` and ``fit``; no test
    pass, no plotting. Both pipelines' steps are marked as each ends (after the optimizer's update), so
    both time the same span: steps 2 to ``steps`` + 1, each getting its batch included."""
    if steps < 1 or batch_size < 1:
        raise ValueError(f"need at least one timed step of at least one image, got steps={steps}, "
                         f"batch_size={batch_size}")  # fmt: skip
    device = dev.resolve(device)
    images = (steps + 1) * batch_size
    prepare_fashion_mnist(data_root, download=True)
    data = _d2l_data(images, None, batch_size)
    data.val_dataloader = lambda: None  # no test pass: d2l.Trainer skips validation without a loader
    ours = load_fashion_mnist(True, subset=images, resize=D2L.resize)
    recipe = D2L.replace(batch_size=batch_size)

    def synced(mark: Callable[[], None]) -> Callable:
        def marked(*_) -> None:
            dev.synchronize(device)
            mark()

        return marked

    def theirs_stretch(mark: Callable[[], None]) -> None:
        model = _d2l_classifier(copy.deepcopy(net), synced(mark))
        _d2l_trainer(1, device).fit(model, data)

    def ours_stretch(mark: Callable[[], None]) -> None:
        loader = for_recipe(recipe, ours, device=device, normalize=False)
        fit(copy.deepcopy(net), loader, None, recipe=recipe, epochs=1, device=device, progress=False,
            on_step=synced(mark))  # fmt: skip

    return alternating_timing({"D2L's pipeline": theirs_stretch, "ours": ours_stretch}, repeats)


@torch.no_grad()
def batch_statistics_accuracy(net: nn.Module, test, batch_size: int = D2L.batch_size, device="auto",
                              seed: int = 0) -> float:  # fmt: skip
    """Accuracy of ``net`` on ``test`` (an ImageSet) with BatchNorm in training mode: each shuffled test
    batch of ``batch_size`` normalised by its own statistics instead of the running ones (on a copy,
    so ``net``'s running statistics stay as they are)."""
    device = dev.resolve(device)
    model = copy.deepcopy(net).to(device).train()
    right, n = 0, 0
    for x, y in DeviceLoader(test, batch_size, shuffle=True, normalize=False, device=device, seed=seed):
        right += (model(x).argmax(1) == y).sum().item()
        n += len(y)
    if n == 0:
        raise ValueError("batch_statistics_accuracy got an empty test set")
    return right / n


def batchnorm_claim(batch_accuracy: float, running_accuracy: float, images: int, steps: int,
                    classes: int = 10) -> Verdict:  # fmt: skip
    """Whether scoring with each batch's own statistics beats BatchNorm's running statistics on the same
    ``images`` test images after ``steps`` training steps (:func:`resnet_lab.verdicts.proportions_claim`);
    the text names chance for ``classes`` balanced classes."""
    claim = proportions_claim("batch statistics score higher than the running statistics", batch_accuracy,
                              images, running_accuracy, images,
                              what="batch-statistics minus running-statistics accuracy")  # fmt: skip
    text = (f"After {steps:,} training steps, on {images:,} test images: {batch_accuracy:.1%} with each test "
            f"batch's own statistics (training mode), {running_accuracy:.1%} with the running statistics "
            f"(evaluation mode); chance is {1 / classes:.0%}.")  # fmt: skip
    return Verdict([claim], text)

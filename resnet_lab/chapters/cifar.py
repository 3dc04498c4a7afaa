"""Chapter "Training on CIFAR-10": the paper's networks on CIFAR-10 with one recipe.

:func:`networks` builds the chapter's nets from its sizes (the paper's
CIFAR ResNets at ``depths``, and the CIFAR ResNet-18 where the profile has
it), :func:`plan` enumerates them for the chapter box, and
:func:`comparison_verdict` reads the runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .. import models
from .. import sizes as S
from ..history import RunKey
from ..sizes import PlannedRun, input_shape, split_size
from ..verdicts import Runs, Verdict, as_lists

__all__ = ["Sizes", "SIZES", "RESNET18", "networks", "left_out_networks", "plan", "comparison_verdict"]

#: The key of the wide CIFAR ResNet-18 (kuangliu/pytorch-cifar's), trained where ``resnet18`` is set.
RESNET18 = RunKey("CIFAR ResNet-18")


@dataclass(frozen=True, kw_only=True)
class Sizes:
    """The paper's CIFAR nets at ``depths`` (and the CIFAR ResNet-18 if ``resnet18``), trained with the
    recipe named ``recipe`` (a key of :data:`resnet_lab.recipes.RECIPES`)."""

    recipe: str = S.fixed()
    depths: tuple[int, ...] = S.fixed()
    resnet18: bool = S.fixed()
    train: int | None = S.images()
    test: int | None = S.images()
    epochs: int = S.epochs()


SIZES = {
    "smoke": Sizes(recipe="short", depths=(8, 14), resnet18=False, train=256, test=128, epochs=1),
    "cpu": Sizes(recipe="short", depths=(8, 20), resnet18=False, train=5_000, test=1_000, epochs=25),
    "gpu": Sizes(recipe="short", depths=(20, 56), resnet18=False, train=None, test=None, epochs=30),
    "paper": Sizes(recipe="paper", depths=(20, 32, 44, 56, 110), resnet18=True, train=None, test=None, epochs=164),
}  # fmt: skip


def networks(sizes: Sizes) -> dict[RunKey, nn.Module]:
    """The nets the chapter trains: ResNet-n at every depth, then the
    CIFAR ResNet-18 where the profile includes it."""
    nets: dict[RunKey, nn.Module] = {
        RunKey("ResNet", d): models.cifar_resnet(d) for d in sizes.depths}
    if sizes.resnet18:
        nets[RESNET18] = models.cifar_resnet18()
    return nets


def left_out_networks(sizes: Sizes) -> dict[RunKey, nn.Module]:
    """The nets this profile leaves out for time (the CIFAR ResNet-18 where ``resnet18`` is off)."""
    return {} if sizes.resnet18 else {RESNET18: models.cifar_resnet18()}


def plan(sizes: Sizes) -> list[PlannedRun]:
    """:func:`networks`, each trained ``epochs`` times on the training images and tested every epoch."""
    train, test = split_size(sizes.train, "cifar10", True), split_size(sizes.test, "cifar10", False)
    return [PlannedRun(str(key), net, input_shape("cifar10"), train * sizes.epochs, test * sizes.epochs)
            for key, net in networks(sizes).items()]  # fmt: skip


def comparison_verdict(runs: Runs) -> Verdict:
    """Networks trained with one recipe: which reached the best test accuracy, and what the bigger one
    cost (parameters and training time) against what it bought."""
    hs = {n: h[0] for n, h in as_lists(runs).items()}
    if len(hs) < 2:
        raise ValueError(f"need at least 2 runs to compare, got {len(hs)}")
    acc = {n: 100 * (1 - h.final.test_error) for n, h in hs.items()}
    best = max(acc, key=acc.get)
    small = min(hs, key=lambda n: hs[n].info.params)
    big = max(hs, key=lambda n: hs[n].info.params)
    gain = acc[big] - acc[small]
    ratio_p = hs[big].info.params / hs[small].info.params
    ratio_t = hs[big].seconds / hs[small].seconds
    text = (f"{best} reached the highest test accuracy, {acc[best]:.1f}%. {big} has {ratio_p:.1f}x the parameters "
            f"of {small} and trained {ratio_t:.1f}x as long; it ended {abs(gain):.1f} points "
            f"{'above' if gain >= 0 else 'below'} it ({acc[big]:.1f}% against {acc[small]:.1f}%).")  # fmt: skip
    return Verdict(gain > 0, text)

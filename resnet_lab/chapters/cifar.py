"""Chapter "Training on CIFAR-10": the paper's networks on CIFAR-10 with one recipe.

:func:`networks` builds the chapter's nets from its sizes (the paper's
CIFAR ResNets at ``depths``, and the CIFAR ResNet-18 where the profile has
it), :func:`plan` enumerates them for the chapter box, and
:func:`comparison_verdict` reads the runs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from torch import nn

from .. import models
from .. import sizes as S
from ..history import History, RunKey
from ..sizes import PlannedRun, input_shape, split_size
from ..verdicts import Runs, Verdict, as_lists, mean_and_spread, paired_claim, proportions_claim, schedule_notes

__all__ = ["Sizes", "SIZES", "RESNET18", "networks", "left_out_networks", "plan", "comparison_verdict",
           "BIGGER_IS_BETTER"]  # fmt: skip

#: The claim of :func:`comparison_verdict`.
BIGGER_IS_BETTER = "the bigger network reaches a higher test accuracy"

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


def comparison_verdict(runs: Runs, test_images: int | None = None) -> Verdict:
    """The claim :data:`BIGGER_IS_BETTER`: of the networks trained with one recipe, the biggest (most
    parameters) ends with a higher test accuracy than the smallest.

    With one seed per network (every profile here) it is a
    :func:`~resnet_lab.verdicts.proportions_claim` on the final test accuracies over the test images
    (``history.info.test_images``, else ``test_images``); with two or more seeds, a
    :func:`~resnet_lab.verdicts.paired_claim` over the per-seed accuracies. The cost travels with it as
    evidence: the bigger network's parameters and training time as multiples of the smaller's. The text
    gives every network's final test accuracy.
    """
    lists = as_lists(runs)
    if len(lists) < 2:
        raise ValueError(f"need at least 2 runs to compare, got {len(lists)}")
    seeds = {len(hs) for hs in lists.values()}
    if len(seeds) != 1:
        raise ValueError(f"every run needs the same seeds; got {({str(k): len(hs) for k, hs in lists.items()})}")
    [n_seeds] = seeds
    for key, hs in lists.items():
        if hs[0].info.params is None or hs[0].final.test_error is None:
            raise ValueError(f"run {key} has no parameter count or no final test error; compare finished, "
                             "tested runs (as train_all returns them)")  # fmt: skip
    acc = {k: [1 - h.final.test_error for h in hs] for k, hs in lists.items()}
    small = min(lists, key=lambda k: lists[k][0].info.params)
    big = max(lists, key=lambda k: lists[k][0].info.params)
    if small == big:
        raise ValueError("the networks all have the same parameter count: none is bigger")
    what = f"{big} - {small} test accuracy"
    if n_seeds > 1:
        claim = paired_claim(BIGGER_IS_BETTER, [100 * a for a in acc[big]], [100 * a for a in acc[small]],
                             what=what)  # fmt: skip
    else:
        n_big, n_small = (_test_images(lists[k][0], k, test_images) for k in (big, small))
        claim = proportions_claim(BIGGER_IS_BETTER, acc[big][0], n_big, acc[small][0], n_small, what=what)
    h_big, h_small = lists[big], lists[small]
    cost = {f"parameters, {big} / {small}": h_big[0].info.params / h_small[0].info.params,
            f"training time, {big} / {small}": sum(h.seconds for h in h_big) / sum(h.seconds for h in h_small)}
    claim = replace(claim, evidence={**claim.evidence, **cost})

    def pm(key: RunKey | str) -> str:
        mean, sd = mean_and_spread([100 * a for a in acc[key]])
        return f"{key} {mean:.1f}%" + (f" ± {sd:.1f}" if n_seeds > 1 else "")

    seeds_text = f"mean ± sample standard deviation over {n_seeds} seeds" if n_seeds > 1 else "one seed each"
    text = f"Final test accuracy ({seeds_text}): {', '.join(pm(k) for k in lists)}."
    return Verdict([claim], text + schedule_notes(runs))


def _test_images(h: History, key: RunKey | str, given: int | None) -> int:
    """The test images ``h`` was scored on: recorded by ``fit``, else ``given``; else a clear error."""
    n = h.info.test_images if h.info.test_images is not None else given
    if n is None:
        raise ValueError(f"the test image count of {key} is not recorded (history.info.test_images is None); "
                         "pass test_images=, the number of images each network was tested on")  # fmt: skip
    return int(n)

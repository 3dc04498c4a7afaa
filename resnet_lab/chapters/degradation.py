"""Chapter "The degradation experiment": plain and residual nets of growing depth, trained alike.

He et al. (2015), section 4.2 and Fig. 6: on CIFAR-10 the deeper plain net
ends with a *higher training error* than the shallower one; residual nets of
the same depths do not. :func:`networks` builds the chapter's nets from its
sizes, :func:`plan` enumerates them for the chapter box, and
:func:`degradation_verdict` reads the runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .. import models
from .. import sizes as S
from ..history import RunKey
from ..sizes import PlannedRun, input_shape, split_size
from ..verdicts import Runs, Verdict, as_lists, keys_of_kind, mean_and_spread

__all__ = ["Sizes", "SIZES", "KINDS", "networks", "plan", "degradation_verdict"]

#: The two kinds of net compared at every depth.
KINDS = ("plain", "residual")


@dataclass(frozen=True, kw_only=True)
class Sizes:
    """Plain and residual nets at ``depths`` on ``dataset``, one run per seed, at ``batch_size``
    (the paper's recipe with the learning rate scaled linearly to the batch)."""

    dataset: str = S.fixed()
    depths: tuple[int, ...] = S.fixed()
    train: int | None = S.images()
    test: int | None = S.images()
    epochs: int = S.epochs()
    seeds: tuple[int, ...] = S.fixed()
    batch_size: int = S.fixed()


SIZES = {
    "smoke": Sizes(dataset="fashion_mnist", depths=(8, 14), train=256, test=128, epochs=1, seeds=(0,), batch_size=32),
    "cpu": Sizes(dataset="fashion_mnist", depths=(20, 56), train=1_800, test=500, epochs=8, seeds=(0, 1),
                 batch_size=32),
    "gpu": Sizes(dataset="cifar10", depths=(20, 56), train=None, test=None, epochs=20, seeds=(0,), batch_size=128),
    "paper": Sizes(dataset="cifar10", depths=(20, 32, 44, 56), train=None, test=None, epochs=164, seeds=(0,),
                   batch_size=128),
}  # fmt: skip


def networks(sizes: Sizes, in_channels: int) -> dict[RunKey, nn.Module]:
    """One seed's nets: a plain and a residual CIFAR net (option A
    shortcuts) at every depth."""
    return {
        RunKey(kind, depth): models.cifar_resnet(
            depth, plain=kind == "plain", in_channels=in_channels)
        for depth in sizes.depths
        for kind in KINDS
    }  # fmt: skip


def plan(sizes: Sizes) -> list[PlannedRun]:
    """Every seed's :func:`networks`, each trained ``epochs`` times on the training images and tested
    after every epoch."""
    shape = input_shape(sizes.dataset)
    train, test = split_size(sizes.train, sizes.dataset, True), split_size(sizes.test, sizes.dataset, False)
    return [PlannedRun(str(key), net, shape, train * sizes.epochs, test * sizes.epochs)
            for _ in sizes.seeds for key, net in networks(sizes, shape[0]).items()]  # fmt: skip


def degradation_verdict(runs: Runs, margin: float = 2.0) -> Verdict:
    """Plain vs residual at the run's shallowest and deepest depth (keys ``RunKey("plain", d)`` and
    ``RunKey("residual", d)``, one history per seed, the seeds in the same order for every key).

    With few seeds the comparisons are made seed by seed: the effect is shown
    when, in every seed, the deepest plain net ends with a training error
    more than ``margin`` points above the shallowest plain net's and above the
    residual net's of its own depth; and when the deeper residual net ends,
    on average, no more above the shallower one than the spread between seeds.
    """
    lists = as_lists(runs)
    depths = list(keys_of_kind(runs, "plain"))
    lo, hi = depths[0], depths[-1]
    train = {key: [100 * h.final.train_error for h in hs] for key, hs in lists.items()}
    p_lo, p_hi, r_lo, r_hi = (train[RunKey(k, d)] for k, d in (("plain", lo), ("plain", hi), ("residual", lo),
                                                               ("residual", hi)))  # fmt: skip
    seeds = len(p_hi)
    gaps_plain = [a - b for a, b in zip(p_hi, p_lo)]
    gaps_fix = [a - b for a, b in zip(p_hi, r_hi)]
    gaps_res = [a - b for a, b in zip(r_hi, r_lo)]
    spread = max(mean_and_spread(r_hi)[1], mean_and_spread(r_lo)[1], 0.5)

    def pm(values: list[float]) -> str:
        mean, sd = mean_and_spread(values)
        return f"{mean:.1f}%" + (f" ± {sd:.1f}" if seeds > 1 else "")

    def span(gaps: list[float]) -> str:
        return f"{gaps[0]:.1f} points" if seeds == 1 else f"{min(gaps):.1f} to {max(gaps):.1f} points"

    every = "in every seed" if seeds > 1 else "in this run"
    text = (f"plain-{hi} ended with {pm(p_hi)} training error, plain-{lo} with {pm(p_lo)}, ResNet-{hi} with "
            f"{pm(r_hi)} and ResNet-{lo} with {pm(r_lo)}")  # fmt: skip
    text += (f" (mean ± sample standard deviation over {seeds} seeds). " if seeds > 1 else
             " (one seed: the spread between seeds was not measured). ")  # fmt: skip
    deeper_worse = min(gaps_plain) > margin
    residual_fixes = min(gaps_fix) > margin
    text += (f"The deeper plain net trained worse {every}, by {span(gaps_plain)}, " if deeper_worse else
             f"The deeper plain net was not worse by more than {margin:.0f} points {every} ({span(gaps_plain)}), ")
    text += (f"and the residual net of its depth trained better {every}, by {span(gaps_fix)}. " if residual_fixes
             else f"and the residual net of its depth was not better by more than {margin:.0f} points {every} "
             f"({span(gaps_fix)}). ")  # fmt: skip
    mean_gap = sum(gaps_res) / seeds
    residual_ok = mean_gap <= spread
    if mean_gap < 0:
        text += f"The deeper residual net ended {-mean_gap:.1f} points below the shallower one on average."
    elif residual_ok:
        text += (f"The deeper residual net ended {mean_gap:.1f} points above the shallower one on average, within "
                 f"the spread between seeds ({spread:.1f}).")  # fmt: skip
    else:
        text += (f"The deeper residual net ended {mean_gap:.1f} points above the shallower one on average, more "
                 f"than the spread between seeds ({spread:.1f}): in this run depth cost the residual net too.")
    holds = deeper_worse and residual_fixes and residual_ok
    return Verdict(holds, ("Degradation shown: " if holds else "Not all of the effect shows in this run: ") + text)

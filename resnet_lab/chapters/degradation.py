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
from ..verdicts import (
    Runs,
    Verdict,
    as_lists,
    keys_of_kind,
    mean_and_spread,
    paired_claim,
    schedule_notes,
)

__all__ = ["Sizes", "SIZES", "KINDS", "networks", "plan", "degradation_verdict", "PLAIN_DEGRADES",
           "DEEPER_RESIDUAL_BETTER", "RESIDUAL_FIXES"]  # fmt: skip

#: The two kinds of net compared at every depth.
KINDS = ("plain", "residual")

#: The claims of :func:`degradation_verdict`.
PLAIN_DEGRADES = "plain nets degrade"
DEEPER_RESIDUAL_BETTER = "the deeper residual net is better"
RESIDUAL_FIXES = "the residual net fixes the deep plain net"


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
    "gpu": Sizes(dataset="cifar10", depths=(20, 56), train=None, test=None, epochs=19, seeds=(0,), batch_size=128),
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


def degradation_verdict(runs: Runs) -> Verdict:
    """Three claims about the final training errors of plain and residual nets (keys ``RunKey("plain", d)``
    and ``RunKey("residual", d)``, one history per seed, the seeds in the same order for every key), at
    the run's shallowest depth ``lo`` and deepest ``hi``:

    * :data:`PLAIN_DEGRADES`: plain-``hi`` ends above plain-``lo`` (He et al. 2015, section 4.2, Fig. 6);
    * :data:`DEEPER_RESIDUAL_BETTER`: residual-``hi`` ends below residual-``lo`` (in the paper the
      deeper ResNets end with lower training error, Fig. 6 middle, and lower test error, Table 6);
    * :data:`RESIDUAL_FIXES`: residual-``hi`` ends below plain-``hi``.

    Each claim is a :func:`~resnet_lab.verdicts.paired_claim` over the per-seed errors. With one seed
    (the ``gpu`` and ``paper`` profiles) every claim is undecided: a training error is a running average
    over the whole training set, not a sample of images, so a binomial standard error would not measure
    its noise, and one seed measures no spread between seeds. Run two or more seeds to decide.

    The training error is ``final.train_error``: the last epoch's running error over the batches it
    trained on (augmented where the recipe augments), in training mode while the weights still moved;
    not a clean evaluation of the final weights.
    """
    lists = as_lists(runs)
    depths = list(keys_of_kind(runs, "plain"))
    if len(depths) < 2:
        raise ValueError(f"need plain nets at two depths or more to compare, got depths {depths}")
    lo, hi = depths[0], depths[-1]
    keys = {(k, d): RunKey(k, d) for k in KINDS for d in (lo, hi)}
    missing = [str(key) for key in keys.values() if key not in lists]
    if missing:
        raise ValueError(f"no runs keyed {missing} among {[str(k) for k in runs]}; the verdict compares plain "
                         f"and residual nets at depths {lo} and {hi}")  # fmt: skip
    hs = {kd: lists[key] for kd, key in keys.items()}
    seeds = {len(h) for h in hs.values()}
    if len(seeds) != 1:
        raise ValueError(f"every run needs the same seeds; got {({str(keys[kd]): len(h) for kd, h in hs.items()})}")
    [n_seeds] = seeds
    err = {kd: [h.final.train_error for h in hlist] for kd, hlist in hs.items()}
    pairs = [  # (claim, the side claimed higher, the side claimed lower)
        (PLAIN_DEGRADES, ("plain", hi), ("plain", lo)),
        (DEEPER_RESIDUAL_BETTER, ("residual", lo), ("residual", hi)),
        (RESIDUAL_FIXES, ("plain", hi), ("residual", hi)),
    ]
    claims = []
    for name, a, b in pairs:
        what = f"{keys[a]} - {keys[b]} training error"
        claims.append(paired_claim(name, [100 * e for e in err[a]], [100 * e for e in err[b]], what=what))

    def pm(kd: tuple[str, int]) -> str:
        mean, sd = mean_and_spread([100 * e for e in err[kd]])
        return f"{keys[kd]} {mean:.1f}%" + (f" ± {sd:.1f}" if n_seeds > 1 else "")

    spread = (f"mean ± sample standard deviation over {n_seeds} seeds" if n_seeds > 1
              else "one seed: the spread between seeds was not measured")  # fmt: skip
    text = (f"Final training error ({spread}): {', '.join(pm(kd) for kd in keys)}. Training error here is the "
            "last epoch's running error over its batches, in training mode.")  # fmt: skip
    return Verdict(claims, text + schedule_notes(runs))

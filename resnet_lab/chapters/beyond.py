"""Chapter "Beyond the original ResNet": pre-activation, zero-init, lesions and loss landscapes.

* :func:`networks` and :func:`zero_init_networks` build the chapter's nets
  from its sizes; :func:`plan` enumerates them for the chapter box.
* :func:`first_steps` and :func:`warmup_steps`: the first steps of training
  with and without zero-initialised residual branches (Goyal et al. 2017),
  shown without a verdict: a few dozen steps cannot test their claim.
* :func:`delete_block` and :func:`lesion_study`: remove residual blocks from
  a trained network, one at a time and cumulatively, as in Veit et al.
  (2016): a residual block falls back to its shortcut; a plain block has
  nothing to fall back on and becomes the identity. The order of the
  cumulative deletions is set on training images, never on the test images
  the errors are reported on.
* :func:`loss_along_line` (Goodfellow et al. 2015) and :func:`loss_surface`:
  the loss between two sets of weights, and on 2-D slices spanned by pairs of
  filter-normalised random directions (Li et al. 2018).
* :func:`identity_gap`: how far each block is from the identity, at
  initialisation with ``zero_init_residual`` (Goyal et al. 2017).
* Verdicts (:func:`preact_verdict`, :func:`lesion_verdict`,
  :func:`landscape_verdict`) are made of :class:`~resnet_lab.verdicts.Claim` s,
  each with its rule and evidence.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .. import models as M
from .. import sizes as S
from ..history import RunKey
from ..recipes import Recipe
from ..sizes import PlannedRun, input_shape, split_size
from ..train import lr_at
from ..verdicts import (
    NOT_SHOWN,
    SHOWN,
    UNDECIDED,
    Claim,
    Runs,
    Verdict,
    as_lists,
    counts_claim,
    final_errors,
    paired_claim,
    proportions_claim,
    schedule_notes,
)

__all__ = [
    "Sizes", "SIZES", "networks", "zero_init_networks", "plan", "warmup_steps", "first_steps", "preact_verdict",
    "lesion_verdict", "landscape_verdict", "paired_over_blocks_claim", "deletable_blocks", "delete_block",
    "lesion_study", "identity_gap", "filter_normalized_direction", "line_alphas", "loss_along_line", "line_profile",
    "loss_surface", "describe_surface", "batch_loss", "deletion_rises", "BARELY_CHANGES",
]  # fmt: skip

#: How BatchNorm normalises when a loss is measured: with its running statistics (eval mode) or with
#: each batch's own (training mode).
Statistics = Literal["running", "batch"]


@dataclass(frozen=True, kw_only=True)
class Sizes:
    """Post- and pre-activation and plain nets of ``depth`` on ``dataset``; zero-init's first epochs;
    gradients at ``gradient_depth``; loss landscapes of ``landscape_points`` per side for each of
    ``landscape_pairs`` pairs of random directions, on ``landscape_images`` training images (which also
    set the order of the lesion study's cumulative deletions)."""

    dataset: str = S.fixed()
    depth: int = S.fixed()
    train: int | None = S.images()
    test: int | None = S.images()
    epochs: int = S.epochs()
    zero_init_epochs: int = S.epochs()
    gradient_depth: int = S.fixed()
    landscape_points: int = S.points(at_most=3)  # a grid of loss evaluations per side
    landscape_images: int = S.images()
    # Pairs of random directions, each a slice of landscape_points**2 losses; two at least, so that the
    # slices can be compared. Three unless a profile says otherwise.
    landscape_pairs: int = dataclasses.field(default=3, metadata=S.points(at_most=2).metadata)


SIZES = {
    "smoke": Sizes(dataset="fashion_mnist", depth=8, train=256, test=128, epochs=1, zero_init_epochs=1,
                   gradient_depth=20, landscape_points=3, landscape_images=64, landscape_pairs=2),
    "cpu": Sizes(dataset="fashion_mnist", depth=32, train=2_000, test=1_000, epochs=10, zero_init_epochs=2,
                 gradient_depth=110, landscape_points=9, landscape_images=128, landscape_pairs=3),
    "gpu": Sizes(dataset="cifar10", depth=56, train=None, test=None, epochs=10, zero_init_epochs=2,
                 gradient_depth=110, landscape_points=21, landscape_images=500),
    "paper": Sizes(dataset="cifar10", depth=110, train=None, test=None, epochs=164, zero_init_epochs=2,
                   gradient_depth=110, landscape_points=21, landscape_images=1_000),
}  # fmt: skip


def networks(sizes: Sizes, in_channels: int) -> dict[RunKey, nn.Module]:
    """The three nets of ``depth`` the chapter trains alike:
    post-activation (the 2015 block), pre-activation (He et al. 2016)
    and plain."""
    d, c = sizes.depth, in_channels
    return {
        RunKey("ResNet", d): M.cifar_resnet(d, in_channels=c),
        RunKey("pre-act ResNet", d): M.cifar_resnet(
            d, preact=True, in_channels=c),
        RunKey("plain", d): M.cifar_resnet(d, plain=True, in_channels=c),
    }  # fmt: skip


def zero_init_networks(sizes: Sizes,
                       in_channels: int) -> dict[RunKey, nn.Module]:
    """ResNet-``depth`` with the last BN of every residual branch at
    zero (Goyal et al. 2017), and without."""
    d, c = sizes.depth, in_channels
    return {
        RunKey("zero-init"): M.cifar_resnet(
            d, in_channels=c, zero_init_residual=True),
        RunKey("default init"): M.cifar_resnet(d, in_channels=c),
    }  # fmt: skip


def plan(sizes: Sizes) -> list[PlannedRun]:
    """:func:`networks` for ``epochs``, :func:`zero_init_networks` for ``zero_init_epochs``, then the
    evaluation passes of the lesion study and the landscapes."""
    shape = input_shape(sizes.dataset)
    train, test = split_size(sizes.train, sizes.dataset, True), split_size(sizes.test, sizes.dataset, False)
    runs = [PlannedRun(str(k), net, shape, train * sizes.epochs, test * sizes.epochs)
            for k, net in networks(sizes, shape[0]).items()]  # fmt: skip
    runs += [PlannedRun(str(k), net, shape, train * sizes.zero_init_epochs, test * sizes.zero_init_epochs)
             for k, net in zero_init_networks(sizes, shape[0]).items()]  # fmt: skip
    net = M.cifar_resnet(sizes.depth, in_channels=shape[0])
    blocks, probe = len(deletable_blocks(net)), sizes.landscape_images
    # Per net (residual and plain): intact, each block alone and the cumulative deletions on the test
    # images; intact and each block alone on the probe's training images (the cumulative order).
    lesions = 2 * ((2 * blocks + 1) * test + (blocks + 1) * probe)
    # Per net: the line, every pair's p x p slice, and 4 corners with batch statistics.
    p = sizes.landscape_points
    landscape = 2 * (len(line_alphas(p)) + sizes.landscape_pairs * p**2 + 4) * probe
    return runs + [PlannedRun("lesions and landscapes", net, shape, 0, lesions + landscape, runner="other")]


# --- Zero-init: the first steps --------------------------------------------------------------


def warmup_steps(recipe: Recipe, total_steps: int, steps_per_epoch: int) -> int:
    """How many of ``total_steps`` run before the learning rate first reaches its peak, with the rates
    :func:`resnet_lab.train.fit` uses for ``recipe`` (the one-cycle ramp, or ``warmup_epochs``)."""
    if total_steps < 1 or steps_per_epoch < 1:
        raise ValueError(f"total_steps and steps_per_epoch must be positive, got {total_steps} and {steps_per_epoch}")
    warmup = round(recipe.warmup_epochs * steps_per_epoch)
    rates = [lr_at(t, total_steps, recipe.lr, recipe.schedule, warmup) for t in range(total_steps)]
    return rates.index(max(rates))


def first_steps(runs: Runs, zero: RunKey | str, default: RunKey | str):
    """The logged training loss of the two zero-init runs, one row per logged stretch of steps (a pandas
    DataFrame indexed by the step that ends the stretch). A look at the first steps: no verdict."""
    import pandas as pd

    h0, h1 = (as_lists(runs)[k][0] for k in (zero, default))
    s0, s1 = [p["step"] for p in h0.steps], [p["step"] for p in h1.steps]
    if s0 != s1 or not s0:
        raise ValueError(f"the two runs must log the same steps (same recipe, data and epochs); got {s0} and {s1}")
    return pd.DataFrame({str(zero): [p["train_loss"] for p in h0.steps],
                         str(default): [p["train_loss"] for p in h1.steps]},
                        index=pd.Index(s0, name="step"))  # fmt: skip


# --- Lesions -------------------------------------------------------------------------------


def deletable_blocks(model: M.ResNet) -> list[tuple[int, int]]:
    """``(stage, index)`` of every block whose input and output have the same shape (no downsampling):
    the blocks Veit et al. delete. Stages count from 1, as ``layer1`` ... do."""
    return [(s, i) for s, stage in enumerate(model.stages(), start=1) for i, block in enumerate(stage)
            if _keeps_shape(block)]  # fmt: skip


def _keeps_shape(block: nn.Module) -> bool:
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    if not convs:  # a block deleted already: the identity
        return True
    return (getattr(block, "downsample", None) is None and all(c.stride == (1, 1) for c in convs)
            and convs[0].in_channels == convs[-1].out_channels)  # fmt: skip


def delete_block(model: M.ResNet, stage: int, index: int) -> M.ResNet:
    """A copy of ``model`` with block ``index`` of ``layer{stage}`` removed (the original is unchanged).

    A residual block's input reaches its output through the shortcut alone,
    so it becomes the identity; so does a plain block, which has nothing
    else to pass on. Only shape-preserving blocks can go
    (:func:`deletable_blocks`): others would break the next block's input.
    """
    if (stage, index) not in deletable_blocks(model):
        raise ValueError(f"block {index} of layer{stage} changes the shape or does not exist; deletable blocks: "
                         f"{deletable_blocks(model)}")  # fmt: skip
    lesioned = copy.deepcopy(model)
    getattr(lesioned, f"layer{stage}")[index] = nn.Identity()
    return lesioned


@torch.no_grad()
def _wrong(model: nn.Module, batches: Iterable) -> torch.Tensor:
    """Per image of ``batches`` (in order): is ``model``'s prediction wrong (a bool tensor on the CPU)."""
    with M.evaluating(model):
        return torch.cat([(model(x).argmax(1) != y).cpu() for x, y in batches])


def _error(model: nn.Module, batches: Iterable) -> float:
    return _wrong(model, batches).float().mean().item()


def _images(batches: Sequence) -> int:
    return sum(len(y) for _, y in batches)


def lesion_study(model: M.ResNet, batches: Sequence[tuple[torch.Tensor, torch.Tensor]], *,
                 order_batches: Sequence[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, object]:  # fmt: skip
    """Error (fraction) of ``model`` on ``batches`` (the test images): intact, with each deletable block
    removed alone, and with the first k blocks of an order removed together (k = 1 ... all).

    The order is set without the test images: least harmful first, by the
    error with each block removed alone on ``order_batches`` (training
    images), ties by position. Returns ``{"blocks", "intact", "single",
    "order_intact", "order_single", "order", "cumulative", "images",
    "order_images", "wrong_intact", "wrong_single"}``; the last two say, per
    test image, whether the intact net and each single deletion got it wrong
    (bool tensors), so that :func:`lesion_verdict` can pair the two on the
    same images.
    """
    if not batches or not order_batches:
        raise ValueError("lesion_study needs test batches and order batches (training images that set the order "
                         "of the cumulative deletions); got an empty list")  # fmt: skip
    blocks = deletable_blocks(model)
    lesioned = [delete_block(model, s, i) for s, i in blocks]
    wrong_intact = _wrong(model, batches)
    wrong_single = [_wrong(m, batches) for m in lesioned]
    single = [w.float().mean().item() for w in wrong_single]
    order_single = [_error(m, order_batches) for m in lesioned]
    order = [blocks[j] for j in sorted(range(len(blocks)), key=order_single.__getitem__)]
    cumulative, current = [], model
    for s, i in order:
        current = delete_block(current, s, i)
        cumulative.append(_error(current, batches))
    return {"blocks": blocks, "intact": wrong_intact.float().mean().item(), "single": single,
            "order_intact": _error(model, order_batches), "order_single": order_single, "order": order,
            "cumulative": cumulative, "images": _images(batches), "order_images": _images(order_batches),
            "wrong_intact": wrong_intact, "wrong_single": wrong_single}  # fmt: skip


@torch.no_grad()
def identity_gap(model: M.ResNet, input_shape: tuple[int, int, int], seed: int = 0) -> list[float]:
    """For each shape-preserving block: max |block(x) - x| / max |x| on a random non-negative input, in eval mode."""
    g = torch.Generator().manual_seed(seed)
    gaps = []
    with M.evaluating(model):
        x = torch.randn(2, *input_shape, generator=g)
        x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        for s, stage in enumerate(model.stages(), start=1):
            for i, block in enumerate(stage):
                y = block(x)
                if (s, i) in deletable_blocks(model):
                    gaps.append(((y - x).abs().max() / x.abs().max()).item())
                x = y
    return gaps


# --- Loss landscapes ---------------------------------------------------------------------------


def batch_loss(model: nn.Module, batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
               statistics: Statistics = "running") -> float:  # fmt: skip
    """Mean cross-entropy over ``batches``, without gradients.

    ``statistics="running"``: eval mode, every BatchNorm normalises with its
    running mean and variance. ``"batch"``: BatchNorm normalises each batch
    with the batch's own statistics (training mode), and its running
    statistics are left as they were.
    """
    if statistics not in ("running", "batch"):
        raise ValueError(f"statistics must be 'running' or 'batch', got {statistics!r}")
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [[b.clone() for b in m.buffers()] for m in norms]
    was_training = model.training
    model.train(statistics == "batch")
    try:
        with torch.no_grad():
            total = sum(F.cross_entropy(model(x), y, reduction="sum").item() for x, y in batches)
    finally:
        model.train(was_training)
        with torch.no_grad():
            for m, buffers in zip(norms, saved):
                for b, old in zip(m.buffers(), buffers):
                    b.copy_(old)
    return total / _images(batches)


def filter_normalized_direction(model: nn.Module, seed: int) -> list[torch.Tensor]:
    """A random direction in weight space, scaled filter by filter to the norm of the model's filters.

    Li et al. (2018), section 4: each filter of the direction gets the norm of
    the corresponding filter of the weights, so that the plot is not
    distorted by the scale invariance that BatchNorm gives a network.
    Biases and BN parameters get a zero direction (their section 4 leaves them
    out too).
    """
    g = torch.Generator().manual_seed(seed)
    direction = []
    for p in model.parameters():
        if p.dim() <= 1:
            direction.append(torch.zeros_like(p))
            continue
        d = torch.randn(p.shape, generator=g)
        norms_p = p.detach().flatten(1).norm(dim=1)
        norms_d = d.flatten(1).norm(dim=1)
        direction.append(d * (norms_p / (norms_d + 1e-10)).view(-1, *[1] * (p.dim() - 1)))
    return direction


def _with_offset(model: nn.Module, base: list[torch.Tensor], *steps: tuple[float, list[torch.Tensor]]) -> None:
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(base[i] + sum(a * d[i] for a, d in steps))


def line_alphas(points: int, extend: float = 0.25) -> list[float]:
    """The line's positions: ``points`` from 0 to 1 (both ends exactly), and as many more at the same
    spacing as fit within ``extend`` before 0 and after 1."""
    if points < 2 or extend < 0:
        raise ValueError(f"need points >= 2 and extend >= 0, got points={points!r}, extend={extend!r}")
    k = int(extend * (points - 1) + 1e-9)
    return [i / (points - 1) for i in range(-k, points + k)]


def loss_along_line(model: nn.Module, start: nn.Module, batches: list, points: int = 21,
                    extend: float = 0.25) -> tuple[list[float], list[float]]:  # fmt: skip
    """Loss on ``batches`` along the straight line from ``start``'s weights (alpha = 0) to ``model``'s
    (alpha = 1), at :func:`line_alphas` ``(points, extend)``: the method of Goodfellow et al. (2015). BN
    running statistics are ``model``'s throughout, so at alpha = 0 the loss is not ``start``'s own."""
    probe = copy.deepcopy(model)
    end = [p.detach().clone() for p in model.parameters()]
    delta = [e - s.detach() for e, s in zip(end, start.parameters())]
    alphas = line_alphas(points, extend)
    losses = []
    for a in alphas:
        _with_offset(probe, end, (a - 1.0, delta))
        losses.append(batch_loss(probe, batches))
    return alphas, losses


def line_profile(alphas: Sequence[float], losses: Sequence[float]) -> dict[str, float | int]:
    """What the line from initialisation shows, between alpha = 0 and 1: the loss at both ends, the
    highest loss between them, and at how many of the ``steps`` from point to point the loss went up."""
    inside = [loss for a, loss in zip(alphas, losses) if -1e-9 <= a <= 1 + 1e-9]
    if len(inside) < 2:
        raise ValueError(f"the line needs points at alpha = 0 and 1; got alphas {list(alphas)}")
    return {"start": inside[0], "end": inside[-1], "highest": max(inside),
            "rises": sum(b > a for a, b in zip(inside, inside[1:])), "steps": len(inside) - 1}  # fmt: skip


def loss_surface(model: nn.Module, batches: list, points: int = 11, span: float = 1.0, seed: int = 0,
                 statistics: Statistics = "running") -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Loss on a ``points`` x ``points`` grid around ``model``'s weights, along two filter-normalised
    random directions (seeds ``seed`` and ``seed + 1``), each coordinate from ``-span`` to ``span``.
    Returns (coordinates, losses), ``losses[j, i]`` at (coords[i], coords[j]). ``statistics``: see
    :func:`batch_loss` (the running statistics are the trained weights', wherever the grid moves them)."""
    probe = copy.deepcopy(model)
    base = [p.detach().clone() for p in model.parameters()]
    d1, d2 = filter_normalized_direction(model, seed), filter_normalized_direction(model, seed + 1)
    coords = torch.linspace(-span, span, points)
    losses = torch.empty(points, points)
    for i, a in enumerate(coords.tolist()):
        for j, b in enumerate(coords.tolist()):
            _with_offset(probe, base, (a, d1), (b, d2))
            losses[j, i] = batch_loss(probe, batches, statistics)
    return coords, losses


def describe_surface(losses: torch.Tensor) -> dict[str, float | int]:
    """A square grid of losses (:func:`loss_surface`): the loss at the centre (the trained weights), the
    median loss along the grid's edge, their difference ``rise`` and their ratio ``ratio``, and the local
    minima of the grid other than the centre: interior points lower than all eight neighbours. A point on
    the border is never counted: its neighbours outside the grid were not measured, so it cannot be
    shown to be a minimum."""
    if losses.dim() != 2 or losses.shape[0] != losses.shape[1] or losses.shape[0] < 3 or losses.shape[0] % 2 == 0:
        raise ValueError(f"expected a square grid with an odd side of at least 3 (a centre), got {tuple(losses.shape)}")
    n = losses.shape[0]
    inner = losses[1:-1, 1:-1]
    neighbours = torch.stack([losses[1 + dy : n - 1 + dy, 1 + dx : n - 1 + dx] for dy in (-1, 0, 1)
                              for dx in (-1, 0, 1) if dy or dx])  # fmt: skip
    is_min = inner < neighbours.min(0).values
    centre = losses[n // 2, n // 2].item()
    edge = torch.cat([losses[0], losses[-1], losses[1:-1, 0], losses[1:-1, -1]]).median().item()
    return {"centre": centre, "edge": edge, "rise": edge - centre, "ratio": edge / max(centre, 1e-12),
            "minima": int(is_min.sum().item()) - int(is_min[n // 2 - 1, n // 2 - 1].item())}  # fmt: skip


# --- Verdicts ------------------------------------------------------------------------------


def preact_verdict(runs: Runs, post: RunKey | str, pre: RunKey | str, test_images: int | None = None) -> Verdict:
    """Claim: the pre-activation net reaches a higher test accuracy than the post-activation net trained
    with the same recipe (He et al. 2016). One seed each: :func:`~resnet_lab.verdicts.proportions_claim`
    on the ``test_images`` images (default: the count the runs recorded); several seeds:
    :func:`~resnet_lab.verdicts.paired_claim` on the per-seed accuracies."""
    hs = as_lists(runs)
    if len(hs[pre]) != len(hs[post]):
        raise ValueError(f"need one run per seed on each side, got {len(hs[pre])} and {len(hs[post])}")
    acc = {k: [1 - h.final.test_error for h in hs[k]] for k in (pre, post)}
    name = f"{pre} reaches a higher test accuracy than {post}"
    what = f"{pre} - {post} test accuracy"
    seeds = len(hs[pre])
    if seeds == 1:
        n = test_images if test_images is not None else hs[pre][0].info.test_images
        if not n:
            raise ValueError("one seed: the rule needs the number of test images; the runs recorded none, so pass "
                             "test_images=len(test_set)")  # fmt: skip
        claim = proportions_claim(name, acc[pre][0], n, acc[post][0], n, what=what)
    else:
        claim = paired_claim(name, [100 * a for a in acc[pre]], [100 * a for a in acc[post]], what=what)
    tr, te = final_errors(runs, "train"), final_errors(runs, "test")
    d_test, d_train = te[pre][0] - te[post][0], tr[pre][0] - tr[post][0]
    gap = {k: te[k][0] - tr[k][0] for k in (pre, post)}
    means = f" (means over {seeds} seeds)" if seeds > 1 else ""
    text = (f"{pre} ended with {te[pre][0]:.1f}% test error and {tr[pre][0]:.1f}% training error, {post} with "
            f"{te[post][0]:.1f}% and {tr[post][0]:.1f}%{means}. ")  # fmt: skip
    epochs = len(hs[pre][0].records)
    if round(d_test, 1) == 0 or round(d_train, 1) == 0:
        text += (f"Test minus training error: {gap[pre]:.1f} points for {pre}, {gap[post]:.1f} for {post}; with one "
                 f"of the differences under 0.1 point, there is no direction to compare.")  # fmt: skip
    elif d_test * d_train > 0:
        worse, better = (pre, post) if d_test > 0 else (post, pre)
        text += (f"{worse} also ended with the higher training error, by {abs(d_train):.1f} points (test: "
                 f"{abs(d_test):.1f}): after {epochs} epoch{'s' if epochs != 1 else ''} it had fitted its "
                 f"training images less well. ")  # fmt: skip
        if gap[worse] <= gap[better]:
            text += (f"Its test minus training error, {gap[worse]:.1f} points, is no larger than {better}'s "
                     f"({gap[better]:.1f}): in this run the difference on the test images comes with one in "
                     f"fitting the training images, not in generalising from them.")  # fmt: skip
        else:
            text += (f"Its test minus training error is also the larger, {gap[worse]:.1f} points against "
                     f"{gap[better]:.1f} for {better}.")  # fmt: skip
    else:
        text += (f"The training errors differ the other way ({d_train:+.1f} points for {pre}), so the net that "
                 f"fitted its training images better tested worse: test minus training error {gap[pre]:.1f} "
                 f"points for {pre}, {gap[post]:.1f} for {post}.")  # fmt: skip
    return Verdict([claim], text + schedule_notes(runs))


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _block_name(block: tuple[int, int]) -> str:
    return f"layer{block[0]}[{block[1]}]"


def paired_over_blocks_claim(name: str, a: Sequence[float], b: Sequence[float], *, what: str = "a - b",
                             unit: str = "points") -> Claim:  # fmt: skip
    """Claim ``a > b`` from one value per block on each side, the blocks in the same order (the same
    position in two nets of one depth): the rule of :func:`~resnet_lab.verdicts.paired_claim`, over
    blocks instead of seeds. Shown when every block's difference is positive and their mean is larger
    than their sample standard deviation; not shown when the same holds the other way; else undecided.
    One block is undecided (no spread)."""
    return paired_claim(name, a, b, what=what, unit=unit, over="block")


#: Veit et al.'s "barely changes", as a margin in points of test error: a single deletion "barely changes"
#: the error when its rise stays under it. Their section 4.1 says deleting any block but a downsampling one
#: leads to no noticeable change (Figure 3(a), a ResNet-110 on CIFAR-10) and gives no number; 2 points is
#: this book's reading of "noticeable", named here so the rule can be judged.
BARELY_CHANGES = 2.0


def deletion_rises(result: Mapping) -> list[tuple[float, float]]:
    """Per single deletion of a :func:`lesion_study` result: ``(rise, standard error)`` of the test error
    over the intact net's, in points. Both nets are tested on the same images, so the standard error is
    the paired one (McNemar): ``sqrt(b + c) / n`` from the ``b`` images only the lesioned net gets wrong
    and the ``c`` only the intact net gets wrong. Without per-image results (``wrong_intact`` and
    ``wrong_single``) it falls back to the standard error of two independent proportions, which is larger
    where the two nets agree on most images."""
    n = int(result["images"])
    if "wrong_intact" in result and "wrong_single" in result:
        base = torch.as_tensor(result["wrong_intact"], dtype=torch.bool)
        out = []
        for wrong in result["wrong_single"]:
            wrong = torch.as_tensor(wrong, dtype=torch.bool)
            if wrong.shape != base.shape or len(base) != n:
                raise ValueError(f"per-image results must cover the {n} test images, got {tuple(wrong.shape)} and "
                                 f"{tuple(base.shape)}")  # fmt: skip
            b, c = int((wrong & ~base).sum()), int((base & ~wrong).sum())
            out.append((100 * (b - c) / n, 100 * math.sqrt(b + c) / n))
        return out
    e0 = result["intact"]
    return [(100 * (e - e0), 100 * math.sqrt(e * (1 - e) / n + e0 * (1 - e0) / n)) for e in result["single"]]


def lesion_verdict(study: Mapping[RunKey | str, Mapping], residual: RunKey | str, plain: RunKey | str,
                   chance: float = 0.9, z: float = 2.0, margin: float = BARELY_CHANGES,
                   runs: Runs | None = None) -> Verdict:  # fmt: skip
    """From two :func:`lesion_study` results on the same test images (nets of one depth). Two claims:

    * deleting one block raises the plain net's test error more than the
      residual net's: :func:`paired_over_blocks_claim` on the rises, block by
      block;
    * Veit et al.'s: no single deletion raises the residual net's test error
      by ``margin`` points or more (:data:`BARELY_CHANGES`), judged as an
      equivalence on each deletion's rise and its paired standard error
      (:func:`deletion_rises`): shown if every rise + ``z`` SE is below the
      margin, not shown if any rise - ``z`` SE is above it, else undecided.
      Absence of a significant rise is not enough: a rise too noisy to place
      on either side of the margin leaves the claim undecided.

    The text gives both nets' worst single deletions and the cumulative end, and, given the training
    ``runs`` of the two nets, names any the time budget shortened.
    """
    r, p = study[residual], study[plain]
    if r["blocks"] != p["blocks"]:
        raise ValueError(f"the two nets must have the same deletable blocks, got {r['blocks']} and {p['blocks']}")
    if margin <= 0:
        raise ValueError(f"margin must be positive (points of test error), got {margin!r}")
    r_rise = [100 * (e - r["intact"]) for e in r["single"]]
    p_rise = [100 * (e - p["intact"]) for e in p["single"]]
    paired = paired_over_blocks_claim(f"one deleted block raises {plain}'s test error more than {residual}'s",
                                      p_rise, r_rise, what=f"{plain} rise - {residual} rise")  # fmt: skip
    rises = {k: deletion_rises(study[k]) for k in (residual, plain)}
    n = int(r["images"])
    upper = [d + z * se for d, se in rises[residual]]
    lower = [d - z * se for d, se in rises[residual]]
    worst = max(range(len(upper)), key=upper.__getitem__)
    status = SHOWN if all(u < margin for u in upper) else NOT_SHOWN if any(lo > margin for lo in lower) else UNDECIDED
    paired_se = "wrong_intact" in r and "wrong_single" in r
    se_kind = ("paired (McNemar) standard errors, sqrt(b + c) / n from the images only one of the two nets gets "
               "wrong" if paired_se else "standard errors of two independent proportions (no per-image results)")
    veit = Claim(
        f"no single deletion raises {residual}'s test error by {margin:g} points or more (Veit et al.)",
        status,
        f"each deletion against the intact net on the same {n:,} test images, with {se_kind}: shown if every "
        f"rise + {z:g} SE < {margin:g} points, not shown if any rise - {z:g} SE > {margin:g} points, else "
        f"undecided.",  # fmt: skip
        {"margin (points)": margin, "deletions": len(upper),
         "deletions below the margin": sum(u < margin for u in upper),
         "deletions above the margin": sum(lo > margin for lo in lower),
         f"highest rise + {z:g} SE: block": _block_name(r["blocks"][worst]),
         "its rise (points)": rises[residual][worst][0], "its standard error (points)": rises[residual][worst][1]},
    )  # fmt: skip

    def worst_case(key: RunKey | str) -> str:
        res = study[key]
        j = max(range(len(res["single"])), key=res["single"].__getitem__)
        k = len(res["single"])
        above = sum(d - z * se > margin for d, se in rises[key])
        return (f"{key}: intact {100 * res['intact']:.1f}%, one block deleted {100 * min(res['single']):.1f}% to "
                f"{100 * res['single'][j]:.1f}% (worst: {_block_name(res['blocks'][j])}); {above} of {k} "
                f"deletions raise the error by more than {margin:g} points beyond {z:g} standard errors; all {k} "
                f"deleted together {100 * res['cumulative'][-1]:.1f}%")  # fmt: skip

    text = (f"Test error on {n:,} images (chance is {100 * chance:.0f}%). {worst_case(residual)}. "
            f"{worst_case(plain)}. The order of the cumulative deletions was set on {int(r['order_images']):,} "
            f"training images.")  # fmt: skip
    return Verdict([paired, veit], text + (schedule_notes(runs) if runs is not None else ""))


def landscape_verdict(surfaces: Mapping[RunKey | str, Sequence[torch.Tensor]], residual: RunKey | str,
                      plain: RunKey | str, runs: Runs | None = None) -> Verdict:  # fmt: skip
    """From each net's loss surfaces (:func:`loss_surface` losses, one per pair of random directions, the
    pairs drawn with the same seeds for both nets). Two claims, on the 2-D slices only:

    * the plain net's loss rises more from the trained weights to the slice's
      edge (median edge loss minus centre loss; the evidence also gives their
      ratio): shown if it does for every pair, not shown if it does for none,
      else undecided; one pair is undecided;
    * the plain net's slices show more local minima (besides the centre) than
      the residual net's, summed over the pairs:
      :func:`~resnet_lab.verdicts.counts_claim` (0 and 0 is undecided).

    Given the training ``runs`` of the two nets, the text names any the time budget shortened.
    """
    stats = {k: [describe_surface(s) for s in surfaces[k]] for k in (residual, plain)}
    pairs = len(stats[residual])
    if pairs != len(stats[plain]) or not pairs:
        raise ValueError(f"need the same number of surfaces for both nets, got {pairs} and {len(stats[plain])}")
    r_rise, p_rise = [s["rise"] for s in stats[residual]], [s["rise"] for s in stats[plain]]
    evidence = {f"{residual} edge - centre per pair": r_rise, f"{plain} edge - centre per pair": p_rise,
                f"{residual} edge/centre per pair": [s["ratio"] for s in stats[residual]],
                f"{plain} edge/centre per pair": [s["ratio"] for s in stats[plain]], "pairs": pairs}  # fmt: skip
    name = (f"{plain}'s loss rises more from the trained weights to the slice's edge (edge - centre) than "
            f"{residual}'s")  # fmt: skip
    if pairs == 1:
        steeper = Claim(name, UNDECIDED, "one pair of directions: the rule needs two or more pairs to agree.", evidence)
    else:
        higher = [b > a for a, b in zip(r_rise, p_rise)]
        status = SHOWN if all(higher) else NOT_SHOWN if not any(higher) else UNDECIDED
        steeper = Claim(name, status, f"over {pairs} pairs of random directions: shown if the plain net's "
                        f"median edge loss minus centre loss is the larger for every pair, not shown if for none, "
                        f"else undecided.",
                        evidence)  # fmt: skip
    minima = counts_claim(f"{plain}'s slices show more local minima than {residual}'s",
                          sum(s["minima"] for s in stats[plain]), sum(s["minima"] for s in stats[residual]),
                          what="local-minima count")  # fmt: skip

    def described(key: RunKey | str) -> str:
        st = stats[key]
        edges, rises = [s["edge"] for s in st], [s["ratio"] for s in st]
        return (f"{key}'s loss rises from {st[0]['centre']:.2f} at the trained weights to a median "
                f"{_num(min(edges))} to {_num(max(edges))} at the edge ({_num(min(rises))} to {_num(max(rises))} "
                f"times)")  # fmt: skip

    text = (f"Over {pairs} pairs of random directions, {described(residual)}; {described(plain)}. "
            f"Local minima besides the centre (interior grid points), over all pairs: "
            f"{sum(s['minima'] for s in stats[residual])} for {residual}, {sum(s['minima'] for s in stats[plain])} "
            f"for {plain}.")  # fmt: skip
    return Verdict([steeper, minima], text + (schedule_notes(runs) if runs is not None else ""))

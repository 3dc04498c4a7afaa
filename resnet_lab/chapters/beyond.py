"""Chapter "Beyond the original ResNet": pre-activation, zero-init, lesions and loss landscapes.

* :func:`networks` and :func:`zero_init_networks` build the chapter's nets
  from its sizes; :func:`plan` enumerates them for the chapter box.

* :func:`delete_block` and :func:`lesion_study`: remove residual blocks from
  a trained network, one at a time and cumulatively, as in Veit et al.
  (2016): a residual block falls back to its shortcut; a plain block has
  nothing to fall back on and becomes the identity.
* :func:`loss_along_line` and :func:`loss_surface`: the loss between two
  sets of weights, and on a 2-D slice spanned by filter-normalised random
  directions (Li et al. 2018).
* :func:`identity_gap`: how far each block is from the identity, at
  initialisation with ``zero_init_residual`` (Goyal et al. 2017).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import models as M
from .. import sizes as S
from ..history import RunKey
from ..sizes import PlannedRun, input_shape, split_size
from ..verdicts import Runs, Verdict, as_lists, final_errors

__all__ = [
    "Sizes", "SIZES", "networks", "zero_init_networks", "plan", "preact_verdict", "zero_init_verdict",
    "lesion_verdict", "landscape_verdict", "deletable_blocks", "delete_block", "lesion_study", "identity_gap",
    "filter_normalized_direction", "loss_along_line", "loss_surface", "batch_loss"
]  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Sizes:
    """Post- and pre-activation and plain nets of ``depth`` on ``dataset``; zero-init's first epochs;
    gradients at ``gradient_depth``; a loss landscape of ``landscape_points`` per side."""

    dataset: str = S.fixed()
    depth: int = S.fixed()
    train: int | None = S.images()
    test: int | None = S.images()
    epochs: int = S.epochs()
    zero_init_epochs: int = S.epochs()
    gradient_depth: int = S.fixed()
    landscape_points: int = S.points(at_most=3)  # a grid of loss evaluations per side
    landscape_images: int = S.images()


SIZES = {
    "smoke": Sizes(dataset="fashion_mnist", depth=8, train=256, test=128, epochs=1, zero_init_epochs=1,
                   gradient_depth=20, landscape_points=3, landscape_images=64),
    "cpu": Sizes(dataset="fashion_mnist", depth=32, train=2_000, test=1_000, epochs=10, zero_init_epochs=2,
                 gradient_depth=110, landscape_points=11, landscape_images=256),
    "gpu": Sizes(dataset="cifar10", depth=56, train=None, test=None, epochs=15, zero_init_epochs=2,
                 gradient_depth=110, landscape_points=21, landscape_images=1_000),
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
    test passes of the lesion study and the landscape's loss evaluations."""
    shape = input_shape(sizes.dataset)
    train, test = split_size(sizes.train, sizes.dataset, True), split_size(sizes.test, sizes.dataset, False)
    runs = [PlannedRun(str(k), net, shape, train * sizes.epochs, test * sizes.epochs)
            for k, net in networks(sizes, shape[0]).items()]  # fmt: skip
    runs += [PlannedRun(str(k), net, shape, train * sizes.zero_init_epochs, test * sizes.zero_init_epochs)
             for k, net in zero_init_networks(sizes, shape[0]).items()]  # fmt: skip
    blocks = 3 * (sizes.depth - 2) // 6
    lesions = 2 * (blocks + blocks)  # one block at a time, then cumulative, for two nets
    points_ = sizes.landscape_points
    landscape = 2 * (points_**2 + points_) * sizes.landscape_images
    net = M.cifar_resnet(sizes.depth, in_channels=shape[0])
    return runs + [PlannedRun("lesions and landscapes", net, shape, 0, lesions * test + landscape,
                              runner="other")]


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
def _error(model: nn.Module, batches: Iterable) -> float:
    with M.evaluating(model):
        wrong = n = 0
        for x, y in batches:
            wrong += (model(x).argmax(1) != y).sum().item()
            n += len(y)
    return wrong / n


def lesion_study(model: M.ResNet, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, list]:
    """Test error (fraction) of ``model``: intact, with each deletable block removed alone, and with the
    k least harmful of them removed together (k = 1 ... all), the order set by the single deletions.
    Returns ``{"blocks", "single", "order", "cumulative", "intact"}``."""
    blocks = deletable_blocks(model)
    single = [_error(delete_block(model, s, i), batches) for s, i in blocks]
    order = [blocks[j] for j in sorted(range(len(blocks)), key=single.__getitem__)]
    cumulative, current = [], model
    for s, i in order:
        current = delete_block(current, s, i)
        cumulative.append(_error(current, batches))
    return {"blocks": blocks, "single": single, "order": order, "cumulative": cumulative,
            "intact": _error(model, batches)}


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


def batch_loss(model: nn.Module, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    """Mean cross-entropy over ``batches``, in eval mode, without gradients."""
    with torch.no_grad(), M.evaluating(model):
        total = sum(F.cross_entropy(model(x), y, reduction="sum").item() for x, y in batches)
    return total / sum(len(y) for _, y in batches)


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


def loss_along_line(model: nn.Module, start: nn.Module, batches: list, points: int = 21,
                    extend: float = 0.25) -> tuple[list[float], list[float]]:  # fmt: skip
    """Loss on ``batches`` along the straight line from ``start``'s weights (alpha = 0) to ``model``'s
    (alpha = 1), from ``-extend`` to ``1 + extend``. BN statistics are ``model``'s throughout."""
    probe = copy.deepcopy(model)
    end = [p.detach().clone() for p in model.parameters()]
    delta = [e - s.detach() for e, s in zip(end, start.parameters())]
    alphas = torch.linspace(-extend, 1 + extend, points).tolist()
    losses = []
    for a in alphas:
        _with_offset(probe, end, (a - 1.0, delta))
        losses.append(batch_loss(probe, batches))
    return alphas, losses


def loss_surface(model: nn.Module, batches: list, points: int = 11, span: float = 1.0,
                 seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Loss on a ``points`` x ``points`` grid around ``model``'s weights, along two filter-normalised
    random directions, each coordinate from ``-span`` to ``span``. Returns (coordinates, losses)."""
    probe = copy.deepcopy(model)
    base = [p.detach().clone() for p in model.parameters()]
    d1, d2 = filter_normalized_direction(model, seed), filter_normalized_direction(model, seed + 1)
    coords = torch.linspace(-span, span, points)
    losses = torch.empty(points, points)
    for i, a in enumerate(coords.tolist()):
        for j, b in enumerate(coords.tolist()):
            _with_offset(probe, base, (a, d1), (b, d2))
            losses[j, i] = batch_loss(probe, batches)
    return coords, losses


# --- Verdicts ------------------------------------------------------------------------------


def preact_verdict(runs: Runs, post: str, pre: str) -> Verdict:
    """Post- against pre-activation nets trained with the same recipe (one seed: no spread measured)."""
    tr, te = final_errors(runs, "train"), final_errors(runs, "test")
    diff = te[post][0] - te[pre][0]
    text = (f"{pre} ended with {te[pre][0]:.1f}% test error ({tr[pre][0]:.1f}% training), {post} with "
            f"{te[post][0]:.1f}% ({tr[post][0]:.1f}% training): pre-activation {'lower' if diff > 0 else 'higher'} "
            f"by {abs(diff):.1f} points in this run.")  # fmt: skip
    if te[pre][2] == 1:
        text += " One seed each, so a difference of a point or two may be the seed's, not the block's."
    return Verdict(diff > 0, text)


def zero_init_verdict(runs: Runs, zero: str, default: str) -> Verdict:
    """The first epochs with and without zero-initialised residual branches: training loss per epoch, and
    the highest loss of any logged stretch of steps (where an unstable start shows)."""
    h0, h1 = (as_lists(runs)[n][0] for n in (zero, default))
    first = [(r0.train_loss, r1.train_loss) for r0, r1 in zip(h0.records, h1.records)]
    lower = sum(a < b for a, b in first)
    losses = "; ".join(f"epoch {i + 1}: {a:.3f} vs {b:.3f}" for i, (a, b) in enumerate(first))
    peak0, peak1 = (max(p["train_loss"] for p in h.steps) for h in (h0, h1))
    text = (f"Training loss with zero-initialised residual branches against the default initialisation, {losses}: "
            f"zero-init was lower in {lower} of {len(first)} epochs. The highest loss over any logged stretch of "
            f"steps was {peak0:.2f} with zero-init and {peak1:.2f} without.")  # fmt: skip
    return Verdict(lower == len(first), text)


def lesion_verdict(study: Mapping[str, Mapping[str, Sequence[float] | float]], residual: str, plain: str,
                   chance: float = 0.9) -> Verdict:  # fmt: skip
    """From two :func:`lesion_study` results: did the residual net degrade smoothly
    when single blocks were deleted, and the plain net collapse?"""
    r, p = study[residual], study[plain]
    r_rise = [100 * (e - r["intact"]) for e in r["single"]]
    p_rise = [100 * (e - p["intact"]) for e in p["single"]]
    r_mean, p_mean = sum(r_rise) / len(r_rise), sum(p_rise) / len(p_rise)
    p_worst = 100 * max(p["single"])
    text = (f"Deleting one block at a time raised {residual}'s test error by {r_mean:.1f} points on average "
            f"(at most {max(r_rise):.1f}, from {100 * r['intact']:.1f}%), and {plain}'s by {p_mean:.1f} points "
            f"(at most {max(p_rise):.1f}, from {100 * p['intact']:.1f}%; chance is {100 * chance:.0f}%).")  # fmt: skip
    holds = r_mean * 3 < p_mean
    text += (" The residual net degraded smoothly and the plain net did not." if holds else
             " This run does not show a clear contrast (the residual net's average rise is not under a third of "
             "the plain net's).")  # fmt: skip
    return Verdict(holds, text + f" Worst single deletion in {plain}: {p_worst:.1f}% error.")


def landscape_verdict(surfaces: Mapping[str, object], residual: str, plain: str) -> Verdict:
    """From two loss surfaces (:func:`loss_surface` losses): local minima on the grid
    (other than the centre) and how far the loss rises from the centre to the grid's edge."""
    import torch

    def describe(losses: torch.Tensor) -> tuple[int, float, float]:
        n = losses.shape[0]
        padded = torch.nn.functional.pad(losses[None, None], (1, 1, 1, 1), value=float("inf"))[0, 0]
        neighbours = torch.stack([padded[1 + dy : 1 + dy + n, 1 + dx : 1 + dx + n] for dy in (-1, 0, 1)
                                  for dx in (-1, 0, 1) if dy or dx])  # fmt: skip
        minima = (losses < neighbours.min(0).values).sum().item() - int(losses[n // 2, n // 2] <= losses.min())
        edge = torch.cat([losses[0], losses[-1], losses[:, 0], losses[:, -1]]).median().item()
        return int(minima), losses[n // 2, n // 2].item(), edge

    r_min, r_centre, r_edge = describe(surfaces[residual])
    p_min, p_centre, p_edge = describe(surfaces[plain])
    text = (f"On the grid, {residual}'s loss rises from {r_centre:.2f} at the trained weights to a median "
            f"{r_edge:.2f} at the edge ({r_edge / max(r_centre, 1e-6):.0f} times); {plain}'s rises from "
            f"{p_centre:.2f} to {p_edge:.2f} ({p_edge / max(p_centre, 1e-6):.0f} times).")  # fmt: skip
    steeper = p_edge / max(p_centre, 1e-6) > r_edge / max(r_centre, 1e-6)
    if p_min > r_min:
        minima = f" and shows more local minima ({p_min} against {r_min})"
    elif p_min == r_min:
        minima = f"; both show {p_min} local minima besides the centre"
    else:
        minima = f", but shows fewer local minima ({p_min} against {r_min})"
    text += f" The plain net's surface is {'the' if steeper else 'not the'} steeper{minima}."
    return Verdict(steeper and p_min >= r_min, text)

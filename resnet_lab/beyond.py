"""Measurements behind the chapter "Beyond the original ResNet".

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
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from . import models as M

__all__ = ["deletable_blocks", "delete_block", "lesion_study", "identity_gap", "filter_normalized_direction",
           "loss_along_line", "loss_surface", "batch_loss"]  # fmt: skip


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

"""Chapter "Residual learning": small measurements of why F(x) + x trains where a plain stack does not.

* :func:`gradient_norms`: per-layer gradient norms of a network at
  initialisation, to compare plain, residual and pre-activation stacks.
* :func:`learn_identity`: how fast a plain stack and a residual block learn
  to reproduce their input (the paper's argument for F(x) = H(x) - x).
* :func:`shattered_gradients` and :func:`autocorrelation`: gradients of a
  scalar network along a 1-D sweep of inputs (Balduzzi et al. 2017), with
  :func:`shattering` averaging them over seeds.
* :func:`gradient_runs` lists the networks whose gradients the chapter
  measures; :func:`plan` enumerates them for the chapter box.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import models as M
from .. import sizes as S
from ..sizes import PlannedRun, input_shape

__all__ = [
    "Sizes", "SIZES", "KINDS", "gradient_runs", "gradient_network", "plan", "gradient_norms",
    "cifar_gradient_norms", "learn_identity", "ScalarNet", "shattered_gradients", "autocorrelation", "shattering"
]  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Sizes:
    """Gradient norms at ``depths`` on a ``batch`` of images; the identity task for ``identity_steps``;
    shattered gradients of a ``shatter_depth``-layer net at ``shatter_points`` inputs, over seeds."""

    depths: tuple[int, ...] = S.fixed()
    batch: int = S.images()
    identity_steps: int = S.steps()
    shatter_depth: int = S.fixed()
    shatter_points: int = S.points(at_most=64)  # a sweep: the autocorrelation needs its interior
    shatter_seeds: int = S.fixed()


SIZES = {
    "smoke": Sizes(depths=(8, 20), batch=16, identity_steps=30, shatter_depth=10, shatter_points=64,
                   shatter_seeds=2),
    "cpu": Sizes(depths=(8, 20, 56, 110), batch=64, identity_steps=300, shatter_depth=50, shatter_points=256,
                 shatter_seeds=5),
    "gpu": Sizes(depths=(8, 20, 56, 110), batch=64, identity_steps=300, shatter_depth=50, shatter_points=256,
                 shatter_seeds=5),
    "paper": Sizes(depths=(8, 20, 56, 110), batch=128, identity_steps=1_000, shatter_depth=50, shatter_points=256,
                   shatter_seeds=10),
}  # fmt: skip

#: The three stacks compared: plain, residual (the 2015 block) and pre-activation (He et al. 2016).
KINDS = ("plain", "residual", "preact")


def gradient_runs(sizes: Sizes) -> list[tuple[str, int]]:
    """``(kind, depth)`` of every network whose gradient norms the chapter measures, in its order."""
    return [(kind, depth) for depth in sizes.depths for kind in KINDS]


def gradient_network(depth: int, kind: str, in_channels: int = 1, num_classes: int = 10) -> M.ResNet:
    """A freshly initialised CIFAR-family network of ``kind`` (one of :data:`KINDS`) and ``depth``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return M.cifar_resnet(depth, plain=kind == "plain", preact=kind == "preact", in_channels=in_channels,
                          num_classes=num_classes)  # fmt: skip


def plan(sizes: Sizes) -> list[PlannedRun]:
    """One forward and backward pass of a batch per :func:`gradient_runs` network (the small models of
    the identity task and the shattered gradients cost next to nothing)."""
    shape = input_shape("fashion_mnist")
    return [PlannedRun(f"{kind}-{depth} gradient", gradient_network(depth, kind), shape, sizes.batch, 0, runner="other")
            for kind, depth in gradient_runs(sizes)]  # fmt: skip


def gradient_norms(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """Norm of the loss gradient w.r.t. each main-path convolution's weights, input to output.

    One forward and backward pass of cross-entropy in training mode (batch
    statistics in BN), as at the first step of training.
    """
    model.train()
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    norms = [
        m.weight.grad.norm().item()
        for name, m in model.named_modules()
        if isinstance(m, nn.Conv2d) and ".downsample" not in name
    ]
    model.zero_grad(set_to_none=True)
    return norms


def cifar_gradient_norms(depth: int, kind: str, x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> list[float]:
    """:func:`gradient_norms` of a freshly initialised CIFAR-family network of ``kind``
    ``"plain"``, ``"residual"`` (post-activation, the 2015 block) or ``"preact"``."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    torch.manual_seed(seed)
    model = gradient_network(depth, kind, in_channels=x.shape[1], num_classes=int(y.max()) + 1)
    return gradient_norms(model, x, y)


class _Stack(nn.Module):
    """``layers`` x (linear + ReLU) of width ``width``; optionally wrapped as x + F(x)."""

    def __init__(self, width: int, layers: int, residual: bool) -> None:
        super().__init__()
        body = []
        for i in range(layers):
            body.append(nn.Linear(width, width))
            if i < layers - 1:
                body.append(nn.ReLU())
        self.body = nn.Sequential(*body)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


def learn_identity(width: int = 32, layers: int = 2, steps: int = 300, lr: float = 0.01,
                   seed: int = 0) -> dict[str, list[float]]:  # fmt: skip
    """Train a plain stack and a residual block to output their input; MSE per step.

    Both have the same layers and initialisation. The residual block only
    has to drive F(x) to zero, which it nearly does at initialisation; the
    plain stack has to build the identity out of ReLU layers.
    """
    curves = {}
    for name, residual in (("plain", False), ("residual", True)):
        torch.manual_seed(seed)
        net = _Stack(width, layers, residual)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        g = torch.Generator().manual_seed(seed + 1)
        losses = []
        for _ in range(steps):
            x = torch.randn(128, width, generator=g)
            loss = F.mse_loss(net(x), x)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
        curves[name] = losses
    return curves


class ScalarNet(nn.Module):
    """Scalar in, scalar out: ``depth`` hidden layers of ``width`` ReLU units with BN.

    The first layer is h = relu(W0 x). Every further layer updates h as
    h <- relu(BN(W h)) (plain) or h <- h + relu(BN(W h)) (``residual=True``):
    the residual form of Balduzzi et al. (2017), Fig. 1, with the addition
    last. The output is a linear read-out of the last h.
    """

    def __init__(self, depth: int, width: int = 200, residual: bool = False) -> None:
        super().__init__()
        self.inp = nn.Linear(1, width)
        self.hidden = nn.ModuleList(nn.Linear(width, width) for _ in range(depth - 1))
        self.norms = nn.ModuleList(nn.BatchNorm1d(width) for _ in range(depth - 1))
        self.out = nn.Linear(width, 1)
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.inp(x))
        for lin, bn in zip(self.hidden, self.norms):
            update = torch.relu(bn(lin(h)))
            h = h + update if self.residual else update
        return self.out(h)


def shattered_gradients(depth: int, residual: bool, points: int = 256, width: int = 200,
                        seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Inputs x in [-2, 2] and the gradient df/dx of a fresh :class:`ScalarNet` at each, input by input.

    BatchNorm's statistics are those of the whole sweep, computed once and
    then fixed (evaluation mode): each point's gradient then depends on that
    point alone, not on the other points of the batch.
    """
    torch.manual_seed(seed)
    net = ScalarNet(depth, width, residual)
    x = torch.linspace(-2, 2, points).unsqueeze(1)
    for bn in net.norms:
        bn.momentum = None  # a cumulative average: after one pass, the statistics of that pass
    with torch.no_grad():
        net.train()(x)
    net.eval()
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(net(x).sum(), x)
    return x.detach().squeeze(1), grad.squeeze(1)


def autocorrelation(g: torch.Tensor, max_lag: int = 50) -> torch.Tensor:
    """Normalised autocorrelation of a 1-D signal for lags 0..max_lag (1.0 at lag 0)."""
    g = (g - g.mean()) / (g.std() + 1e-12)
    n = len(g)
    return torch.stack([(g[: n - k] * g[k:]).mean() for k in range(max_lag + 1)])


def shattering(depth: int, residual: bool, seeds: int = 5, points: int = 256, interior: float = 0.8,
               lags: tuple[int, ...] = (1, 5), width: int = 200) -> dict[int, tuple[float, float]]:  # fmt: skip
    """Autocorrelation of the input-gradient at ``lags``, over the middle ``interior`` of the sweep:
    ``{lag: (mean over seeds, sample standard deviation)}``."""
    cut = int(points * (1 - interior) / 2)
    values: dict[int, list[float]] = {lag: [] for lag in lags}
    for seed in range(seeds):
        _, g = shattered_gradients(depth, residual, points, width, seed)
        corr = autocorrelation(g[cut : points - cut], max(lags))
        for lag in lags:
            values[lag].append(corr[lag].item())
    return {lag: (statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else 0.0) for lag, v in values.items()}

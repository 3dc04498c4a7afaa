"""Small measurements behind the chapter "Residual learning".

* :func:`gradient_norms`: per-layer gradient norms of a network at
  initialisation, to compare plain and residual stacks of growing depth.
* :func:`learn_identity`: how fast a plain stack and a residual block learn
  to reproduce their input (the paper's argument for F(x) = H(x) - x).
* :func:`shattered_gradients` and :func:`autocorrelation`: gradients of a
  scalar network along a 1-D sweep of inputs (Balduzzi et al. 2017).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import models as M

__all__ = ["gradient_norms", "learn_identity", "ScalarNet", "shattered_gradients", "autocorrelation"]


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


def cifar_gradient_norms(depth: int, plain: bool, x: torch.Tensor, y: torch.Tensor, seed: int = 0) -> list[float]:
    """:func:`gradient_norms` of a freshly initialised CIFAR-family network."""
    torch.manual_seed(seed)
    model = M.cifar_resnet(depth, plain=plain, in_channels=x.shape[1], num_classes=int(y.max()) + 1)
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

    With ``residual=True`` every hidden layer after the first is a residual
    block h + BN(W relu(h))-style update, as in Balduzzi et al. (2017), Fig. 1.
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
            update = bn(lin(h))
            h = h + torch.relu(update) if self.residual else torch.relu(update)
        return self.out(h)


def shattered_gradients(depth: int, residual: bool, points: int = 256, width: int = 200,
                        seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Inputs x in [-2, 2] and the gradient d f / d x of a fresh :class:`ScalarNet` at each."""
    torch.manual_seed(seed)
    net = ScalarNet(depth, width, residual).train()
    x = torch.linspace(-2, 2, points).unsqueeze(1).requires_grad_(True)
    (grad,) = torch.autograd.grad(net(x).sum(), x)
    return x.detach().squeeze(1), grad.squeeze(1)


def autocorrelation(g: torch.Tensor, max_lag: int = 50) -> torch.Tensor:
    """Normalised autocorrelation of a 1-D signal for lags 0..max_lag (1.0 at lag 0)."""
    g = (g - g.mean()) / (g.std() + 1e-12)
    n = len(g)
    return torch.stack([(g[: n - k] * g[k:]).mean() for k in range(max_lag + 1)])

"""Exercises of the chapter "Residual learning"."""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import models as M
from ..chapters.residual import gradient_norms as reference_gradient_norms
from .engine import Feedback, Mistake, check_choice, check_function, check_module, check_number, exercise

CHAPTER = "residual"


class Residual(nn.Module):
    """The reference: wraps a module ``f`` and returns x + f(x)."""

    def __init__(self, f: nn.Module) -> None:
        super().__init__()
        self.f = f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.f(x)


class _OnlyF(Residual):
    def forward(self, x):
        return self.f(x)


class _ReluAfter(Residual):
    def forward(self, x):
        return torch.relu(x + self.f(x))


class _Doubled(Residual):
    def forward(self, x):
        return x + self.f(x) + x


RESIDUAL_MISTAKES = (
    Mistake("it returns f(x) without adding x", _OnlyF, "The wrapper's output is x + f(x)."),
    Mistake("it applies a ReLU after the addition", _ReluAfter,
            "Return x + f(x) as it is: a ReLU after the sum makes the block the identity only for x >= 0."),
    Mistake("it adds x twice", _Doubled, "Add the input once: x + f(x)."),
)


def _zero_linear() -> nn.Module:
    layer = nn.Linear(8, 8)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


@exercise(CHAPTER, "A residual wrapper x + F(x) that starts as the identity", "code")
def residual_wrapper(student: object) -> Feedback:
    """A module class ``Residual(f)`` whose output is ``x + f(x)``: with f's weights at zero it is the identity."""
    torch.manual_seed(0)
    layers = [
        (nn.Linear(8, 8),),
        (nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 8)),),
        (nn.Sequential(M.conv3x3(4, 4), nn.BatchNorm2d(4)),),
        (_zero_linear(),),
    ]
    def input_shape(args: tuple) -> tuple:
        convolutional = any(isinstance(m, nn.Conv2d) for m in args[0].modules())
        return (3, 4, 5, 5) if convolutional else (3, 8)

    return check_module(
        student, Residual, layers, input_shape, "your wrapper", RESIDUAL_MISTAKES,
        hint="Store f as an attribute in __init__ (self.f = f) and return x + self.f(x) in forward.",
    )  # fmt: skip


def _tiny_batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(8, 1, 12, 12, generator=g), torch.arange(8) % 4


def _norms_of(fn):
    def run(depth: int, plain: bool):
        torch.manual_seed(depth)
        model = M.cifar_resnet(depth, "B", plain=plain, in_channels=1, num_classes=4)
        x, y = _tiny_batch()
        return fn(model, x, y)

    return run


def _with_projections(model, x, y):
    model.train()
    model.zero_grad()
    nn.functional.cross_entropy(model(x), y).backward()
    return [m.weight.grad.norm().item() for m in model.modules() if isinstance(m, nn.Conv2d)]


def _close_lists(a, b) -> bool:
    a = [float(v) for v in a]
    return len(a) == len(b) and all(math.isclose(u, v, rel_tol=1e-4, abs_tol=1e-8) for u, v in zip(a, b))


@exercise(CHAPTER, "Per-layer gradient norms at initialisation", "code")
def gradient_norms(student: object) -> Feedback:
    """A function ``(model, x, y) -> list of floats``: the norm of the cross-entropy gradient w.r.t. each
    main-path convolution's weight, input to output, after one forward and backward pass in training mode."""
    if not callable(student):
        return Feedback(False, f"Expected a function (model, x, y) -> list, got {type(student).__name__}.")
    return check_function(
        _norms_of(student), _norms_of(reference_gradient_norms), [(8, False), (8, True), (14, False)],
        "your gradient_norms", [Mistake("it includes the projection shortcuts' convolutions",
                                        _norms_of(_with_projections),
                                        "Skip the convolutions inside .downsample: they are not on the main path.")],
        hint="model.train(); loss = F.cross_entropy(model(x), y); loss.backward(); then for every nn.Conv2d whose "
        "name has no '.downsample', take m.weight.grad.norm().item().",
        same=_close_lists,
    )  # fmt: skip


@exercise(CHAPTER, "Gradient through 10 residual blocks", "number")
def residual_gradient(answer: object) -> Feedback:
    """Scalar toy: 10 residual blocks, each with dF/dx = 0.1. What is d output / d input?"""
    return check_number(
        answer, 1.1**10, "the gradient through 10 residual blocks with dF/dx = 0.1",
        hint="Each block is y = x + F(x), so dy/dx = 1 + dF/dx; the chain rule multiplies the 10 factors.",
    )  # fmt: skip


@exercise(CHAPTER, "Gradient through 10 plain layers", "number")
def plain_gradient(answer: object) -> Feedback:
    """The same 10 layers without shortcuts: each layer's derivative is 0.1."""
    return check_number(
        answer, 0.1**10, "the gradient through 10 plain layers with derivative 0.1",
        hint="Without the shortcut, dy/dx = dF/dx for each layer; multiply ten of them (it is tiny).",
    )  # fmt: skip


SHATTERED_OPTIONS = {
    "A": "the shallow network",
    "B": "the deep plain network",
    "C": "the deep residual network",
}


@exercise(CHAPTER, "Whose gradients are shattered", "choice")
def shattered(answer: object) -> Feedback:
    """Whose input-gradient looks most like white noise (autocorrelation falls fastest)?"""
    return check_choice(
        answer, "B", SHATTERED_OPTIONS, "the network with the most shattered gradients",
        hint="Look at the autocorrelation plot: which curve drops to about zero after a lag of one or two?",
    )  # fmt: skip

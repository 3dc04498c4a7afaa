"""Exercises of the chapter "Residual learning"."""

from __future__ import annotations

import math

import torch
from torch import nn

from .. import models as M
from ..chapters.residual import gradient_norms as _reference_gradient_norms
from . import own_run
from .engine import Feedback, Mistake, check_choice, check_function, check_module, check_number, check_written, exercise
from .engine import hint as hint  # re-exported: ex.hint(ex.<exercise>) or ex.hint("<exercise>", level=2)

CHAPTER = "residual"


class _Residual(nn.Module):
    """The reference: wraps a module ``f`` and returns x + f(x)."""

    def __init__(self, f: nn.Module) -> None:
        super().__init__()
        self.f = f

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.f(x)


class _OnlyF(_Residual):
    def forward(self, x):
        return self.f(x)


class _ReluAfter(_Residual):
    def forward(self, x):
        return torch.relu(x + self.f(x))


class _Doubled(_Residual):
    def forward(self, x):
        return x + self.f(x) + x


RESIDUAL_MISTAKES = (
    Mistake("it returns f(x) without adding x", _OnlyF,
            "Your wrapper returns what f computes and drops the input: the shortcut adds the input back."),
    Mistake("it applies a ReLU after the addition", _ReluAfter,
            "Apply nothing after the sum: a ReLU there makes the wrapper the identity only for non-negative "
            "inputs."),
    Mistake("it adds x twice", _Doubled, "The shortcut adds the input once; yours adds it twice."),
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
        student, _Residual, layers, input_shape, "your wrapper", RESIDUAL_MISTAKES,
        hint=("See \"The reformulation\" (Build): the block outputs its input plus what f computes from it. "
              "What must __init__ keep, so that forward can call f and f's weights count as the wrapper's?",
              "Register f as a submodule of the wrapper (assign it to an attribute in __init__), so its weights "
              "are the wrapper's parameters. In forward, add the input to f applied to the input, and apply "
              "nothing after the sum: with f's weights at zero the output then equals the input."),
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


GRADIENT_NORMS_MISTAKES = (
    Mistake("it includes the projection shortcuts' convolutions", _norms_of(_with_projections),
            "Leave out the convolutions of the projection shortcuts (.downsample): they are beside the main path, "
            "not on it."),
)


@exercise(CHAPTER, "Per-layer gradient norms at initialisation", "code")
def gradient_norms(student: object) -> Feedback:
    """A function ``(model, x, y) -> list of floats``: the norm of the cross-entropy gradient w.r.t. each
    main-path convolution's weight, input to output, after one forward and backward pass in training mode."""
    hint = ("See \"Gradient norms at initialisation\" (Run): one forward and one backward pass of the loss, then "
            "read the gradient of each convolution's weight. Which convolutions are on the main path?",
            "Put the model in training mode and clear old gradients; backpropagate the cross-entropy of its outputs "
            "against y; then go over the named submodules in order, keep the 2-D convolutions whose name does not "
            "mark them as a projection shortcut, and take the norm of each one's weight gradient as a Python "
            "float.")  # fmt: skip
    if not callable(student):
        return Feedback(False, f"Expected a function (model, x, y) -> list, got {type(student).__name__}.", hint)
    return check_function(
        _norms_of(student), _norms_of(_reference_gradient_norms), [(8, False), (8, True), (14, False)],
        "your gradient_norms", GRADIENT_NORMS_MISTAKES, hint=hint, same=_close_lists,
    )  # fmt: skip


@exercise(CHAPTER, "Gradient through 10 residual blocks", "number")
def residual_gradient(answer: object) -> Feedback:
    """Scalar toy: 10 residual blocks, each with dF/dx = 0.1. What is d output / d input?"""
    return check_number(
        answer, 1.1**10, "the gradient through 10 residual blocks with dF/dx = 0.1",
        hint=("See \"Gradients through a stack\" (Build): what is the derivative of one residual block, "
              "y = x + F(x), with respect to its input?",
              "Each block contributes a factor of 1 + dF/dx, and the chain rule multiplies the factors of all the "
              "blocks. A smaller example: 3 blocks with dF/dx = 0.5 give 1.5 cubed, about 3.4."),
    )  # fmt: skip


@exercise(CHAPTER, "Gradient through 10 plain layers", "number")
def plain_gradient(answer: object) -> Feedback:
    """The same 10 layers without shortcuts: each layer's derivative is 0.1."""
    return check_number(
        answer, 0.1**10, "the gradient through 10 plain layers with derivative 0.1",
        hint=("See \"Gradients through a stack\" (Build): without the shortcut, what is left of each layer's "
              "derivative?",
              "Each layer contributes its own derivative alone, and the chain rule multiplies them. A smaller "
              "example: 3 layers with derivative 0.5 give 0.5 cubed, 0.125. Ten factors of 0.1 give a tiny "
              "number: write it in scientific notation (as in 2.5e-4)."),
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
        hint=("See \"Shattered gradients\" (Run): white noise is uncorrelated with itself at every non-zero shift.",
              "In the table (or the autocorrelation plot), look for the network whose autocorrelation is already "
              "about zero at lag 1, one step of the input sweep."),
    )  # fmt: skip


# --- Written -----------------------------------------------------------------------------------

#: What a written interpretation of the gradient measurement is graded on, with the points for each.
RUBRIC_GRADIENTS = (
    ("Reads the direction: in the deep plain nets with BatchNorm the gradient norm grows from the output towards "
     "the input (it explodes), it does not vanish; the ratio is modest at 8 and 20 layers and huge at 56 and "
     "110.", 1),
    ("Explains why only the order of magnitude of the plain ratio counts: rounding, amplified over so many "
     "layers, moves it by tens of percent from one machine or run to the next.", 1),
    ("Compares with the residual nets: their first-to-last ratio stays small (about 1 to 16) at every depth, "
     "because the shortcut passes the gradient on (gated by the ReLU after the addition in the 2015 block).", 1),
    ("Relates it to He et al. without overreading: their 'healthy' gradients are those of plain nets of 18 and 34 "
     "layers on ImageNet, and this is a measurement at initialisation, not during training, so it neither "
     "confirms nor refutes their conjecture about convergence rates.", 1),
)


@exercise(CHAPTER, "Interpret the measurement: exploding, not vanishing", "written")
def gradient_ratios(answer: object) -> Feedback:
    """A few sentences on the first-to-last gradient ratios at initialisation: which way the plain nets'
    gradients go, why only the order of magnitude of the largest ratio is meaningful, how the residual nets
    compare, and what this says (and does not say) about He et al.'s section 4.1."""
    return check_written(
        answer, "the question on the gradient ratios", own_run.rubric_lines(RUBRIC_GRADIENTS), min_words=50,
        hint=("Read the ratio table under 'Gradient norms at initialisation' and the first point of 'Read the "
              "result'; the section 'What BatchNorm does at initialisation' gives He et al.'s statement.",
              "Cover what the rubric asks: the direction of the plain nets' gradients, why the largest ratio is "
              "only an order of magnitude, the residual nets' ratios, and the limits of a measurement at "
              "initialisation."),
    )  # fmt: skip

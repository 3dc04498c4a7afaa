"""Exercises of the chapter "The same ResNet in Keras"."""

from __future__ import annotations

import numpy as np
import torch

from .engine import Feedback, Mistake, check_choice, check_function, exercise

CHAPTER = "keras"


def _kernel(weight: torch.Tensor) -> np.ndarray:
    return weight.detach().permute(2, 3, 1, 0).numpy()


def _swapped(weight: torch.Tensor) -> np.ndarray:
    return weight.detach().permute(2, 3, 0, 1).numpy()


def _same_array(a, b) -> bool:
    a = a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    return a.shape == b.shape and np.allclose(a, b)


@exercise(CHAPTER, "A PyTorch kernel in Keras' layout", "code")
def kernel_to_keras(student: object) -> Feedback:
    """A function ``(weight) -> array``: a PyTorch convolution weight (out, in, kh, kw) as a Keras kernel."""
    g = torch.Generator().manual_seed(0)
    cases = [(torch.randn(8, 4, 3, 3, generator=g),), (torch.randn(16, 3, 1, 1, generator=g),),
             (torch.randn(5, 7, 3, 2, generator=g),)]  # fmt: skip
    return check_function(
        student, _kernel, cases, "your kernel_to_keras",
        [Mistake("input and output channels are swapped", _swapped,
                 "Keras' order is (height, width, in, out): permute(2, 3, 1, 0).")],
        hint="weight.permute(2, 3, 1, 0), as a NumPy array (.numpy()).", same=_same_array,
    )  # fmt: skip


@exercise(CHAPTER, "BatchNorm momentum from PyTorch to Keras", "code")
def momentum_to_keras(student: object) -> Feedback:
    """A function ``(torch_momentum) -> keras_momentum`` for BatchNorm's running averages."""
    return check_function(
        student, lambda m: 1.0 - m, [(0.1,), (0.01,), (0.3,)], "your momentum_to_keras",
        [Mistake("it returns the same number", lambda m: m,
                 "Same word, opposite meaning: PyTorch weights the new batch by momentum, Keras the old average.")],
        hint="Keras keeps momentum of the old average; PyTorch keeps 1 - momentum of it.",
    )  # fmt: skip


EPSILON_OPTIONS = {
    "A": "BatchNorm's epsilon: 1e-3 in Keras, 1e-5 in PyTorch",
    "B": "the order of the layers",
    "C": "floating-point rounding",
}


@exercise(CHAPTER, "Why outputs differ after copying weights", "choice")
def epsilon(answer: object) -> Feedback:
    """Weights copied exactly, layouts right, but the outputs differ by about 0.1. What is left?"""
    return check_choice(answer, "A", EPSILON_OPTIONS, "the remaining difference",
                        hint="Rounding is around 1e-6; look at each layer's defaults.")  # fmt: skip

"""Exercises of the chapter "The same ResNet in Keras"."""

from __future__ import annotations

import numpy as np
import torch

from . import own_run
from .engine import Feedback, Mistake, check_choice, check_function, check_written, exercise
from .engine import hint as hint  # re-exported: ex.hint(ex.<exercise>) or ex.hint("<exercise>", level=2)

CHAPTER = "keras"


def _kernel(weight: torch.Tensor) -> np.ndarray:
    return weight.detach().permute(2, 3, 1, 0).numpy()


def _swapped(weight: torch.Tensor) -> np.ndarray:
    return weight.detach().permute(2, 3, 0, 1).numpy()


def _same_array(a, b) -> bool:
    a = a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    return a.shape == b.shape and np.allclose(a, b)


KERNEL_MISTAKES = (
    Mistake("input and output channels are swapped", _swapped,
            "Keras' order is (height, width, in, out): the input channels come before the output channels."),
)

MOMENTUM_MISTAKES = (
    Mistake("it returns the same number", lambda m: m,
            "Same word, opposite meaning: PyTorch's momentum weights the new batch, Keras' the old average."),
)


@exercise(CHAPTER, "A PyTorch kernel in Keras' layout", "code")
def kernel_to_keras(student: object) -> Feedback:
    """A function ``(weight) -> array``: a PyTorch convolution weight (out, in, kh, kw) as a Keras kernel."""
    g = torch.Generator().manual_seed(0)
    cases = [(torch.randn(8, 4, 3, 3, generator=g),), (torch.randn(16, 3, 1, 1, generator=g),),
             (torch.randn(5, 7, 3, 2, generator=g),)]  # fmt: skip
    return check_function(
        student, _kernel, cases, "your kernel_to_keras", KERNEL_MISTAKES,
        hint=("See the paragraph \"Kernels\" under \"Run\": PyTorch stores a convolution weight as (out, in, "
              "height, width), Keras a kernel in another order of the same four axes.",
              "Keras' kernel is (height, width, in, out). Reorder the PyTorch tensor's axes to that order (which "
              "PyTorch axis comes first, which second, ...?), detach it and make it a NumPy array. A weight of "
              "shape (8, 4, 3, 3) becomes (3, 3, 4, 8)."),
        same=_same_array,
    )  # fmt: skip


@exercise(CHAPTER, "BatchNorm momentum from PyTorch to Keras", "code")
def momentum_to_keras(student: object) -> Feedback:
    """A function ``(torch_momentum) -> keras_momentum`` for BatchNorm's running averages."""
    return check_function(
        student, lambda m: 1.0 - m, [(0.1,), (0.01,), (0.3,)], "your momentum_to_keras", MOMENTUM_MISTAKES,
        hint=("See the paragraph \"BatchNorm's momentum\" under \"Run\": both frameworks keep a running average "
              "of the batch statistics, but their momentum weights different terms of it.",
              "In PyTorch the momentum is the weight of the new batch in the running average; in Keras it is the "
              "weight of the old average. The two weights of one update add up to 1."),
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
                        hint=("Float rounding moves outputs by a few millionths, not 0.1. Which layer has a default "
                              "constant that the two frameworks set differently?",
                              "See the paragraphs under \"Run\" and the table in \"Copying our weights into "
                              "Keras\": compare each layer's defaults in the two frameworks, BatchNorm's "
                              "included."))  # fmt: skip


# --- Written -----------------------------------------------------------------------------------

#: What a written interpretation of the side-by-side training is graded on, with the points for each.
RUBRIC_SIDE_BY_SIDE = (
    ("Quotes the printed line: each framework's final test accuracy and time in this run, and notes that the "
     "chapter gives no verdict on it: one run each, no rule, no standard error.", 1),
    ("Lists what differs between the two runs besides the framework: initial weights (different default "
     "initialisations), batch order and augmentation draws, the momentum update while the rate changes every "
     "step, and the variance BatchNorm averages.", 1),
    ("Notes that the training losses are not on one scale: Keras' loss includes the L2 penalty that stands in for "
     "weight decay, PyTorch's does not; and that the times are of this machine.", 1),
    ("Says what would decide which trains better: several seeds of each, compared with a rule (e.g. paired seeds, "
     "or a difference against its standard error on the test images), ideally from the same initial weights.", 1),
)


@exercise(CHAPTER, "Interpret the run: does one framework train better?", "written")
def side_by_side(answer: object) -> Feedback:
    """A few sentences on the two trained ResNet-20s: what the printed accuracies and times say, what differs
    between the two runs besides the framework, and what it would take to say one trains better."""
    return check_written(
        answer, "the question on the side-by-side training", own_run.rubric_lines(RUBRIC_SIDE_BY_SIDE),
        min_words=50,
        hint=("Read the line printed under the training curves and the second point of 'Read the result' "
              "(\"Trained from their own random starts\"); the table in 'Copying our weights into Keras' lists the "
              "rules that part the two.",
              "Cover what the rubric asks: the numbers and the absence of a verdict, what differs besides the "
              "framework, why the losses are on different scales, and what runs would decide."),
    )  # fmt: skip

"""Exercises of the chapter "Training on Fashion-MNIST"."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import models as M
from .engine import Feedback, Mistake, check_choice, check_function, check_number, exercise, first_error_line

CHAPTER = "fashion"


def reference_per_class_accuracy(confusion: torch.Tensor) -> torch.Tensor:
    """Accuracy per true class: the diagonal over each row's total (rows: true class, columns: predicted)."""
    confusion = confusion.float()
    return confusion.diagonal() / confusion.sum(1)


def _precision(confusion: torch.Tensor) -> torch.Tensor:
    confusion = confusion.float()
    return confusion.diagonal() / confusion.sum(0)


def _overall(confusion: torch.Tensor) -> torch.Tensor:
    confusion = confusion.float()
    return confusion.diagonal() / confusion.sum()


def _confusions() -> list[tuple[torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    return [
        (torch.tensor([[5, 1, 0], [2, 6, 2], [0, 3, 9]]),),
        (torch.randint(1, 50, (10, 10), generator=g) + 100 * torch.eye(10, dtype=torch.long),),
    ]


@exercise(CHAPTER, "Accuracy per class from a confusion matrix", "code")
def per_class_accuracy(student: object) -> Feedback:
    """A function ``(confusion) -> tensor``: for each true class (row), the fraction predicted correctly."""
    return check_function(
        student, reference_per_class_accuracy, _confusions(), "your per_class_accuracy",
        [Mistake("it divides by the column sums (that is precision per predicted class)", _precision,
                 "Rows are true classes: divide the diagonal by each row's sum, confusion.sum(1)."),
         Mistake("it divides by the total of the whole matrix", _overall,
                 "Each class needs its own denominator: the number of images of that class, its row sum.")],
        hint="confusion.diagonal() / confusion.sum(1), as floats.",
    )  # fmt: skip


def _reference_step(model, x, y, optimizer) -> float:
    optimizer.zero_grad()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def _no_zero_grad(model, x, y, optimizer) -> float:
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return loss.item()


def _step_first(model, x, y, optimizer) -> float:
    optimizer.zero_grad()
    optimizer.step()
    loss = F.cross_entropy(model(x), y)
    loss.backward()
    return loss.item()


def _tiny_problem(seed: int):
    """A fixed tiny network, its optimizer and one batch: ``(model, x, y, optimizer)``, the step's arguments."""
    torch.manual_seed(seed)
    model = M.cifar_resnet(8, in_channels=1, num_classes=3)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    return model, torch.randn(6, 1, 10, 10, generator=g), torch.arange(6) % 3, optimizer


def _after_three_steps(step):
    """Run ``step`` three times on a fixed tiny network and batch; return the losses and final weights."""

    def run(seed: int):
        model, x, y, optimizer = _tiny_problem(seed)
        losses = [float(step(model, x, y, optimizer)) for _ in range(3)]
        return losses, torch.cat([p.detach().flatten() for p in model.parameters()])

    return run


def _same_run(a, b) -> bool:
    return len(a[0]) == len(b[0]) and all(abs(u - v) < 1e-5 for u, v in zip(a[0], b[0])) and torch.allclose(
        a[1], b[1], atol=1e-5)  # fmt: skip


@exercise(CHAPTER, "One training step, written out", "code")
def training_step(student: object) -> Feedback:
    """A function ``(model, x, y, optimizer) -> float``: one step of training with cross-entropy; returns the
    loss before the update."""
    if not callable(student):
        return Feedback(False, f"Expected a function (model, x, y, optimizer) -> float, got {type(student).__name__}.")
    hint = ("optimizer.zero_grad(); loss = F.cross_entropy(model(x), y); loss.backward(); optimizer.step(); "
            "return loss.item().")  # fmt: skip
    try:
        loss = student(*_tiny_problem(0))
    except Exception as exc:  # noqa: BLE001 - the student's code
        return Feedback(False, f"your training_step(model, x, y, optimizer) failed: {first_error_line(exc)}.", hint)
    if not isinstance(loss, (float, int)) and not (isinstance(loss, torch.Tensor) and loss.numel() == 1):
        return Feedback(False, f"your training_step returned {type(loss).__name__}; expected the loss as a float "
                               "(loss.item()). Did you forget to return it?", hint)  # fmt: skip
    return check_function(
        _after_three_steps(student), _after_three_steps(_reference_step), [(0,), (1,)], "your training_step",
        [Mistake("the gradients are never zeroed, so they pile up from step to step",
                 _after_three_steps(_no_zero_grad), "Call optimizer.zero_grad() before loss.backward()."),
         Mistake("optimizer.step() runs before the gradients of this batch exist", _after_three_steps(_step_first),
                 "The order is: zero_grad, forward, loss, backward, step.")],
        hint=hint, same=_same_run,
    )  # fmt: skip


@exercise(CHAPTER, "Steps in one epoch", "number")
def steps_per_epoch(answer: object) -> Feedback:
    """Training steps in one epoch of 60,000 images with batch 128 (the last batch is partial)."""
    return check_number(
        answer, -(-60_000 // 128), "steps per epoch (60,000 images, batch 128)",
        hint="Divide and round up: the last, smaller batch is still a step.",
    )  # fmt: skip


RESUME_OPTIONS = {
    "A": "re-seeding torch with the same seed when the run restarts",
    "B": "restoring weights, optimizer state and step, and drawing each epoch's batches from (seed, epoch)",
    "C": "saving only the model's weights every epoch",
}


@exercise(CHAPTER, "What makes resuming exact", "choice")
def resume(answer: object) -> Feedback:
    """What makes a resumed run end with exactly the weights of an uninterrupted one?"""
    return check_choice(
        answer, "B", RESUME_OPTIONS, "exact resumption",
        hint="Momentum buffers and the learning-rate schedule matter too, and so does the order of the batches.",
    )  # fmt: skip

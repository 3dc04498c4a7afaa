"""Exercises of the chapter "Training on Fashion-MNIST"."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from .. import models as M
from ..data import FASHION_CLASSES
from . import own_run
from .engine import (
    Feedback,
    Mistake,
    check_choice,
    check_function,
    check_number,
    check_written,
    exercise,
    first_error_line,
)
from .engine import hint as hint  # re-exported: ex.hint(ex.<exercise>) or ex.hint("<exercise>", level=2)

CHAPTER = "fashion"


def _reference_per_class_accuracy(confusion: torch.Tensor) -> torch.Tensor:
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


PER_CLASS_MISTAKES = (
    Mistake("it divides by the column sums (that is precision per predicted class)", _precision,
            "Rows are the true classes: divide by each row's total, the images of that class, not by each "
            "column's."),
    Mistake("it divides by the total of the whole matrix", _overall,
            "Each class needs its own denominator: the number of images of that class, its row's total."),
)


@exercise(CHAPTER, "Accuracy per class from a confusion matrix", "code")
def per_class_accuracy(student: object) -> Feedback:
    """A function ``(confusion) -> tensor``: for each true class (row), the fraction predicted correctly."""
    return check_function(
        student, _reference_per_class_accuracy, _confusions(), "your per_class_accuracy", PER_CLASS_MISTAKES,
        hint=("See \"Confusion matrix\" (Read the result): rows are true classes, columns predicted ones. Where "
              "are the correct predictions, and how many images does each true class have?",
              "The correct predictions lie on the diagonal; the images of one true class add up along its row. "
              "Divide each diagonal entry by its row's total (with /, which gives fractions; // would floor "
              "them). For [[5, 1], [2, 6]] that gives 5/6 and 6/8."),
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


TRAINING_STEP_MISTAKES = (
    Mistake("the gradients are never zeroed, so they pile up from step to step", _after_three_steps(_no_zero_grad),
            "Each backward pass adds to the gradients already there: clear them at the start of every step."),
    Mistake("optimizer.step() runs before the gradients of this batch exist", _after_three_steps(_step_first),
            "The update has to use this batch's gradients: clear, forward, loss, backward, and only then update."),
)


@exercise(CHAPTER, "One training step, written out", "code")
def training_step(student: object) -> Feedback:
    """A function ``(model, x, y, optimizer) -> float``: one step of training with cross-entropy; returns the
    loss before the update."""
    hint = ("One step moves the weights once, using this batch's gradients and no others. Which object computes "
            "the gradients, which one applies them, and what is left over from the previous step?",
            "The optimizer clears the gradients first and updates the weights last; in between, the cross-entropy "
            "of the model's outputs against y is computed and backpropagated, which fills in the gradients. Return "
            "the loss's value as a Python float.")  # fmt: skip
    if not callable(student):
        return Feedback(False, f"Expected a function (model, x, y, optimizer) -> float, got {type(student).__name__}.",
                        hint)  # fmt: skip
    try:
        loss = student(*_tiny_problem(0))
    except Exception as exc:  # noqa: BLE001 - the student's code
        return Feedback(False, f"your training_step(model, x, y, optimizer) failed: {first_error_line(exc)}.", hint)
    if not isinstance(loss, (float, int)) and not (isinstance(loss, torch.Tensor) and loss.numel() == 1):
        return Feedback(False, f"your training_step returned {type(loss).__name__}; expected the loss as a float "
                               "(loss.item()). Did you forget to return it?", hint)  # fmt: skip
    return check_function(
        _after_three_steps(student), _after_three_steps(_reference_step), [(0,), (1,)], "your training_step",
        TRAINING_STEP_MISTAKES, hint=hint, same=_same_run,
    )  # fmt: skip


@exercise(CHAPTER, "Steps in one epoch", "number")
def steps_per_epoch(answer: object) -> Feedback:
    """Training steps in one epoch of 60,000 images with batch 128 (the last batch is partial)."""
    return check_number(
        answer, -(-60_000 // 128), "steps per epoch (60,000 images, batch 128)",
        hint=("One step processes one batch. How many batches does one pass over the training set take?",
              "Divide the number of images by the batch size and round up: the last, smaller batch is still a "
              "step. For 1,000 images in batches of 300 that is 4 steps."),
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
        hint=("See \"Saving, loading, resuming\" (Read the result): besides the weights, what state does training "
              "carry from one step to the next?",
              "Momentum buffers and the learning-rate schedule's position are state too, and so is the order of "
              "each epoch's batches: a resumed run has to draw the batches the interrupted one would have drawn."),
    )  # fmt: skip


# --- Your own run ---------------------------------------------------------------------------

MOST_CONFUSED_HINT = (
    "See \"Confusion matrix\" (Read the result): look at your confusion matrix off its diagonal: rows are true "
    "classes, columns predicted ones, and a "
    "confusion between two classes goes both ways.",
    "For every pair of different classes add the two counts, true A predicted as B and true B predicted as A; "
    "answer with the pair whose sum is largest, as two class names. The three largest single counts the "
    "chapter prints are one direction each: check the reverse direction too.",
)


def _class_index(name: object, classes: Sequence[str]) -> int | None:
    if isinstance(name, numbers.Integral) and not isinstance(name, bool):  # an index (int, NumPy integer)
        return int(name) if 0 <= name < len(classes) else None
    if isinstance(name, torch.Tensor) and name.numel() == 1:
        return _class_index(int(name.item()), classes)
    folded = {c.strip().lower(): i for i, c in enumerate(classes)}
    return folded.get(str(name).strip().lower())


@exercise(CHAPTER, "Your run: the two classes your network confuses most", "run", hint=MOST_CONFUSED_HINT)
def most_confused(answer: object, confusion: object, classes: Sequence[str] = FASHION_CLASSES) -> Feedback:
    """In your ``confusion`` matrix (rows: true class, columns: predicted), the two classes with the most
    mistakes between them, counting both directions: ``(name, name)`` in either order (names as in
    ``classes``, or class indices). Any pair tied for the most is right."""
    hint = MOST_CONFUSED_HINT
    if not isinstance(confusion, torch.Tensor) or confusion.dim() != 2 or confusion.shape[0] != confusion.shape[1]:
        return own_run.no_run("your confusion matrix (the `confusion` tensor of the chapter)", confusion, hint)
    if confusion.shape[0] != len(classes):
        return Feedback(False, f"Your confusion matrix is {tuple(confusion.shape)} but there are {len(classes)} "
                               "class names: pass the class names of your test set, test_set.classes.", hint)
    if answer is None or answer is ...:
        return Feedback(False, "No answer yet for the pair of classes your network confuses most: replace the "
                               "placeholder with two class names, e.g. (\"Coat\", \"Pullover\").", hint)
    if isinstance(answer, str) or not isinstance(answer, (tuple, list, set, frozenset)) or len(answer) != 2:
        return Feedback(False, f"Answer with two class names, e.g. (\"Coat\", \"Pullover\"); you gave {answer!r}.",
                        hint)  # fmt: skip
    picked = [_class_index(name, classes) for name in answer]
    unknown = [name for name, i in zip(answer, picked) if i is None]
    if unknown:
        return Feedback(False, f"{unknown[0]!r} is not a class of this data set; the classes are "
                               f"{', '.join(classes)}.", hint)  # fmt: skip
    a, b = picked
    if a == b:
        return Feedback(False, f"You named {classes[a]} twice: a confusion is between two different classes.", hint)
    counts = confusion.long()
    both = counts + counts.T
    both.fill_diagonal_(-1)
    top = int(both.max())
    ties = [(i, j) for i in range(len(classes)) for j in range(i + 1, len(classes)) if int(both[i, j]) == top]
    got = int(both[a, b])
    if got == top:
        also = f" (tied with {len(ties) - 1} other pair{'s' * (len(ties) > 2)})" if len(ties) > 1 else ""
        return Feedback(True, f"{classes[a]} and {classes[b]}: {got} of your network's test images were taken for "
                              f"the other ({int(counts[a, b])} + {int(counts[b, a])}){also}.")  # fmt: skip
    single = counts.clone()
    single.fill_diagonal_(-1)
    if int(single[a, b]) == int(single.max()) or int(single[b, a]) == int(single.max()):
        return Feedback(False, f"{classes[a]} and {classes[b]} hold the largest count in one direction, but counted "
                               "both ways another pair has more mistakes between them.", hint)  # fmt: skip
    return Feedback(False, f"{classes[a]} and {classes[b]}: {got} mistakes between them, both ways; another pair has "
                           "more.", hint)  # fmt: skip


#: What a written interpretation of the BatchNorm claim is graded on, with the points for each.
RUBRIC_BATCHNORM = (
    ("Quotes the claim's status and evidence: the accuracy with each test batch's own statistics, with the running "
     "statistics, their difference and its standard error, and the rule (shown if batch-statistics minus "
     "running-statistics accuracy exceeds 2 standard errors, not shown if it is below -2 of them, undecided "
     "between).", 1),
    ("Says what the status establishes: if shown, the weights had learned more than evaluation mode lets them "
     "show, so the running statistics, which trail the weights after so few steps, hold the test accuracy down, at "
     "least in part; if undecided or not shown, that the run gives this explanation no support.", 1),
    ("Says what it does not establish: one seed, so it is about this trained network; the SE treats two accuracies "
     "on the same images as independent (conservative); batch statistics share information between the images "
     "of a batch.", 1),
    ("Proposes a run that would test the explanation further: e.g. several seeds, longer training, or running "
     "statistics estimated anew on training images before testing.", 1),
)


@exercise(CHAPTER, "Interpret the verdict: BatchNorm after a short run", "written")
def batchnorm_after_short_run(answer: object) -> Feedback:
    """A few sentences on the claim 'batch statistics score higher than the running statistics' in your run:
    what decided its status, what it establishes, what it does not, and a run that would test it further."""
    return check_written(
        answer, "the question on the BatchNorm claim", own_run.rubric_lines(RUBRIC_BATCHNORM), min_words=50,
        hint=("See \"D2L's recipe, as D2L runs it\" (Run): read the claim printed under the comparison of the two "
              "statistics, its status, rule and evidence, and the paragraph after it.",
              "Cover what the rubric asks: the two accuracies and the rule, what the status means for this "
              "network, its limits (seeds, the standard error, what batch statistics share), and a further run."),
    )  # fmt: skip

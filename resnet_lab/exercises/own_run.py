"""What the own-run and the written exercises share.

Own-run exercises: their answer is judged against the student's own run.

A checker of kind ``"run"`` takes ``(answer, run_object)``: the run object is
what the chapter's cells made in the student's kernel (the ``runs`` of the
degradation or CIFAR-10 chapter, the confusion matrix of the Fashion-MNIST
chapter, the lesion ``study`` of chapter 6, the ``transfer_runs`` of
chapter 7). The checker computes the expected value from it, with the same
arithmetic the chapter's tables and verdicts use, and compares the answer
within a tolerance suited to how the chapter prints the number. Nothing is
stored: another run gives another expected answer.

Written exercises keep their rubric as data, ``((criterion, points), ...)``
(``RUBRIC_<NAME>`` in each chapter module); :func:`rubric_lines` gives the
lines :func:`~resnet_lab.exercises.engine.check_written` shows under an answer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from ..history import History
from .engine import Feedback

__all__ = ["histories", "check_run_number", "no_run", "rubric_lines", "Rubric"]

#: A written exercise's rubric: its criteria, each with the points it is worth.
Rubric = Sequence[tuple[str, int]]

#: Slack added to every tolerance, so that a value printed exactly at the edge of the tolerance is accepted.
_SLACK = 1e-9


def no_run(what: str, got: object, hint: object = "") -> Feedback:
    """Feedback for a run object that is not one: the student passed something else, or nothing."""
    if got is None or got is ...:
        return Feedback(False, f"Pass {what} as the second argument: the checker computes the answer from your "
                               "run. Run the chapter's Run section first.", hint)  # fmt: skip
    return Feedback(False, f"Expected {what} as the second argument, got {type(got).__name__}: the checker "
                           "computes the answer from your run's own objects.", hint)  # fmt: skip


def histories(runs: object, what: str, hint: object = "") -> dict | Feedback:
    """``runs`` as ``{key: [History per seed]}``, or a Feedback saying why it is not a run's histories."""
    if not isinstance(runs, Mapping) or not runs:
        return no_run(what, runs, hint)
    lists = {}
    for key, value in runs.items():
        hs = [value] if isinstance(value, History) else value
        if not isinstance(hs, (list, tuple)) or not all(isinstance(h, History) and h.records for h in hs):
            return Feedback(False, f"{what} should map each network to its History (or a list of them, one per "
                                   f"seed); {key!s} maps to {type(value).__name__}.", hint)  # fmt: skip
        lists[key] = list(hs)
    return lists


def _number(answer: object) -> float | None:
    try:
        value = answer.item() if isinstance(answer, torch.Tensor) else answer
        if isinstance(value, (bool, str)):
            return None
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError, RuntimeError):
        return None


def check_run_number(answer: object, expected: float, what: str, *, tol: float, unit: str = "points",
                     order: str = "", hint: object = "") -> Feedback:  # fmt: skip
    """Is ``answer`` the value ``expected`` computed from the student's run, within ``tol``?

    ``tol`` matches how the chapter prints the number (a table's two decimals, a verdict's three
    significant figures). A wrong answer never shows the expected value; it says whether the answer is
    too high or too low, and names two common slips: a fraction where points were asked for, and the
    difference taken the other way round (``order`` says which way it is asked for).
    """
    if answer is None or answer is ...:
        return Feedback(False, f"No answer yet for {what}: replace the placeholder with the number from your "
                               "run.", hint)  # fmt: skip
    value = _number(answer)
    if value is None:
        return Feedback(False, f"Expected a number for {what}, got {type(answer).__name__} {answer!r}.", hint)
    if not math.isfinite(value):
        return Feedback(False, f"You gave {value} for {what}: expected a finite number.", hint)
    if abs(value - expected) <= tol + _SLACK:
        return Feedback(True, f"{what}: {expected:.2f} {unit} in your run (you gave {value:g}).")
    if unit == "points" and abs(100 * value - expected) <= tol + _SLACK and abs(expected) > tol:
        return Feedback(False, f"You gave {value:g} for {what}: that looks like a fraction. Give percentage "
                               "points, as the chapter prints its errors and accuracies (7.5 for 7.5%).", hint)
    if order and abs(-value - expected) <= tol + _SLACK and abs(expected) > tol:
        return Feedback(False, f"You gave {value:g} for {what}: the size is right, the sign is not. The question "
                               f"asks for {order}.", hint)  # fmt: skip
    direction = "too high" if value > expected else "too low"
    return Feedback(False, f"You gave {value:g} for {what}: {direction} for your run.", hint)


def rubric_lines(rubric: Rubric) -> tuple[str, ...]:
    """The rubric as the lines a written answer's feedback shows: each criterion with its points."""
    return tuple(f"{text} ({points} point{'s' * (points != 1)})" for text, points in rubric)

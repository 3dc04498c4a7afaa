"""Exercises with checkers, one module per chapter, and the engine they share.

In a chapter: ``from resnet_lab.exercises import tracing as ex`` then, under
the student's answer, ``ex.basic_block(MyBlock)``. Every checker returns a
:class:`~resnet_lab.exercises.engine.Feedback`; ``ex.hint(ex.basic_block)``
gives an exercise's hints by level; :func:`scorecard` lists a chapter's
exercises with what this kernel session has answered, and
:data:`ANSWERS`/:data:`ATTEMPTS` keep each exercise's last answer and number
of tries for a grader.
"""

from . import beyond, cifar, degradation, distributed, fashion, keras, residual, tracing, transfer
from .engine import ANSWERS, ATTEMPTS, EXERCISES, Feedback, check_written, hint, scorecard

__all__ = ["Feedback", "scorecard", "hint", "check_written", "EXERCISES", "ANSWERS", "ATTEMPTS", "tracing",
           "degradation", "residual", "fashion", "cifar", "beyond", "transfer", "keras", "distributed"]

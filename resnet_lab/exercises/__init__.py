"""Exercises with checkers, one module per chapter, and the engine they share.

In a chapter: ``from resnet_lab.exercises import tracing as ex`` then, under
the student's answer, ``ex.basic_block(MyBlock)``. Every checker returns a
:class:`~resnet_lab.exercises.engine.Feedback`; :func:`scorecard` lists a
chapter's exercises with what this kernel session has answered.
"""

from . import beyond, cifar, degradation, fashion, keras, residual, tracing, transfer
from .engine import EXERCISES, Feedback, scorecard

__all__ = ["Feedback", "scorecard", "EXERCISES", "tracing", "degradation", "residual", "fashion", "cifar", "beyond",
           "transfer", "keras"]

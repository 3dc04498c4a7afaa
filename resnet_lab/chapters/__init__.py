"""The book's chapters, one module each: sizes per profile, the networks, the measurements, the verdicts.

Every chapter module holds

* ``Sizes``: a frozen dataclass of keyword fields, each with a cap role
  (:mod:`resnet_lab.sizes`), and ``SIZES = {"smoke": ..., "cpu": ...,
  "gpu": ..., "paper": ...}``;
* the function(s) that build the chapter's networks from its sizes, which
  the notebook shows and calls;
* ``plan(sizes)``: the chapter's training and evaluation work, enumerated
  from those same builders (the chapter box and the Colab budget read it);
* the chapter's measurements and verdicts.

Importing this package imports no chapter; :func:`get` does.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["CHAPTERS", "get"]

#: The chapters, in the book's order.
CHAPTERS = ("tracing", "degradation", "residual", "fashion", "cifar", "beyond", "transfer", "keras",
            "distributed")


def get(chapter: str) -> ModuleType:
    """The module of ``chapter`` (one of :data:`CHAPTERS`)."""
    if chapter not in CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}; expected one of {', '.join(CHAPTERS)}")
    return importlib.import_module(f"{__name__}.{chapter}")

"""What a chapter's sizes are made of: fields with a cap role, and the planned runs they give.

Every chapter module (:mod:`resnet_lab.chapters`) declares its sizes as a
frozen dataclass whose fields say, in their metadata, what kind of size they
are: a number of ``images`` (None: the whole split), of ``epochs``, of
``steps``, of ``points`` of a sweep, or ``fixed`` (depths, seeds, a data
set's name: what a profile's code path is made of). :func:`capped` shrinks
every size by its role, so a capped profile still builds the profile's own
networks; a field without a role is an error (:func:`roles`).

A chapter's plan is a list of :class:`PlannedRun`: a network, its input, the
images it trains on and the images it only evaluates. Planning arithmetic
over plans lives in :mod:`resnet_lab.profiles`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields, replace
from typing import Any

from torch import nn

__all__ = ["ROLES", "images", "epochs", "steps", "points", "fixed", "roles", "capped", "PlannedRun", "FULL",
           "split_size", "input_shape", "RUNNERS"]  # fmt: skip

#: The cap roles a size field may have.
ROLES = ("images", "epochs", "steps", "points", "fixed")

#: Split sizes of the data sets (``None`` as a size means these).
FULL = {"fashion_mnist": (60_000, 10_000), "cifar10": (50_000, 10_000), "flowers102": (1_020, 6_149)}


def _field(role: str, **extra) -> Any:
    return dataclasses.field(metadata={"cap": role, **extra})


def images() -> Any:
    """A number of images (None: the whole split); capped at the cap's images."""
    return _field("images")


def epochs() -> Any:
    """A number of epochs; capped at the cap's epochs."""
    return _field("epochs")


def steps() -> Any:
    """A number of optimiser steps; capped at the cap's epochs (one step per capped epoch)."""
    return _field("steps")


def points(at_most: int) -> Any:
    """A number of points of a sweep or grid; capped at ``at_most`` (what the computation still needs)."""
    return _field("points", at_most=at_most)


def fixed() -> Any:
    """Not capped: what makes the profile's code path (depths, seeds, data set, recipe names)."""
    return _field("fixed")


def roles(sizes_type: type) -> dict[str, str]:
    """``{field: role}`` of a sizes dataclass; a field without a role in :data:`ROLES` is a TypeError."""
    out = {}
    for f in fields(sizes_type):
        role = f.metadata.get("cap")
        if role not in ROLES:
            raise TypeError(f"{sizes_type.__qualname__}.{f.name} has no cap role (got {role!r}); declare it with "
                            f"one of resnet_lab.sizes.{', '.join(ROLES)}()")  # fmt: skip
        out[f.name] = role
    return out


def capped(sizes, images: int, epochs: int):
    """``sizes`` with every image count at most ``images`` and every epoch or step count at most ``epochs``;
    sweeps keep the points they need; fixed fields are unchanged."""
    changes = {}
    for f in fields(sizes):
        role, value = roles(type(sizes))[f.name], getattr(sizes, f.name)
        if role == "images":
            changes[f.name] = images if value is None else min(value, images)
        elif role in ("epochs", "steps"):
            changes[f.name] = min(value, epochs)
        elif role == "points":
            changes[f.name] = min(value, f.metadata["at_most"])
    return replace(sizes, **changes)


def split_size(size: int | None, dataset: str, train: bool) -> int:
    """``size``, or where it is None the whole split of ``dataset``."""
    return FULL[dataset][0 if train else 1] if size is None else size


def input_shape(dataset: str) -> tuple[int, int, int]:
    """One image's shape (C, H, W) as the book loads ``dataset``."""
    return {"fashion_mnist": (1, 28, 28), "cifar10": (3, 32, 32)}[dataset]


#: How a planned run is carried out: by :func:`resnet_lab.runs.train_all` (one checkpoint per run in
#: the run folder), or by something else (D2L's own trainer, Keras, a timed epoch, test passes only).
RUNNERS = ("train_all", "other")


@dataclass(frozen=True)
class PlannedRun:
    """One piece of a chapter's work: a network, its input, images trained on and images only evaluated,
    and whether :func:`resnet_lab.runs.train_all` runs it (``runner``)."""

    label: str
    net: nn.Module
    input_shape: tuple[int, int, int]
    trained: int
    evaluated: int
    runner: str = "train_all"

    def __post_init__(self) -> None:
        if self.runner not in RUNNERS:
            raise ValueError(f"runner must be one of {RUNNERS}, got {self.runner!r}")

"""What a run is and what it did: its key, its facts, and its per-epoch records.

* :class:`RunKey`: which run this is, as data (kind, depth; or way and
  labels per class), from which the display label is derived. Verdicts and
  tables read the fields, never parse the label back.
* :class:`RunInfo`: the facts of one run (network, data, device, precision,
  recipe, status, planned and measured time, the epochs trained and the
  epochs asked for where a time budget shortened the schedule), written by
  :func:`resnet_lab.train.fit` and :func:`resnet_lab.runs.train_all`.
* :class:`History`: per-epoch :class:`EpochRecord` s plus the training curve
  within epochs; saved inside every checkpoint.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .files import atomic_save

__all__ = ["RunKey", "RunInfo", "EpochRecord", "History"]


@dataclass(frozen=True)
class RunKey:
    """Which run: a ``kind`` (``plain``, ``ResNet``, ``pre-act ResNet``, ``from scratch``, ...) with a
    ``depth``, or a way of training with ``labels_per_class``. ``str(key)`` is its display label:
    ``plain-56``, ``ResNet-20``, ``fine-tune, 50/class``; a key with neither is its kind."""

    kind: str
    depth: int | None = None
    labels_per_class: int | None = None

    def __str__(self) -> str:
        if self.depth is not None:
            return f"{self.kind}-{self.depth}"
        if self.labels_per_class is not None:
            return f"{self.kind}, {self.labels_per_class}/class"
        return self.kind

    @classmethod
    def of(cls, key: RunKey | str) -> RunKey:
        """``key`` itself, or a plain name as a key of that kind."""
        return key if isinstance(key, RunKey) else cls(str(key))


@dataclass
class RunInfo:
    """The facts of one run. ``None`` where a fact does not apply or was not recorded."""

    arch: str = ""
    params: int | None = None
    trainable: int | None = None
    device: str = ""
    precision: str = ""
    epochs: int | None = None
    recipe: str = ""
    schedule: str = ""
    lr: float | None = None
    batch_size: int | None = None
    train_images: int | None = None
    test_images: int | None = None
    #: Processes (ranks) that trained it together, each on its share of every batch (``batch_size`` is the
    #: combined batch; chapter "Training on many devices").
    processes: int = 1
    # Written by train_all:
    key: RunKey | None = None
    data: str | None = None
    test_data: str | None = None
    profile: str | None = None
    status: str | None = None
    planned_seconds: float | None = None
    wall_seconds: float | None = None
    #: The epochs the caller asked for (``epochs`` is what was trained: fewer where the runner
    #: shortened the schedule to the budget, :attr:`budget_seconds`, of the call).
    requested_epochs: int | None = None
    budget_seconds: float | None = None

    @property
    def shortened(self) -> bool:
        """Whether the run trained fewer epochs than asked for (to keep a time budget)."""
        return self.epochs is not None and self.requested_epochs is not None and self.epochs < self.requested_epochs

    def schedule_note(self) -> str:
        """``"trained 12 of the 20 planned epochs (shortened to the time budget)"`` for a shortened run, else
        ``""``: what a verdict or a table says beside a shortened run's numbers."""
        if not self.shortened:
            return ""
        return f"trained {self.epochs} of the {self.requested_epochs} planned epochs (shortened to the time budget)"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunInfo:
        """The inverse of :meth:`to_dict`; keys it does not know (an older checkpoint's) are dropped."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        if isinstance(values.get("key"), dict):
            values["key"] = RunKey(**values["key"])
        return cls(**values)


@dataclass
class EpochRecord:
    """What one epoch did. Errors are fractions (0.07 = 7% wrong)."""

    epoch: int
    step: int
    lr: float
    train_loss: float
    train_error: float
    test_loss: float | None
    test_error: float | None
    images_per_s: float
    seconds: float


@dataclass
class History:
    """Per-epoch records of a run, plus what the run was (:class:`RunInfo`)."""

    records: list[EpochRecord] = field(default_factory=list)
    info: RunInfo = field(default_factory=RunInfo)
    #: Training curve within epochs: ``{"step", "train_loss", "train_error"}``
    #: averaged over the batches since the previous entry (for iteration plots).
    steps: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def column(self, name: str) -> list:
        return [getattr(r, name) for r in self.records]

    @property
    def final(self) -> EpochRecord:
        if not self.records:
            raise ValueError("this history has no epochs yet")
        return self.records[-1]

    @property
    def seconds(self) -> float:
        """Training time summed over the epochs (test passes excluded)."""
        return sum(r.seconds for r in self.records)

    def to_dict(self) -> dict:
        return {"records": [asdict(r) for r in self.records], "info": self.info.to_dict(), "steps": self.steps}

    @classmethod
    def from_dict(cls, d: dict) -> History:
        return cls([EpochRecord(**r) for r in d["records"]], RunInfo.from_dict(d.get("info", {})),
                   list(d.get("steps", [])))  # fmt: skip

    def save(self, path: str | os.PathLike) -> None:
        atomic_save(json.dumps(self.to_dict(), indent=1), path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> History:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def plot(self, ax=None, label: str = "", **kwargs):
        """Training (thin) and test (bold) error per epoch, in percent. Returns the axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6.4, 3.6))
        epochs = self.column("epoch")
        train = [100 * e for e in self.column("train_error")]
        (line,) = ax.plot(epochs, train, lw=1.2, label=f"{label} train".strip(), **kwargs)
        if any(e is not None for e in self.column("test_error")):
            test = [None if e is None else 100 * e for e in self.column("test_error")]
            ax.plot(epochs, test, lw=2.8, color=line.get_color(), label=f"{label} test".strip())
        ax.set_xlabel("epoch")
        ax.set_ylabel("error (%)")
        ax.legend()
        return ax

"""Verdicts: what a run shows, computed from its own numbers.

A :class:`Verdict` is a claim checked against a run: whether it held (None
where the run cannot decide) and a sentence saying what the run showed.
Every chapter's verdict functions live in its module under
:mod:`resnet_lab.chapters`; they take a mapping of run key to
:class:`~resnet_lab.history.History` (or to a list of them, one per seed)
and use the helpers here.
"""

from __future__ import annotations

import statistics
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .history import History, RunKey

__all__ = ["Verdict", "Runs", "as_lists", "mean_and_spread", "final_errors", "keys_of_kind"]

#: Run key (or display name) -> one history, or one history per seed.
Runs = Mapping["RunKey | str", "History | Sequence[History]"]


@dataclass
class Verdict:
    """A claim checked against a run: ``holds`` (None where the run cannot decide) and what it showed."""

    holds: bool | None
    text: str

    def __str__(self) -> str:
        return textwrap.fill(self.text, 72)

    __repr__ = __str__

    def __bool__(self) -> bool:
        return bool(self.holds)

    def _repr_markdown_(self) -> str:
        mark = {True: "Shown", False: "Not shown", None: "Undecided"}[self.holds]
        return f"**{mark}.** {self.text}"


def as_lists(runs: Runs) -> dict:
    """``runs`` with every value a list of histories (one per seed)."""
    return {key: [h] if isinstance(h, History) else list(h) for key, h in runs.items()}


def mean_and_spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def final_errors(runs: Runs, which: str = "train") -> dict:
    """``{key: (mean, sample sd, seeds)}`` of the final ``which`` ("train" or "test") error in percent."""
    out = {}
    for key, hs in as_lists(runs).items():
        values = [100 * getattr(h.final, f"{which}_error") for h in hs]
        mean, sd = mean_and_spread(values)
        out[key] = (mean, sd, len(values))
    return out


def keys_of_kind(runs: Runs, kind: str) -> dict[int, RunKey]:
    """``{depth: key}`` of the runs whose key is of ``kind`` with a depth; a clear error where there are none."""
    found = {k.depth: k for k in runs if isinstance(k, RunKey) and k.kind == kind and k.depth is not None}
    if not found:
        raise ValueError(f"no runs keyed RunKey({kind!r}, depth) among {[str(k) for k in runs]}")
    return dict(sorted(found.items()))

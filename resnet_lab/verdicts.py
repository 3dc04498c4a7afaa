"""Verdicts: what a run shows, computed from its own numbers, with the rule that decided it.

A :class:`Verdict` is a list of :class:`Claim` s. Each claim has a status
(``"shown"``, ``"not shown"`` or ``"undecided"``), the rule that decided it
in one readable line, and the numbers the rule used (``evidence``); the page
prints all three, so a reader can check the decision by hand.

Three rules, each for the data it judges:

* :func:`paired_claim`: several seeds, one value per seed for each side.
  Decided on the per-seed differences: shown when every seed's difference has
  the claimed sign and their mean is larger than their sample standard
  deviation; not shown when every seed's difference has the opposite sign and
  the same holds the other way; otherwise undecided with that many seeds.
  One seed is always undecided (no spread was measured).
* :func:`proportions_claim`: one seed, two accuracies (or error rates) on
  ``n`` images each. A difference counts only when it is larger than
  ``z`` (default 2) standard errors of the difference of two independent
  proportions (unpooled: ``sqrt(p1 (1 - p1) / n1 + p2 (1 - p2) / n2)``).
  The two networks are scored on the same images, so their errors are
  correlated and this standard error is, if anything, too large: the rule
  errs towards "undecided".
* :func:`counts_claim`: counts (local minima on a grid, say). Counts that are
  both zero prove nothing and are undecided.

Every chapter's verdict functions live in its module under
:mod:`resnet_lab.chapters`; they take a mapping of run key to
:class:`~resnet_lab.history.History` (or to a list of them, one per seed)
and use the helpers here.
"""

from __future__ import annotations

import math
import statistics
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from .history import History, RunKey

__all__ = [
    "Claim", "Verdict", "Status", "SHOWN", "NOT_SHOWN", "UNDECIDED", "paired_claim", "proportions_claim",
    "counts_claim", "schedule_notes", "Runs", "as_lists", "mean_and_spread", "final_errors", "keys_of_kind",
]  # fmt: skip

Status = Literal["shown", "not shown", "undecided"]
SHOWN: Status = "shown"
NOT_SHOWN: Status = "not shown"
UNDECIDED: Status = "undecided"
_HOLDS = {SHOWN: True, NOT_SHOWN: False, UNDECIDED: None}

#: Run key (or display name) -> one history, or one history per seed.
Runs = Mapping["RunKey | str", "History | Sequence[History]"]


@dataclass(frozen=True)
class Claim:
    """One claim a run is checked against: its ``status``, the ``rule`` that decided it (one line) and
    the numbers the rule used (``evidence``: name -> number, or list of numbers, one per seed)."""

    name: str
    status: Status
    rule: str
    evidence: Mapping[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in _HOLDS:
            raise ValueError(f"status must be one of {list(_HOLDS)}, got {self.status!r}")

    @property
    def holds(self) -> bool | None:
        """True if shown, False if not shown, None if undecided."""
        return _HOLDS[self.status]

    def evidence_text(self) -> str:
        """The evidence as ``name = value`` pairs, numbers to 3 significant figures."""
        return "; ".join(f"{k} = {_fmt(v)}" for k, v in self.evidence.items())

    def __str__(self) -> str:
        return f"{self.name}: {self.status.upper()}. Rule: {self.rule} Evidence: {self.evidence_text()}."


def _fmt(value: object) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e4 else f"{value:,.0f}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_fmt(v) for v in value) + "]"
    return str(value)


@dataclass
class Verdict:
    """What a run shows: its claims, each with status, rule and evidence, and a sentence or two of
    the numbers in words (``text``). ``holds`` is True when every claim is shown, False when any is
    not shown, None otherwise (some undecided)."""

    claims: list[Claim]
    text: str = ""

    def __post_init__(self) -> None:
        if not self.claims:
            raise ValueError("a verdict needs at least one claim")

    @property
    def holds(self) -> bool | None:
        statuses = [c.holds for c in self.claims]
        if all(s is True for s in statuses):
            return True
        if any(s is False for s in statuses):
            return False
        return None

    def claim(self, name: str) -> Claim:
        """The claim called ``name``; a clear error naming the claims there are."""
        for c in self.claims:
            if c.name == name:
                return c
        raise KeyError(f"no claim {name!r}; this verdict's claims are {[c.name for c in self.claims]}")

    def __str__(self) -> str:
        lines = [textwrap.fill(self.text, 72)] if self.text else []
        lines += [textwrap.fill(str(c), 72, subsequent_indent="  ") for c in self.claims]
        return "\n".join(lines)

    __repr__ = __str__

    def __bool__(self) -> bool:
        return self.holds is True

    def _repr_markdown_(self) -> str:
        mark = {SHOWN: "Shown", NOT_SHOWN: "Not shown", UNDECIDED: "Undecided"}
        def cell(text: str) -> str:
            return text.replace("|", "\\|")

        rows = [f"| {cell(c.name)} | **{mark[c.status]}** | {cell(c.rule)} | {cell(c.evidence_text())} |"
                for c in self.claims]  # fmt: skip
        table = "\n".join(["| Claim | Status | Rule | Evidence |", "|---|---|---|---|", *rows])
        return (f"{self.text}\n\n" if self.text else "") + table


def paired_claim(name: str, a: Sequence[float], b: Sequence[float], *, what: str = "a - b",
                 unit: str = "points", over: str = "seed") -> Claim:  # fmt: skip
    """Claim ``a > b`` from one value per seed on each side (the seeds in the same order): decided on
    the per-seed differences ``a - b`` (see the module docstring). ``what`` names the difference;
    ``over`` names what is repeated ("seed", or "draw" where the repeats are draws of a data subset)."""
    if len(a) != len(b) or not a:
        raise ValueError(f"need one value per {over} on each side, got {len(a)} and {len(b)}")
    diffs = [x - y for x, y in zip(a, b)]
    n = len(diffs)
    mean, sd = mean_and_spread(diffs)
    evidence = {f"{what} per {over} ({unit})": [round(d, 3) for d in diffs], "mean": mean, "sd": sd,
                f"{over}s": n}  # fmt: skip
    if n == 1:
        return Claim(name, UNDECIDED, f"one {over}: a paired rule needs two or more (no spread was measured).",
                     evidence)  # fmt: skip
    rule = (f"paired over {n} {over}s: shown if every {over}'s {what} > 0 and mean > sd; not shown if every one "
            f"< 0 and -mean > sd; else undecided.")  # fmt: skip
    if all(d > 0 for d in diffs) and mean > sd:
        status = SHOWN
    elif all(d < 0 for d in diffs) and -mean > sd:
        status = NOT_SHOWN
    else:
        status = UNDECIDED
    return Claim(name, status, rule, evidence)


def proportions_claim(name: str, p_a: float, n_a: int, p_b: float, n_b: int, *, what: str = "a - b",
                      z: float = 2.0) -> Claim:  # fmt: skip
    """Claim ``p_a > p_b`` for two proportions (accuracies or error rates, as fractions in [0, 1]) measured
    on ``n_a`` and ``n_b`` images: shown when the difference exceeds ``z`` standard errors of a
    difference of two independent proportions, not shown when it is below ``-z`` of them, else
    undecided."""
    for p, n, side in ((p_a, n_a, "p_a"), (p_b, n_b, "p_b")):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"{side} must be a proportion in [0, 1] (not a percentage), got {p!r}")
        if int(n) < 1:
            raise ValueError(f"the image counts must be positive, got {n!r} for {side}")
    se = math.sqrt(p_a * (1 - p_a) / n_a + p_b * (1 - p_b) / n_b)
    diff = p_a - p_b
    evidence = {f"{what} (points)": 100 * diff, "standard error (points)": 100 * se, "images": [int(n_a), int(n_b)]}
    rule = (f"one seed: shown if {what} > {z:g} standard errors of a difference of two independent proportions "
            f"(unpooled), not shown if < -{z:g} of them, else undecided.")  # fmt: skip
    status = SHOWN if diff > z * se else NOT_SHOWN if diff < -z * se else UNDECIDED
    return Claim(name, status, rule, evidence)


def counts_claim(name: str, a: int, b: int, *, what: str = "count") -> Claim:
    """Claim ``a > b`` for two counts: undecided when both are zero (they prove nothing), else shown
    when ``a > b`` and not shown otherwise."""
    evidence = {f"{what}s": [int(a), int(b)]}
    if a == 0 and b == 0:
        return Claim(name, UNDECIDED, f"{what}s of 0 and 0 prove nothing either way.", evidence)
    return Claim(name, SHOWN if a > b else NOT_SHOWN, f"shown if the first {what} is larger than the second.",
                 evidence)  # fmt: skip


def schedule_notes(runs: Runs) -> str:
    """A sentence naming every run the time budget shortened (see :class:`~resnet_lab.runs.train_all`),
    with the epochs it trained of those planned; ``""`` where none was. Verdict texts end with it, so a
    claim judged on a shortened run says so beside its numbers."""
    notes = []
    for key, hs in as_lists(runs).items():
        for h in hs:
            info = getattr(h, "info", None)
            if info is not None and info.shortened:
                notes.append(f"{key} {info.schedule_note()}")
    return (" Shortened runs: " + "; ".join(dict.fromkeys(notes)) + ".") if notes else ""


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

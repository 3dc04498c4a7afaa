"""Run profiles: how big every experiment in the book is, and how long it is planned to take.

* ``smoke``: CI. Tiny subsets, one epoch; checks that the code runs, not what it finds.
* ``cpu``: a 2-core laptop. Real data, short schedules; at most 12 minutes of
  training per chapter at the speed measured on 2 cores (:data:`CPU_MACS_PER_S`).
* ``gpu``: a free Colab T4. Full data sets, short schedules; at most 15
  minutes per chapter by the central estimate of the T4 model
  (:mod:`resnet_lab.throughput`).
* ``paper``: the paper's schedules as the paper ran them (64k iterations,
  the depths of Table 6), hours on a T4; resumable from the run folder.

The profile comes from ``RESNET_LAB_PROFILE`` or, if unset, from the machine
(``gpu`` where CUDA is available, else ``cpu``); ``RESNET_LAB_CAP`` caps every
size (:mod:`resnet_lab.settings`). A profile is a name: each chapter's sizes
under it are in the chapter's module (:mod:`resnet_lab.chapters`), read with
:meth:`Profile.sizes`; how networks are trained is in :mod:`resnet_lab.recipes`.

Planning is arithmetic over each chapter's plan (``chapter.plan(sizes)``).
On two CPU cores: the MACs per image of each network (from the tracer)
times the images it trains on times 3 (forward and backward), plus the
images it only evaluates, at one measured rate (:data:`CPU_MACS_PER_S`).
On a T4 (``gpu`` and ``paper``): each network's own planned seconds per
image from :mod:`resnet_lab.throughput`, which knows that narrow networks
are slow per MAC, with the model's uncertainty as a range
(:func:`chapter_time`). Before each long run, the chapter measures the real
speed with a probe (:func:`resnet_lab.runs.probe`), and the runner keeps
the profile's budget per chapter (:attr:`Profile.budget_minutes`,
:func:`call_budget`).
"""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch

from . import chapters, settings
from . import device as dev
from . import throughput as tp
from .sizes import PlannedRun, capped

__all__ = [
    "Profile", "PROFILES", "get_profile", "banner", "planned_work", "planned_seconds", "planned_minutes",
    "PlannedTime", "planned_time", "chapter_time", "chapter_plan", "left_out", "Budget", "call_budget",
    "CPU_MACS_PER_S", "T4_PROFILES", "CHAPTERS",
]  # fmt: skip

CHAPTERS = chapters.CHAPTERS

#: The chapter whose sizes a profile gave last: only an order in which :func:`call_budget` searches.
_LAST_READ: list[str | None] = [None]

#: Training throughput measured on this book's 2-core laptop-class CPU (fp32,
#: MACs counted as in :func:`planned_work`, evaluation passes and start-up included):
#: ``benchmarks/plan_vs_measured.py`` measured 32.9 to 38.5 G MAC/s on
#: ResNet-20 and ResNet-56 runs (2,000 images, 2 epochs), and the `cpu`
#: chapters' measured times agree with plans at this rate within about 15%
#: (Keras' own training loop, in chapter 8, is slower).
CPU_MACS_PER_S = 35e9


@dataclass(frozen=True)
class Profile:
    """A profile: its name, what it is for, how long its speed probes are, an optional cap, and its time
    budget per chapter.

    Sizes live with their chapters: ``profile.sizes("cifar")`` is
    ``chapters.cifar.SIZES[profile.name]``, capped where the profile is.
    """

    name: str
    description: str
    #: Training steps per network in the speed probe before each run.
    probe_steps: int = 10
    #: ``(images, epochs)``: every size at most these (see :func:`resnet_lab.sizes.capped`).
    cap: tuple[int, int] | None = None
    #: Minutes of training and evaluation a chapter may take on the profile's device (None: no budget).
    #: The runner shortens a schedule whose probe says it would take longer (:func:`call_budget`).
    budget_minutes: float | None = None

    def sizes(self, chapter: str):
        """``chapter``'s sizes under this profile (capped where the profile is)."""
        _LAST_READ[0] = chapter  # where call_budget looks first (a notebook reads its own chapter's sizes)
        sizes = chapters.get(chapter).SIZES[self.name]
        return capped(sizes, *self.cap) if self.cap else sizes

    def capped(self, images: int, epochs: int) -> Profile:
        """This profile with every data size at most ``images`` and every epoch or step count at most
        ``epochs``: the profile's code paths, depths and networks, in seconds (probes of one step)."""
        return replace(self, description=f"{self.description} [capped at {images} images, {epochs} epochs]",
                       probe_steps=1, cap=(images, epochs))  # fmt: skip

    @property
    def key(self) -> str:
        """The name, with the cap where there is one (part of every checkpoint's fingerprint)."""
        return self.name if self.cap is None else f"{self.name} capped at {self.cap[0]}x{self.cap[1]}"


PROFILES: dict[str, Profile] = {
    "smoke": Profile("smoke", "CI: tiny subsets, one epoch, seconds per notebook", probe_steps=2),
    "cpu": Profile("cpu", "a 2-core laptop: real data, short schedules, minutes per chapter", budget_minutes=12),
    "gpu": Profile("gpu", "a free Colab T4: full data, short schedules, at most 15 minutes per chapter",
                   budget_minutes=15),
    "paper": Profile("paper", "the paper's schedules on a T4: 64k iterations, full CIFAR-10, from minutes to hours per "
                     "chapter, resumable"),
}  # fmt: skip


def get_profile(name: str | None = None) -> Profile:
    """The profile ``name``, else ``$RESNET_LAB_PROFILE``, else by machine; capped by ``$RESNET_LAB_CAP``."""
    chosen = name or settings.profile_name() or ("gpu" if torch.cuda.is_available() else "cpu")
    key = chosen.strip().lower()
    if key not in PROFILES:
        where = "argument" if name else "RESNET_LAB_PROFILE"
        raise ValueError(
            f"unknown profile {chosen!r} (from {where}); expected one of {', '.join(PROFILES)}. "
            "Set RESNET_LAB_PROFILE=smoke|cpu|gpu|paper, or unset it to choose by machine."
        )
    cap = settings.cap()
    return PROFILES[key].capped(*cap) if cap else PROFILES[key]


def banner(profile: Profile | None = None) -> str:
    """One line for the top of every notebook: profile, device, versions."""
    import resnet_lab

    profile = profile or get_profile()
    return (f"ResNet Lab | profile: {profile.name} ({profile.description}) | device: {dev.describe()} | "
            f"torch {torch.__version__} | resnet_lab {resnet_lab.__version__}")  # fmt: skip


# --- Planning ---------------------------------------------------------------------------

#: The profiles planned on a T4 (the others on two CPU cores).
T4_PROFILES = ("gpu", "paper")


def planned_work(run: PlannedRun) -> float:
    """MACs of ``run``: MACs per image (traced) x (3 x images trained on + images evaluated)."""
    macs = tp.features(run.net, run.input_shape).macs
    return macs * (3 * run.trained + run.evaluated)


def planned_seconds(run: PlannedRun, profile: Profile) -> float:
    """Central planned seconds of ``run`` on ``profile``'s device: on a T4, the network's own seconds per
    trained and per evaluated image (:mod:`resnet_lab.throughput`); elsewhere
    :func:`planned_work` at :data:`CPU_MACS_PER_S`."""
    if profile.name in T4_PROFILES:
        f = tp.features(run.net, run.input_shape)
        return run.trained * tp.train_seconds(f) + run.evaluated * tp.eval_seconds(f)
    return planned_work(run) / CPU_MACS_PER_S


def _duration(minutes: float) -> str:
    return f"{minutes / 60:.1f} h" if minutes >= 90 else f"{minutes:.0f} min"


@dataclass(frozen=True)
class PlannedTime:
    """A planned time in minutes: the central estimate and the range the model's uncertainty allows
    (``low == high == minutes`` where the plan is one measured rate), on ``device`` (in words)."""

    minutes: float
    low: float
    high: float
    device: str

    def span(self) -> str:
        """``"11-24 min"``, ``"1.2-2.6 h"``, ``"under a minute"`` or, for one figure, ``"9 min"``."""
        if self.high < 1:
            return "under a minute"
        if round(self.low) == round(self.high) or self.low == self.high:
            return _duration(self.minutes)
        if self.high >= 90:
            return f"{self.low / 60:.1f}-{self.high / 60:.1f} h"
        return f"{max(self.low, 1):.0f}-{self.high:.0f} min"

    def __str__(self) -> str:
        span = self.span()
        central = f", central {_duration(self.minutes)}" if "-" in span else ""
        return f"about {span} on {self.device}{central}"


def planned_time(profile: Profile, runs: Sequence[PlannedRun]) -> PlannedTime:
    """The planned time of ``runs`` on ``profile``'s device, with the model's range on a T4."""
    minutes = sum(planned_seconds(r, profile) for r in runs) / 60
    if profile.name in T4_PROFILES:
        low, high = tp.band()
        return PlannedTime(minutes, minutes * low, minutes * high, "a T4")
    return PlannedTime(minutes, minutes, minutes, "2 CPU cores")


def chapter_plan(profile: Profile, chapter: str) -> list[PlannedRun]:
    """The training and evaluation work of ``chapter`` under ``profile``, network by network: the
    chapter's own ``plan``, which enumerates the builders its notebook calls."""
    return chapters.get(chapter).plan(profile.sizes(chapter))


def chapter_time(profile: Profile, chapter: str) -> PlannedTime:
    """The planned time of all of ``chapter``'s work under ``profile`` (:func:`planned_time`)."""
    return planned_time(profile, chapter_plan(profile, chapter))


def planned_minutes(profile: Profile, chapter: str, macs_per_s: float | None = None) -> float:
    """Planned minutes of ``chapter``'s training and evaluation under ``profile``: the central estimate
    (:func:`chapter_time`), or with ``macs_per_s`` the MACs of its plan at that one rate."""
    if macs_per_s is None:
        return chapter_time(profile, chapter).minutes
    return sum(planned_work(r) for r in chapter_plan(profile, chapter)) / macs_per_s / 60


def left_out(run: PlannedRun, profile: Profile) -> str:
    """Why ``run``'s network is not trained under ``profile``: the minutes it would add there."""
    added = planned_time(profile, [run])
    return textwrap.fill(f"The {run.label} is not in the {profile.name} profile: training it on "
                         f"{run.trained:,} images would add, by the plan, {added}, past this chapter's budget. "
                         "The paper profile trains it.", 72)  # fmt: skip


# --- The budget the runner keeps ---------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """The seconds one :func:`resnet_lab.runs.train_all` call may take: ``share`` of ``chapter``'s
    ``minutes`` (None: a budget given by hand)."""

    seconds: float
    chapter: str | None = None
    minutes: float | None = None
    share: float | None = None

    def __str__(self) -> str:
        if self.chapter is None:
            return f"the budget of {self.seconds / 60:.1f} min given"
        return (f"this run's share ({self.share:.0%}) of the {self.minutes:.0f}-minute budget of chapter "
                f"'{self.chapter}', {self.seconds / 60:.1f} min")


_PLANS: dict[tuple[str, str], list[PlannedRun]] = {}


def _cached_plan(profile: Profile, chapter: str) -> list[PlannedRun]:
    key = (profile.key, chapter)
    if key not in _PLANS:
        _PLANS[key] = chapter_plan(profile, chapter)
    return _PLANS[key]


def call_budget(profile: Profile, runs: Sequence[tuple[str, int]]) -> Budget | None:
    """The budget of one ``train_all`` call under ``profile``: the profile's minutes per chapter times this
    call's share of its chapter's planned time (central estimates). ``runs`` are the call's (label,
    images trained on); the chapter is the one whose plan holds every one of them as ``train_all``
    runs (the identity ``tools/check_runs.py`` checks), looked for first in the chapter whose sizes
    the profile gave last, then in book order. None where the profile has no budget, is capped, or no
    chapter plans these runs (a call of the reader's own): such a call is not shortened.

    Sharing by planned time gives a chapter that calls ``train_all`` several times (per seed, per
    group of networks) a part of the budget for each call in proportion to the time its networks
    were planned to take; the calls together get the budget times the ``train_all`` runs' share of the
    chapter's planned time, so the chapter's other work (another framework's trainer, evaluation and
    lesion passes) keeps its planned share. That other work is never shortened, and a call never
    goes below one epoch per network: the budget is kept where the plan is right about that work.
    """
    if profile.budget_minutes is None or profile.cap is not None or not runs:
        return None
    wanted = Counter(runs)
    order = sorted(CHAPTERS, key=lambda c: c != _LAST_READ[0])
    for chapter in order:
        plan = _cached_plan(profile, chapter)
        pool = Counter((r.label, r.trained) for r in plan if r.runner == "train_all")
        if all(pool[k] >= n for k, n in wanted.items()):
            seconds = {(r.label, r.trained): planned_seconds(r, profile) for r in plan if r.runner == "train_all"}
            total = sum(planned_seconds(r, profile) for r in plan)
            share = sum(seconds[k] * n for k, n in wanted.items()) / total
            return Budget(profile.budget_minutes * 60 * share, chapter, profile.budget_minutes, share)
    return None

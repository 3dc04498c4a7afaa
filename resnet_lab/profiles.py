"""Run profiles: how big every experiment in the book is, and how long it is planned to take.

* ``smoke``: CI. Tiny subsets, one epoch; checks that the code runs, not what it finds.
* ``cpu``: a 2-core laptop. Real data, short schedules; at most 12 minutes of
  training per chapter at the speed measured on 2 cores (:data:`CPU_MACS_PER_S`).
* ``gpu``: a free Colab T4. Full data sets, short schedules; at most 15
  minutes per chapter, planned with a margin (:data:`GPU_MARGIN`).
* ``paper``: the paper's schedules as the paper ran them (64k iterations,
  the depths of Table 6), hours on a T4; resumable from the run folder.

The profile comes from ``RESNET_LAB_PROFILE`` or, if unset, from the machine
(``gpu`` where CUDA is available, else ``cpu``); ``RESNET_LAB_CAP`` caps every
size (:mod:`resnet_lab.settings`). A profile is a name: each chapter's sizes
under it are in the chapter's module (:mod:`resnet_lab.chapters`), read with
:meth:`Profile.sizes`; how networks are trained is in :mod:`resnet_lab.recipes`.

Planning is arithmetic over each chapter's plan (``chapter.plan(sizes)``):
the MACs per image of each network (from the tracer) times the images it
trains on times 3 (forward and backward), plus the images it only
evaluates; divided by a throughput, that is the planned time
(:func:`planned_minutes`). Before each long run, the
chapter measures the real speed with a probe (:func:`resnet_lab.runs.probe`).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, replace

import torch

from . import chapters, settings
from . import device as dev
from .sizes import PlannedRun, capped

__all__ = [
    "Profile", "PROFILES", "get_profile", "banner", "planned_work", "planned_minutes", "chapter_plan",
    "planning_rate", "left_out", "T4_MACS_PER_S", "GPU_MARGIN", "CPU_MACS_PER_S", "CHAPTERS",
]  # fmt: skip

CHAPTERS = chapters.CHAPTERS

#: Planning throughput of Colab's free GPU, a Tesla T4, in mixed precision:
#: multiply-accumulates per second, counting a training image as 3 forward
#: passes. NVIDIA measured ResNet-50 v1.5 inference on a T4 in mixed precision
#: at 1,198 images/s (batch 256; NVIDIA DeepLearningExamples,
#: PyTorch/Classification/ConvNets/resnet50v1.5/README.md, "Inference
#: performance: NVIDIA T4"); at 4.09 G MACs per image that is 4.9e12 MAC/s.
#: The same README's V100 figures (1,156 images/s training, 3,382 inference)
#: show training at about a third of inference speed, which the factor 3 of
#: forward + backward assumes.
T4_MACS_PER_S = 1_198 * 4.089e9

#: ResNet-50's MAC rate is an upper bound for the book's networks (the
#: narrow CIFAR nets, 16 to 64 channels, use a GPU far less fully), so ``gpu``
#: profiles are planned at no more than a third of the 15-minute budget at
#: that rate. The probe before each run replaces this assumption by a
#: measurement on the reader's GPU.
GPU_MARGIN = 3

#: Training throughput measured on this book's 2-core laptop-class CPU (fp32,
#: MACs counted as above, evaluation passes and start-up included):
#: ``benchmarks/plan_vs_measured.py`` measured 32.9 to 38.5 G MAC/s on
#: ResNet-20 and ResNet-56 runs (2,000 images, 2 epochs), and the `cpu`
#: chapters' measured times agree with plans at this rate within about 15%
#: (Keras' own training loop, in chapter 8, is slower).
CPU_MACS_PER_S = 35e9


@dataclass(frozen=True)
class Profile:
    """A profile: its name, what it is for, how long its speed probes are, and an optional cap.

    Sizes live with their chapters: ``profile.sizes("cifar")`` is
    ``chapters.cifar.SIZES[profile.name]``, capped where the profile is.
    """

    name: str
    description: str
    #: Training steps per network in the speed probe before each run.
    probe_steps: int = 10
    #: ``(images, epochs)``: every size at most these (see :func:`resnet_lab.sizes.capped`).
    cap: tuple[int, int] | None = None

    def sizes(self, chapter: str):
        """``chapter``'s sizes under this profile (capped where the profile is)."""
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
    "cpu": Profile("cpu", "a 2-core laptop: real data, short schedules, minutes per chapter"),
    "gpu": Profile("gpu", "a free Colab T4: full data, short schedules, at most 15 minutes per chapter"),
    "paper": Profile("paper", "the paper's schedules on a T4: 64k iterations, full CIFAR-10, hours per chapter, "
                     "resumable"),
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


# --- Planning -----------------------------------------------------------------------------

_MACS: dict[tuple, int] = {}


def planned_work(run: PlannedRun) -> float:
    """MACs of ``run``: MACs per image (traced) x (3 x images trained on + images evaluated)."""
    from .trace import trace

    net = run.net
    key = (type(net).__name__, str(getattr(net, "arch", "")), sum(p.numel() for p in net.parameters()),
           run.input_shape)  # fmt: skip
    if key not in _MACS:
        _MACS[key] = trace(net, (1, *run.input_shape)).total_macs
    return _MACS[key] * (3 * run.trained + run.evaluated)


def chapter_plan(profile: Profile, chapter: str) -> list[PlannedRun]:
    """The training and evaluation work of ``chapter`` under ``profile``, network by network: the
    chapter's own ``plan``, which enumerates the builders its notebook calls."""
    return chapters.get(chapter).plan(profile.sizes(chapter))


def planned_minutes(profile: Profile, chapter: str, macs_per_s: float) -> float:
    """Planned minutes of ``chapter``'s training and evaluation under ``profile`` at ``macs_per_s``."""
    return sum(planned_work(r) for r in chapter_plan(profile, chapter)) / macs_per_s / 60


def planning_rate(profile: Profile) -> tuple[float, str]:
    """The MAC rate ``profile`` is planned at, and its device in words: a T4 with the margin for
    ``gpu`` and ``paper``, two CPU cores for the others."""
    if profile.name in ("gpu", "paper"):
        return T4_MACS_PER_S / GPU_MARGIN, "a T4, with the margin"
    return CPU_MACS_PER_S, "2 CPU cores"


def left_out(run: PlannedRun, profile: Profile) -> str:
    """Why ``run``'s network is not trained under ``profile``: the minutes it would add there."""
    rate, where = planning_rate(profile)
    minutes = planned_work(run) / rate / 60
    return textwrap.fill(f"The {run.label} is not in the {profile.name} profile: training it on "
                         f"{run.trained:,} images would add about {minutes:.0f} planned minutes on {where}, past "
                         "this chapter's budget. The paper profile trains it.", 72)  # fmt: skip

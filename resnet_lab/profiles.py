"""Run profiles: how big every experiment in the book is, and how long it is planned to take.

* ``smoke``: CI. Tiny subsets, one epoch; checks that the code runs, not what it finds.
* ``cpu``: a 2-core laptop. Real data, short schedules; at most 12 minutes of
  training per chapter at the speed measured on 2 cores (:data:`CPU_MACS_PER_S`).
* ``gpu``: a free Colab T4. Full data sets, short schedules; at most 15
  minutes per chapter, planned with a margin (:data:`GPU_MARGIN`).
* ``paper``: the paper's schedules as the paper ran them (64k iterations,
  the depths of Table 6), hours on a T4; resumable from the run folder.

The profile comes from ``RESNET_LAB_PROFILE`` or, if unset, from the machine
(``gpu`` where CUDA is available, else ``cpu``). Profiles hold sizes only,
one group per chapter; how networks are trained is in :mod:`resnet_lab.recipes`.

Planning is arithmetic: a chapter's work is the MACs per image of each
network (from the tracer) times the images it trains on times 3 (forward and
backward), plus the images it only evaluates; divided by a throughput, that
is the planned time (:func:`planned_minutes`). Before each long run, the
chapter measures the real speed with a probe (:func:`resnet_lab.runs.probe`).
"""

from __future__ import annotations

import functools
import os
import textwrap
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, is_dataclass, replace

import torch

__all__ = [
    "Profile", "PROFILES", "get_profile", "test_cap", "banner", "planned_work", "planned_minutes", "chapter_plan",
    "planning_rate", "left_out", "T4_MACS_PER_S", "GPU_MARGIN", "CPU_MACS_PER_S", "CHAPTERS",
    "GPU_CIFAR_EXPECTATION",
]  # fmt: skip

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

#: What the ``gpu`` profile's short CIFAR-10 runs (one cycle, 30 epochs of
#: batch 128: 11,730 iterations) can be expected to reach, in test accuracy
#: (%): Smith & Topin (2019) trained the paper's ResNet-20 and ResNet-56 with
#: one learning-rate cycle of 10,000 iterations and released the logs
#: (github.com/lnsmith54/super-convergence, Results/clr3SS5kRes20Tab1 and
#: Results/clr3SS5kFig1a): 90.42% and 92.44% at the end. Their batches held
#: 1,000 images, ours 128, so ours see fewer images and may end lower; the
#: chapter prints this expectation beside what the run measures.
GPU_CIFAR_EXPECTATION = {"ResNet-20": 90.42, "ResNet-56": 92.44}

#: The chapters, in the book's order (the keys of every profile's size groups).
CHAPTERS = ("tracing", "degradation", "residual", "fashion", "cifar", "beyond", "transfer", "keras")


@dataclass(frozen=True)
class TracingSizes:
    """Inside the blocks: the ImageNet depths checked against torchvision's published figures."""

    checked_depths: tuple[int, ...]


@dataclass(frozen=True)
class DegradationSizes:
    """The degradation experiment: plain and residual nets at ``depths``, one run per seed."""

    dataset: str
    depths: tuple[int, ...]
    train: int | None
    test: int | None
    epochs: int
    seeds: tuple[int, ...]
    batch_size: int


@dataclass(frozen=True)
class ResidualSizes:
    """Residual learning: gradient norms at ``depths``, the identity task, shattered gradients."""

    depths: tuple[int, ...]
    batch: int
    identity_steps: int
    shatter_depth: int
    shatter_points: int
    shatter_seeds: int


@dataclass(frozen=True)
class FashionSizes:
    """Training on Fashion-MNIST: D2L's recipe, then the laptop recipe with a CIFAR-family net."""

    d2l_train: int | None
    d2l_test: int | None
    d2l_epochs: int
    timing_images: int
    depth: int
    train: int | None
    test: int | None
    epochs: int


@dataclass(frozen=True)
class CifarSizes:
    """Training on CIFAR-10: the paper's nets at ``depths`` (and the CIFAR ResNet-18) with ``recipe``."""

    recipe: str
    depths: tuple[int, ...]
    resnet18: bool
    train: int | None
    test: int | None
    epochs: int


@dataclass(frozen=True)
class BeyondSizes:
    """Beyond the original ResNet: pre-activation, zero-init, lesions and loss landscapes."""

    dataset: str
    depth: int
    train: int | None
    test: int | None
    epochs: int
    zero_init_epochs: int
    gradient_depth: int
    landscape_points: int
    landscape_images: int


@dataclass(frozen=True)
class TransferSizes:
    """Transfer learning: a source task to pre-train on, few labels per class on the target task."""

    source_train: int | None
    source_epochs: int
    labels_per_class: tuple[int, ...]
    target_test: int | None
    target_steps: int
    flowers_epochs: int


@dataclass(frozen=True)
class KerasSizes:
    """The same ResNet in Keras: a brief run of both frameworks on a Fashion-MNIST subset."""

    train: int
    test: int
    epochs: int


@dataclass(frozen=True)
class Profile:
    """Sizes of every chapter's experiments. ``None`` as a size means the whole split."""

    name: str
    description: str
    tracing: TracingSizes
    degradation: DegradationSizes
    residual: ResidualSizes
    fashion: FashionSizes
    cifar: CifarSizes
    beyond: BeyondSizes
    transfer: TransferSizes
    keras: KerasSizes

    def as_dict(self) -> dict:
        return asdict(self)

    def capped(self, images: int, epochs: int) -> Profile:
        """This profile with every data size at most ``images`` and every epoch count at most ``epochs``
        (tests only: runs the profile's code paths, depths and networks on the CPU in seconds)."""

        def cap(group):
            changes = {}
            for f in fields(group):
                value = getattr(group, f.name)
                if f.name in ("train", "test", "source_train", "target_test", "d2l_train", "d2l_test", "timing_images"):
                    changes[f.name] = images if value is None else min(value, images)
                elif f.name.endswith("epochs") or f.name == "target_steps":
                    changes[f.name] = min(value, epochs)
                elif f.name == "landscape_points":  # a grid of loss evaluations per side
                    changes[f.name] = min(value, 3)
                elif f.name == "shatter_points":  # a sweep: the autocorrelation needs its interior
                    changes[f.name] = min(value, 64)
            return replace(group, **changes)

        groups = {f.name: cap(getattr(self, f.name)) for f in fields(self) if is_dataclass(getattr(self, f.name))}
        return replace(self, description=f"{self.description} [capped for tests]", **groups)


PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        "smoke", "CI: tiny subsets, one epoch, seconds per notebook",
        TracingSizes((18, 50)),
        DegradationSizes("fashion_mnist", (8, 14), 256, 128, 1, (0,), 32),
        ResidualSizes((8, 20), 16, 30, 10, 64, 2),
        FashionSizes(256, 128, 1, 64, 8, 512, 256, 1),
        CifarSizes("short", (8, 14), False, 256, 128, 1),
        BeyondSizes("fashion_mnist", 8, 256, 128, 1, 1, 20, 3, 64),
        TransferSizes(500, 1, (2, 5), 250, 5, 0),
        KerasSizes(256, 128, 1),
    ),
    "cpu": Profile(
        "cpu", "a 2-core laptop: real data, short schedules, minutes per chapter",
        TracingSizes((18, 34, 50, 101, 152)),
        DegradationSizes("fashion_mnist", (20, 56), 1_800, 500, 8, (0, 1), 32),
        ResidualSizes((8, 20, 56, 110), 64, 300, 50, 256, 5),
        FashionSizes(2_560, 1_024, 1, 512, 14, None, None, 4),
        CifarSizes("short", (8, 20), False, 5_000, 1_000, 25),
        BeyondSizes("fashion_mnist", 32, 2_000, 1_000, 10, 2, 110, 11, 256),
        TransferSizes(10_000, 3, (10, 50, 250), 2_000, 150, 0),
        KerasSizes(5_000, 1_000, 6),
    ),
    "gpu": Profile(
        "gpu", "a free Colab T4: full data, short schedules, at most 15 minutes per chapter",
        TracingSizes((18, 34, 50, 101, 152)),
        DegradationSizes("cifar10", (20, 56), None, None, 20, (0,), 128),
        ResidualSizes((8, 20, 56, 110), 64, 300, 50, 256, 5),
        FashionSizes(None, None, 10, 4_096, 20, None, None, 15),
        CifarSizes("short", (20, 56), False, None, None, 30),
        BeyondSizes("cifar10", 56, None, None, 15, 2, 110, 21, 1_000),
        TransferSizes(None, 5, (10, 50, 250), None, 400, 15),
        KerasSizes(10_000, 2_000, 5),
    ),
    "paper": Profile(
        "paper", "the paper's schedules on a T4: 64k iterations, full CIFAR-10, hours per chapter, resumable",
        TracingSizes((18, 34, 50, 101, 152)),
        DegradationSizes("cifar10", (20, 32, 44, 56), None, None, 164, (0,), 128),
        ResidualSizes((8, 20, 56, 110), 128, 1_000, 50, 256, 10),
        FashionSizes(None, None, 10, 4_096, 20, None, None, 30),
        CifarSizes("paper", (20, 32, 44, 56, 110), True, None, None, 164),
        BeyondSizes("cifar10", 110, None, None, 164, 2, 110, 21, 1_000),
        TransferSizes(None, 15, (10, 50, 250), None, 400, 30),
        KerasSizes(60_000, 10_000, 15),
    ),
}  # fmt: skip

#: A test-only override: ``RESNET_LAB_TEST_CAP="images,epochs"`` caps every size
#: of the chosen profile (see :meth:`Profile.capped`); never set it for reading.
TEST_CAP_VARIABLE = "RESNET_LAB_TEST_CAP"


def test_cap() -> tuple[int, int] | None:
    """``(images, epochs)`` from ``$RESNET_LAB_TEST_CAP``, or None where it is unset."""
    cap = os.environ.get(TEST_CAP_VARIABLE)
    if not cap:
        return None
    try:
        images, epochs = (int(v) for v in cap.split(","))
    except ValueError:
        raise ValueError(f"{TEST_CAP_VARIABLE} must be 'images,epochs' (for example 64,1), got {cap!r}") from None
    return images, epochs


def get_profile(name: str | None = None) -> Profile:
    """The profile ``name``, else ``$RESNET_LAB_PROFILE``, else by machine."""
    chosen = name or os.environ.get("RESNET_LAB_PROFILE") or ("gpu" if torch.cuda.is_available() else "cpu")
    key = chosen.strip().lower()
    if key not in PROFILES:
        where = "argument" if name else "RESNET_LAB_PROFILE"
        raise ValueError(
            f"unknown profile {chosen!r} (from {where}); expected one of {', '.join(PROFILES)}. "
            "Set RESNET_LAB_PROFILE=smoke|cpu|gpu|paper, or unset it to choose by machine."
        )
    cap = test_cap()
    return PROFILES[key].capped(*cap) if cap else PROFILES[key]


def banner(profile: Profile | None = None) -> str:
    """One line for the top of every notebook: profile, device, versions."""
    import resnet_lab

    profile = profile or get_profile()
    if torch.cuda.is_available():
        device = f"cuda ({torch.cuda.get_device_name(0)})"
    else:
        device = f"cpu ({torch.get_num_threads()} threads)"
    return (f"ResNet Lab | profile: {profile.name} ({profile.description}) | device: {device} | "
            f"torch {torch.__version__} | resnet_lab {resnet_lab.__version__}")  # fmt: skip


# --- Planning -----------------------------------------------------------------------------

#: Split sizes of the data sets (None in a profile means these).
FULL = {"fashion_mnist": (60_000, 10_000), "cifar10": (50_000, 10_000), "flowers102": (1_020, 6_149)}


@dataclass(frozen=True)
class PlannedRun:
    """One piece of a chapter's work: a network, its input, images trained on and images only evaluated."""

    label: str
    make: Callable[[], torch.nn.Module]
    input_shape: tuple[int, int, int]
    trained: int
    evaluated: int


_MACS: dict[str, int] = {}


def planned_work(run: PlannedRun) -> float:
    """MACs of ``run``: MACs per image (traced) x (3 x images trained on + images evaluated)."""
    from .trace import trace

    key = f"{run.make!r} {run.input_shape}"
    if key not in _MACS:
        _MACS[key] = trace(run.make(), (1, *run.input_shape)).total_macs
    return _MACS[key] * (3 * run.trained + run.evaluated)


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


def _n(size: int | None, dataset: str, split: int) -> int:
    return FULL[dataset][split] if size is None else size


def chapter_plan(profile: Profile, chapter: str) -> list[PlannedRun]:
    """The training and evaluation work of ``chapter`` under ``profile``, network by network.

    This mirrors the networks each chapter builds in its Run cells; a test
    checks that the plan and the runs agree.
    """
    from . import models as M

    if chapter not in CHAPTERS:
        raise ValueError(f"unknown chapter {chapter!r}; expected one of {CHAPTERS}")
    runs: list[PlannedRun] = []
    if chapter == "degradation":
        s = profile.degradation
        c = 1 if s.dataset == "fashion_mnist" else 3
        shape = (c, 28, 28) if c == 1 else (3, 32, 32)
        train, test = _n(s.train, s.dataset, 0), _n(s.test, s.dataset, 1)
        for d in s.depths:
            for kind in ("plain", "residual"):
                make = functools.partial(M.cifar_resnet, d, plain=kind == "plain", in_channels=c)
                runs += [PlannedRun(f"{kind}-{d}", make, shape, train * s.epochs, test * s.epochs)] * len(s.seeds)
    elif chapter == "residual":
        s = profile.residual
        for d in s.depths:
            for kind in ("plain", "residual"):
                make = functools.partial(M.cifar_resnet, d, plain=kind == "plain", in_channels=1)
                runs.append(PlannedRun(f"{kind}-{d} gradient", make, (1, 28, 28), s.batch, 0))
    elif chapter == "fashion":
        s = profile.fashion
        d2l_train, d2l_test = _n(s.d2l_train, "fashion_mnist", 0), _n(s.d2l_test, "fashion_mnist", 1)
        for who in ("d2l", "ours"):
            runs.append(PlannedRun(f"D2L ResNet-18 ({who})", M.d2l_resnet18, (1, 96, 96), d2l_train * s.d2l_epochs,
                                   d2l_test * s.d2l_epochs))  # fmt: skip
        runs.append(PlannedRun("D2L ResNet-18 (timed epoch)", M.d2l_resnet18, (1, 96, 96), s.timing_images,
                               d2l_test))  # fmt: skip
        train, test = _n(s.train, "fashion_mnist", 0), _n(s.test, "fashion_mnist", 1)
        make = functools.partial(M.cifar_resnet, s.depth, in_channels=1)
        runs.append(PlannedRun(f"ResNet-{s.depth}", make, (1, 28, 28), train * s.epochs, test * (s.epochs + 1)))
    elif chapter == "cifar":
        s = profile.cifar
        train, test = _n(s.train, "cifar10", 0), _n(s.test, "cifar10", 1)
        makes = {f"ResNet-{d}": functools.partial(M.cifar_resnet, d) for d in s.depths}
        if s.resnet18:
            makes["CIFAR ResNet-18"] = M.cifar_resnet18
        runs += [PlannedRun(n, m, (3, 32, 32), train * s.epochs, test * s.epochs) for n, m in makes.items()]
    elif chapter == "beyond":
        s = profile.beyond
        c = 1 if s.dataset == "fashion_mnist" else 3
        shape = (c, 28, 28) if c == 1 else (3, 32, 32)
        train, test = _n(s.train, s.dataset, 0), _n(s.test, s.dataset, 1)
        nets = {"post-act": dict(), "pre-act": dict(preact=True), "plain": dict(plain=True)}
        for name, kw in nets.items():
            make = functools.partial(M.cifar_resnet, s.depth, in_channels=c, **kw)
            runs.append(PlannedRun(f"{name}-{s.depth}", make, shape, train * s.epochs, test * s.epochs))
        zero = functools.partial(M.cifar_resnet, s.depth, in_channels=c, zero_init_residual=True)
        runs.append(PlannedRun("zero-init", zero, shape, train * s.zero_init_epochs, test * s.zero_init_epochs))
        runs.append(PlannedRun("default-init", functools.partial(M.cifar_resnet, s.depth, in_channels=c), shape,
                               train * s.zero_init_epochs, test * s.zero_init_epochs))  # fmt: skip
        blocks = 3 * (s.depth - 2) // 6
        lesions = 2 * (blocks + blocks)  # one block at a time, then cumulative, for two nets
        landscape = 2 * (s.landscape_points**2 + s.landscape_points) * s.landscape_images
        make = functools.partial(M.cifar_resnet, s.depth, in_channels=c)
        runs.append(PlannedRun("lesions and landscapes", make, shape, 0, lesions * test + landscape))
    elif chapter == "transfer":
        s = profile.transfer
        source = _n(s.source_train, "fashion_mnist", 0) // 2
        make = functools.partial(M.cifar_resnet, 20, in_channels=1, num_classes=5)
        runs.append(PlannedRun("source ResNet-20", make, (1, 28, 28), source * s.source_epochs, 0))
        test = _n(s.target_test, "fashion_mnist", 1) // 2
        for _ in s.labels_per_class:
            for way in ("scratch", "probe", "fine-tune"):
                runs.append(PlannedRun(way, make, (1, 28, 28), s.target_steps * 64, test))
        if s.flowers_epochs:
            train, test = FULL["flowers102"]
            for way in ("scratch", "probe", "fine-tune"):
                runs.append(PlannedRun(f"Flowers {way}", M.resnet18, (3, 224, 224), train * s.flowers_epochs,
                                       test))  # fmt: skip
    elif chapter == "keras":
        s = profile.keras
        make = functools.partial(M.cifar_resnet, 20, in_channels=1)
        for who in ("keras", "ours"):
            runs.append(PlannedRun(f"ResNet-20 ({who})", make, (1, 28, 28), s.train * s.epochs, s.test * s.epochs))
    return runs

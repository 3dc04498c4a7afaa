"""How fast a free Colab T4 trains a given network: a two-term model, calibrated on published measurements.

The planning rate used to be one number for every network (NVIDIA's
ResNet-50 *inference* rate on a T4, divided by a margin of 3). Published
training measurements show why one number cannot fit: the paper's CIFAR
ResNets (16 to 64 channels) reach a small fraction of a wide network's
multiply-accumulate (MAC) rate on the same GPU, and their epoch time grows
with their activations rather than their MACs (SharpNet on a GTX 1080:
ResNet-110 takes 5.4 times ResNet-20's epoch, with 5.5 times its
activations and 6.2 times its MACs). This module plans
a training image on a T4 in mixed precision as the slower of two costs::

    seconds per training image = max(3 M / P, theta E)

* ``M``: the network's MACs per image (:func:`features`, from the tracer);
  a training image costs three forward passes' worth (forward, and the
  backward pass's two products).
* ``E``: its *activations* per image: the elements of every layer's and
  every addition's output (convolutions, BatchNorms, ReLUs, shortcuts,
  sums), each written and read again in the forward pass and in the backward
  pass. A narrow network moves many activations per MAC: ResNet-20 does
  about 60 MACs per activation, the wide WRN-28-10 about 630.
* ``P`` (:func:`conv_rate`): the MAC rate of the T4 where arithmetic is the
  bottleneck, from the one published training measurement on a T4.
* ``theta`` (:func:`activation_seconds`): the T4's time per activation of a
  training image where memory traffic is the bottleneck, from measurements
  of narrow networks on other GPUs, moved to a T4 by memory bandwidth and
  bytes per value (fp32's 4 to mixed precision's 2).

The MAC rate is then ``P`` for networks with more than ``theta P / 3``
MACs per activation (:func:`knee`) and proportionally less below it: a
saturation in width. An image that is only evaluated costs a third of a
trained one (one forward pass), as the arithmetic plan always assumed.

Every figure the model rests on is in :data:`SOURCES`, with where it comes
from and how its images per second were derived; :func:`band` is the spread
of the calibration measurements around the model (the factor by which a
planned time may be too short or too long), and every plan is printed as a
range with it. The cross-checks that are not used to calibrate (other GPUs,
other precisions, inference) and their errors are printed by
``benchmarks/plan_vs_measured.py``. None of these figures was measured by
this book: no GPU has been available to it. The probe before every run
(:func:`resnet_lab.runs.probe`) measures the reader's own device, and the
runner keeps each chapter's time budget from that measurement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

from torch import nn

__all__ = ["GPU", "GPUS", "BYTES", "Features", "Measurement", "SOURCES", "features", "conv_rate",
           "activation_seconds", "knee", "band", "train_seconds", "eval_seconds", "macs_per_s", "to_t4",
           "residuals"]  # fmt: skip


@dataclass(frozen=True)
class GPU:
    """A GPU as the model sees it: its memory bandwidth (bytes per second, from its datasheet)."""

    name: str
    bandwidth: float


#: Memory bandwidth of every GPU a source ran on: NVIDIA's specifications (bus width x memory data rate).
#: The T4's 320 GB/s (256-bit GDDR6 at 10 Gbps; with 8.1 TFLOPS FP32 and 65 TFLOPS mixed precision) is
#: NVIDIA's T4 datasheet figure; the GeForce cards' are their launch specifications, not checked here
#: against a stored copy of NVIDIA's pages.
GPUS: dict[str, GPU] = {
    "T4": GPU("Tesla T4", 320e9),
    "GTX 1080": GPU("GeForce GTX 1080", 320e9),
    "GTX 1080 Ti": GPU("GeForce GTX 1080 Ti", 484e9),
    "RTX 2080 Ti": GPU("GeForce RTX 2080 Ti", 616e9),
}

#: Bytes per activation value by precision (mixed precision keeps activations in fp16).
BYTES = {"fp32": 4, "fp16": 2, "mixed": 2}


@dataclass(frozen=True)
class Features:
    """What the model reads of a network: MACs and activations per image (:func:`features`)."""

    macs: int
    activations: int

    @property
    def macs_per_activation(self) -> float:
        return self.macs / self.activations


@dataclass(frozen=True)
class Measurement:
    """One published training (or inference) speed: which network, on which GPU, how fast.

    ``images_per_s`` is derived from the source's own figure (``figure``) as ``how`` says;
    ``role`` is ``compute`` (calibrates :func:`conv_rate`), ``memory`` (calibrates
    :func:`activation_seconds`) or ``check`` (compared with the model, not used by it).
    ``features`` are this book's tracer's counts for the network (for WRNs, a WRN as Zagoruyko &
    Komodakis 2016 define it, traced the same way).
    """

    source: str
    network: str
    gpu: str
    precision: str
    batch: int
    figure: str
    images_per_s: float
    how: str
    features: Features
    role: str
    training: bool = True


# Traced with resnet_lab.throughput.features: the paper's CIFAR nets (option A), the CIFAR ResNet-18,
# WRNs, ImageNet ResNet-50 at 224x224 (tests/test_profiles.py re-traces the ones models.py builds).
_R20, _R32, _R44 = Features(40_551_040, 663_626), Features(68_862_592, 1_065_034), Features(97_174_144, 1_466_442)
_R56, _R110 = Features(125_485_696, 1_867_850), Features(252_887_680, 3_674_186)
_R18 = Features(555_422_720, 2_032_138)
_WRN28 = Features(5_243_328_768, 8_365_322)
_R50 = Features(4_089_184_256, 37_559_784)

_CIFAR_EPOCH = 50_000  # training images per CIFAR-10 epoch
#: A 200-epoch run that also tests 10,000 images after every epoch, a tested image counted as a third of
#: a trained one (one forward pass): 200 x (50,000 + 10,000 / 3) training-image equivalents.
_BIGBALLON_IMAGES = 200 * (_CIFAR_EPOCH + 10_000 / 3)
_SHARPNET = ("FranckZibi/SharpNet, Prod/Networks/ResNetBuilder.cs (table 'SharpNet on 12-march-2019'); "
             "C# on cuDNN, single precision")  # fmt: skip
_BIGBALLON = "BIGBALLON/cifar-10-cnn, README.md ('Accuracy of all my implementations'); Keras on TensorFlow"
_CESHINE = ("ceshine/apex_pytorch_cifar_experiment, colab_snapshots/wide_resnet_10epochs_{}.ipynb (Google Colab, "
            "PyTorch 1.1, NVIDIA apex)")  # fmt: skip

#: Every published figure the model uses or is checked against.
SOURCES: tuple[Measurement, ...] = (
    Measurement(_CESHINE.format("O1"), "WRN-28-10", "T4", "mixed", 128,
                "log lines every 130 steps of 128 images, 58-60 s apart (epochs 2-10); 31 min 14 s for 10 epochs",
                130 * 128 / 59, "130 x 128 images / 59 s (training steps only)", _WRN28, "compute"),
    Measurement(_SHARPNET, "ResNet-20", "GTX 1080", "fp32", 128, "8.8 s/epoch", _CIFAR_EPOCH / 8.8,
                "50,000 images / 8.8 s", _R20, "memory"),
    Measurement(_SHARPNET, "ResNet-32", "GTX 1080", "fp32", 128, "13.8 s/epoch", _CIFAR_EPOCH / 13.8,
                "50,000 images / 13.8 s", _R32, "memory"),
    Measurement(_SHARPNET, "ResNet-44", "GTX 1080", "fp32", 128, "18.8 s/epoch", _CIFAR_EPOCH / 18.8,
                "50,000 images / 18.8 s", _R44, "memory"),
    Measurement(_SHARPNET, "ResNet-56", "GTX 1080", "fp32", 128, "23.8 s/epoch", _CIFAR_EPOCH / 23.8,
                "50,000 images / 23.8 s", _R56, "memory"),
    Measurement(_SHARPNET, "ResNet-110", "GTX 1080", "fp32", 128, "47.1 s/epoch", _CIFAR_EPOCH / 47.1,
                "50,000 images / 47.1 s", _R110, "memory"),
    Measurement(_BIGBALLON, "ResNet-20", "GTX 1080 Ti", "fp32", 128, "44 min for 200 epochs",
                _BIGBALLON_IMAGES / (44 * 60), "200 x (50,000 + 10,000 tested / 3) images / 44 min", _R20, "memory"),
    Measurement(_BIGBALLON, "ResNet-32", "GTX 1080 Ti", "fp32", 128, "1 h 7 min for 200 epochs",
                _BIGBALLON_IMAGES / (67 * 60), "200 x (50,000 + 10,000 tested / 3) images / 67 min", _R32, "memory"),
    Measurement(_BIGBALLON, "ResNet-110", "GTX 1080 Ti", "fp32", 128, "3 h 38 min for 200 epochs",
                _BIGBALLON_IMAGES / (218 * 60), "200 x (50,000 + 10,000 tested / 3) images / 218 min", _R110,
                "memory"),
    Measurement("kentaroy47/pytorch-cifar10-fp16, README.md ('resnet 18 ... with RTX2080ti'); PyTorch, "
                "network_to_half", "CIFAR ResNet-18", "RTX 2080 Ti", "fp16", 128, "10 sec/epoch",
                _CIFAR_EPOCH / 10, "50,000 images / 10 s", _R18, "check"),
    Measurement("NVIDIA/DeepLearningExamples, PyTorch/Classification/ConvNets/resnet50v1.5/README.md "
                "('Inference performance: NVIDIA T4', mixed precision)", "ResNet-50 (ImageNet, 224x224)", "T4",
                "mixed", 256, "1198 img/s", 1_198.0, "as published (inference: forward passes only)", _R50,
                "check", training=False),
)  # fmt: skip


def _geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def _t4_seconds_of_memory_bound(m: Measurement) -> float:
    """``m``'s seconds per training image moved to a T4 in mixed precision, for a memory-bound network:
    times the bandwidth ratio, times the ratio of bytes per value."""
    return (1 / m.images_per_s) * GPUS[m.gpu].bandwidth / GPUS["T4"].bandwidth * BYTES["mixed"] / BYTES[m.precision]


@cache
def activation_seconds() -> float:
    """``theta``: seconds per activation of a training image on a T4 in mixed precision.

    Each ``memory`` source's seconds per image, divided by the network's activations and moved to a
    T4 (:func:`to_t4`), averaged geometrically per source, then across sources (each source counts
    once, however many networks it timed). Treating these narrow networks as wholly memory-bound
    overstates theta a little (by this model their arithmetic alone would take a fifth to a quarter
    of their time on a T4), which errs towards longer plans.
    """
    by_source: dict[str, list[float]] = {}
    for m in SOURCES:
        if m.role == "memory":
            by_source.setdefault(m.source, []).append(_t4_seconds_of_memory_bound(m) / m.features.activations)
    return _geomean([_geomean(v) for v in by_source.values()])


@cache
def conv_rate() -> float:
    """``P``: MACs per second of a T4 in mixed precision where arithmetic is the bottleneck.

    The ``compute`` source (WRN-28-10 on a Colab T4 with apex O1, which casts as ``torch.autocast``
    does): 3 x its MACs x its training images per second. WRN-28-10 does about 630 MACs per
    activation, past :func:`knee`, so its time is its arithmetic by this model.
    """
    return _geomean([3 * m.features.macs * m.images_per_s for m in SOURCES if m.role == "compute"])


def knee() -> float:
    """MACs per activation above which a network is arithmetic-bound on a T4: ``theta P / 3``."""
    return activation_seconds() * conv_rate() / 3


def train_seconds(f: Features) -> float:
    """Planned seconds per training image on a T4 in mixed precision: ``max(3 M / P, theta E)``."""
    return max(3 * f.macs / conv_rate(), activation_seconds() * f.activations)


def eval_seconds(f: Features) -> float:
    """Planned seconds per evaluated image: a third of a trained one (one forward pass of three)."""
    return train_seconds(f) / 3


def macs_per_s(f: Features) -> float:
    """The planned training MAC rate on a T4 (3 MACs x images per second)."""
    return 3 * f.macs / train_seconds(f)


def to_t4(m: Measurement) -> float:
    """``m``'s seconds per training image moved to a T4 in mixed precision the way the model moves its
    memory term: by memory bandwidth and bytes per value. (For a GPU of the T4's own kind in the
    same precision that is the bandwidth alone; the model moves no arithmetic rate between GPUs: the
    T4's comes from a T4.)"""
    if m.gpu == "T4" and m.precision == "mixed":
        return 1 / m.images_per_s
    return _t4_seconds_of_memory_bound(m)


def residuals(role: str | None = None) -> list[tuple[Measurement, float]]:
    """(measurement, measured / planned seconds per image on a T4) for every training source (of ``role``)."""
    return [(m, to_t4(m) / train_seconds(m.features)) for m in SOURCES
            if m.training and (role is None or m.role == role)]  # fmt: skip


@cache
def band() -> tuple[float, float]:
    """The model's uncertainty: (low, high) factors on a planned time, the smallest and largest ratio of
    measured to planned time among the calibration measurements (the ``compute`` one is 1 by
    construction). A planned 10 minutes means ``10 * low`` to ``10 * high`` minutes.

    This is the spread of the calibration points around the model, in sample: it understates the
    error on other networks, and it does not cover the model's largest untested step, halving the
    memory-bound time of narrow nets for mixed precision (:data:`BYTES`), which no source measures
    (the one fp16 check, a CIFAR ResNet-18, is compute-bound by the model's own measure)."""
    ratios = [r for m, r in residuals() if m.role in ("compute", "memory")]
    return min(ratios), max(ratios)


_FEATURES: dict[tuple, Features] = {}


def features(net: nn.Module, input_shape: tuple[int, int, int]) -> Features:
    """MACs and activations per image of ``net`` on inputs of ``input_shape`` (C, H, W), from one traced
    forward pass: the MACs of every convolution and linear layer, and the output elements of every
    module call that has no submodules (``nn.Identity`` excluded: it moves nothing) and of every
    addition. Cached by architecture, parameter count and input shape."""
    from .trace import trace

    key = (type(net).__name__, str(getattr(net, "arch", "")), sum(p.numel() for p in net.parameters()),
           tuple(input_shape))  # fmt: skip
    if key not in _FEATURES:
        t = trace(net, (1, *input_shape), depth="layers")
        paths = [r.path for r in t.rows]
        leaves = [r for r in t.rows if r.is_addition or not any(p.startswith(r.path + ".") for p in paths)]
        activations = sum(math.prod(r.output_shape[1:]) for r in leaves
                          if r.output_shape is not None and r.type != "Identity")  # fmt: skip
        _FEATURES[key] = Features(t.total_macs, activations)
    return _FEATURES[key]

"""Planned against measured: how well the book's time estimates predict real runs.

Two estimates per run on this machine, both printed before training starts:

* the *probe* estimate of ``train_all`` (a few steps of each network on this
  machine, then images / images-per-second), which every chapter prints; and
* the *arithmetic* plan of ``resnet_lab.profiles`` (MACs per image from the
  tracer x images x 3, at the CPU rate ``CPU_MACS_PER_S``).

Then the run itself, timed: the script prints each estimate, the measured
wall time and their ratio, and the MAC rate measured here (what
``CPU_MACS_PER_S`` should be on this machine).

Then the T4 model of ``resnet_lab.throughput`` (the ``gpu`` and ``paper``
plans) against every published measurement it rests on or is checked
against: each source's figure, its images per second, that figure moved to
a T4 as the model moves it, the model's own figure and their ratio; and
against the GPU measurements of this book's own runs, of which there are
none yet (no GPU has been lent to this project). ``--sources-only`` prints
only that part, without training.

    .venv/bin/python benchmarks/plan_vs_measured.py [--images 2000] [--epochs 2] [--sources-only]
"""

from __future__ import annotations

import argparse
import sys

import torch

from resnet_lab import models
from resnet_lab import throughput as tp
from resnet_lab.data import load_cifar10, load_fashion_mnist
from resnet_lab.profiles import CPU_MACS_PER_S, planned_work
from resnet_lab.recipes import LAPTOP, SHORT
from resnet_lab.runs import train_all
from resnet_lab.sizes import PlannedRun

#: This book's own GPU measurements: (network, GPU, precision, batch, training images per second,
#: features). None yet: add each measured run here, named by its GPU.
OWN_GPU_MEASUREMENTS: list[tuple[str, str, str, int, float, tp.Features]] = []


def cpu_runs(images: int, epochs: int) -> None:
    """Train three networks on this machine; print the probe's and the arithmetic's plans against the time."""
    cases = [
        ("Fashion-MNIST, ResNet-20, batch 128", load_fashion_mnist, 1, 28, 20, LAPTOP),
        ("Fashion-MNIST, ResNet-56, batch 32", load_fashion_mnist, 1, 28, 56, LAPTOP.replace(batch_size=32)),
        ("CIFAR-10, ResNet-20, batch 128", load_cifar10, 3, 32, 20, SHORT),
    ]
    print(f"{'run':<38}{'probe':>8}{'plan':>8}{'measured':>10}{'probe/meas.':>13}{'plan/meas.':>12}{'GMAC/s':>8}"
          f"{'T4 plan':>12}")  # fmt: skip
    for label, load, channels, size, depth, recipe in cases:
        train, test = load(True, subset=images), load(False, subset=max(1, images // 4))
        torch.manual_seed(0)
        lines = []
        net = models.cifar_resnet(depth, in_channels=channels)
        planned = PlannedRun(label, net, (channels, size, size), len(train) * epochs, len(test) * epochs)
        work = planned_work(planned)  # traced before training: the same MACs either way
        t4 = tp.macs_per_s(tp.features(net, (channels, size, size)))
        runs = train_all(recipe, {label: net}, train, test, epochs, runs=False, say=lines.append)
        info = runs[label].info
        arithmetic = work / CPU_MACS_PER_S
        measured = info.wall_seconds
        print(f"{label:<38}{info.planned_seconds:>7.0f}s{arithmetic:>7.0f}s{measured:>9.0f}s"
              f"{info.planned_seconds / measured:>13.2f}{arithmetic / measured:>12.2f}"
              f"{work / measured / 1e9:>8.1f}{t4 / 1e12:>8.2f}e12")  # fmt: skip
    print(f"\nplan at CPU_MACS_PER_S = {CPU_MACS_PER_S / 1e9:.0f} GMAC/s; {torch.get_num_threads()} threads; "
          "'T4 plan': the T4 model's training MAC/s for the same network (not measurable here)")


def t4_model() -> None:
    """The T4 model's constants, and each published source against it."""
    low, high = tp.band()
    print(f"T4 model: seconds per training image = max(3 M / P, theta E); P = {tp.conv_rate():.3g} MAC/s, theta = "
          f"{tp.activation_seconds() * 1e9:.3f} ns per activation, knee at {tp.knee():.0f} MACs per activation; "
          f"band {low:.2f}-{high:.2f} x the central estimate")  # fmt: skip
    print(f"\n{'role':<8}{'network':<18}{'GPU':<13}{'prec.':<7}{'batch':>6}{'img/s':>9}{'on a T4':>9}{'model':>8}"
          f"{'meas./model':>13}  figure")  # fmt: skip
    for m in tp.SOURCES:
        if m.training:
            on_t4 = 1 / tp.to_t4(m)
            model = 1 / tp.train_seconds(m.features)
        else:  # inference: the model's evaluation cost, a third of a training image
            on_t4 = m.images_per_s
            model = 1 / tp.eval_seconds(m.features)
        print(f"{m.role:<8}{m.network[:17]:<18}{m.gpu:<13}{m.precision:<7}{m.batch:>6}{m.images_per_s:>9.0f}"
              f"{on_t4:>9.0f}{model:>8.0f}{model / on_t4:>13.2f}  {m.figure}")  # fmt: skip
    print("\n'on a T4': training sources moved by memory bandwidth and bytes per value. meas./model is measured "
          "over planned time: above 1, the source (moved to a T4) ran slower than the model plans. The inference "
          "row compares NVIDIA's forward passes with the model's evaluation cost (a third of a training image), "
          "which errs long.")  # fmt: skip
    print("\nsources:")
    for source in dict.fromkeys(m.source for m in tp.SOURCES):
        print(f"  {source}")
    if not OWN_GPU_MEASUREMENTS:
        print("\nthis book's own GPU measurements: none yet (no GPU has been lent to this project)")
    for network, gpu, precision, batch, ips, f in OWN_GPU_MEASUREMENTS:
        print(f"own: {network} on {gpu} ({precision}, batch {batch}): {ips:.0f} img/s measured, "
              f"{1 / tp.train_seconds(f):.0f} planned for a T4")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--sources-only", action="store_true", help="print the T4 model's table, train nothing")
    args = parser.parse_args()
    if not args.sources_only:
        cpu_runs(args.images, args.epochs)
        print()
    t4_model()
    print("\nreproduce: " + " ".join([".venv/bin/python", "benchmarks/plan_vs_measured.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()

"""Planned against measured: how well the book's time estimates predict real runs on this machine.

Two estimates per run, both printed before training starts:

* the *probe* estimate of ``train_all`` (a few steps of each network on this
  machine, then images / images-per-second), which every chapter prints; and
* the *arithmetic* plan of ``resnet_lab.profiles`` (MACs per image from the
  tracer x images x 3, at the CPU rate ``CPU_MACS_PER_S``).

Then the run itself, timed: the script prints each estimate, the measured
wall time and their ratio, and the MAC rate measured here (what
``CPU_MACS_PER_S`` should be on this machine).

    .venv/bin/python benchmarks/plan_vs_measured.py [--images 2000] [--epochs 2]
"""

from __future__ import annotations

import argparse
import sys

import torch

from resnet_lab import models
from resnet_lab.data import load_cifar10, load_fashion_mnist
from resnet_lab.profiles import CPU_MACS_PER_S, planned_work
from resnet_lab.recipes import LAPTOP, SHORT
from resnet_lab.runs import train_all
from resnet_lab.sizes import PlannedRun


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    cases = [
        ("Fashion-MNIST, ResNet-20, batch 128", load_fashion_mnist, 1, 28, 20, LAPTOP),
        ("Fashion-MNIST, ResNet-56, batch 32", load_fashion_mnist, 1, 28, 56, LAPTOP.replace(batch_size=32)),
        ("CIFAR-10, ResNet-20, batch 128", load_cifar10, 3, 32, 20, SHORT),
    ]
    print(f"{'run':<38}{'probe':>8}{'plan':>8}{'measured':>10}{'probe/meas.':>13}{'plan/meas.':>12}{'GMAC/s':>8}")
    for label, load, channels, size, depth, recipe in cases:
        train, test = load(True, subset=args.images), load(False, subset=args.images // 4)
        torch.manual_seed(0)
        lines = []
        net = models.cifar_resnet(depth, in_channels=channels)
        planned = PlannedRun(label, net, (channels, size, size), len(train) * args.epochs, len(test) * args.epochs)
        work = planned_work(planned)  # traced before training: the same MACs either way
        runs = train_all(recipe, {label: net}, train, test, args.epochs, runs=False, say=lines.append)
        info = runs[label].info
        arithmetic = work / CPU_MACS_PER_S
        measured = info.wall_seconds
        print(f"{label:<38}{info.planned_seconds:>7.0f}s{arithmetic:>7.0f}s{measured:>9.0f}s"
              f"{info.planned_seconds / measured:>13.2f}{arithmetic / measured:>12.2f}"
              f"{work / measured / 1e9:>8.1f}")  # fmt: skip
    print(f"\nplan at CPU_MACS_PER_S = {CPU_MACS_PER_S / 1e9:.0f} GMAC/s; {torch.get_num_threads()} threads")
    print("reproduce: " + " ".join([".venv/bin/python", "benchmarks/plan_vs_measured.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()

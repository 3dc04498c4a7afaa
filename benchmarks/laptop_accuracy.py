"""Laptop accuracy: the `cpu` profile's Fashion-MNIST recipe, timed end to end.

Goal: at least 93% test accuracy within 10 minutes of wall time on a 2-core
CPU, data loading included. The recipe is resnet_lab.recipes.LAPTOP with the
profile's network and epochs, trained by resnet_lab.runs.train_all, as in
the book's chapter.

    .venv/bin/python benchmarks/laptop_accuracy.py [--profile cpu] [--device auto]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from resnet_lab.chapters.fashion import laptop_networks
from resnet_lab.data import load_fashion_mnist
from resnet_lab.profiles import get_profile
from resnet_lab.recipes import LAPTOP
from resnet_lab.runs import train_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    s = get_profile(args.profile).sizes("fashion")

    start = time.perf_counter()
    train, test = load_fashion_mnist(True, subset=s.train), load_fashion_mnist(False, subset=s.test)
    torch.manual_seed(0)
    [(key, net)] = laptop_networks(s).items()
    history = train_all(LAPTOP, {key: net}, train, test, s.epochs, device=args.device, runs=False)[key]
    wall = time.perf_counter() - start
    for r in history.records:
        print(f"epoch {r.epoch}: train error {100 * r.train_error:.2f}%  test accuracy "
              f"{100 * (1 - r.test_error):.2f}%  {r.images_per_s:.0f} img/s  {r.seconds:.0f} s")  # fmt: skip
    acc = 1 - history.final.test_error
    print(f"\nprofile {args.profile}: {history.info.arch} ({history.info.params:,} parameters), "
          f"{len(history)} epochs, {len(train):,} train / {len(test):,} test images, device "
          f"{history.info.device}")  # fmt: skip
    print(f"test accuracy {100 * acc:.2f}%  wall time {wall:.0f} s ({wall / 60:.1f} min, data loading included)")
    print(f"goal: >= 93% within 600 s -> {'MET' if acc >= 0.93 and wall <= 600 else 'NOT MET'}")
    print("reproduce: " + " ".join([".venv/bin/python", *sys.argv]))


if __name__ == "__main__":
    main()

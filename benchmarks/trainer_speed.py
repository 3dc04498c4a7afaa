"""Trainer speed: D2L's pipeline against ours, same network, weights, images and recipe.

Both train D2L's ResNet-18 on Fashion-MNIST resized to 96x96 with D2L 1.0's
recipe (section 8.6: batch 128, plain SGD at 0.01), from the same initial
weights, on the same class-balanced subset, in this one process. The
baseline is D2L's whole pipeline (``d2l.FashionMNIST`` + ``d2l.Trainer``);
ours is ``load_fashion_mnist`` + ``train_all`` (resnet_lab.chapters.fashion holds
both, shared with the book's chapter). Wall time covers reading the data,
training and the test pass, measured the same way for both.

    .venv/bin/python benchmarks/trainer_speed.py [--images 4096] [--epochs 1] [--device auto]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from resnet_lab import device as dev
from resnet_lab.chapters.fashion import run_d2l, run_ours, same_start

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4096)
    parser.add_argument("--test-images", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    device = dev.resolve(args.device)
    # d2l reads ../data relative to the working directory: run from benchmarks/
    # so that is <repo>/data, where the data set is prepared offline.
    os.chdir(REPO / "benchmarks")
    os.environ.setdefault("RESNET_LAB_DATA", str(REPO / "data"))
    theirs_net, ours_net = same_start(seed=0)
    theirs = run_d2l(theirs_net, args.images, args.test_images, args.epochs, device, plot=False)
    ours = run_ours(ours_net, args.images, args.test_images, args.epochs, device)
    name = dev.describe(device)
    print(f"D2L ResNet-18, D2L 1.0's recipe, Fashion-MNIST at 96x96, {args.images:,} images x {args.epochs} "
          f"epoch(s), device {name}")  # fmt: skip
    for run in (theirs, ours):
        print(f"{run.name:<28}: {run.seconds:7.1f} s  {run.images_per_s:7.1f} img/s  "
              f"test accuracy {run.test_accuracy:.3f}")  # fmt: skip
    print(f"speed-up (ours / D2L's): {theirs.seconds / ours.seconds:.2f}x")
    print("reproduce: " + " ".join([".venv/bin/python", "benchmarks/trainer_speed.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()

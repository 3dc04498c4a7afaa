"""Trainer speed: resnet_lab's ``fit`` vs ``d2l.train_ch6``, same model, data and steps.

Both train D2L's ResNet-18 on Fashion-MNIST resized to 96x96 (D2L's recipe,
lr 0.05) for the same number of steps of the same batch size, in this one
process. The baseline is D2L's whole pipeline (``load_data_fashion_mnist`` +
``train_ch6``); ours is ``load_fashion_mnist`` + ``DeviceLoader`` + ``fit``
(resnet_lab.fashion holds both, shared with the book's chapter). Wall time
covers data loading and training; both evaluate on five test batches.
Goal: at least 2x on a 2-core CPU, at least 5x on a GPU.

    .venv/bin/python benchmarks/trainer_speed.py [--steps 16] [--batch-size 256] [--device auto]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import torch

from resnet_lab.data import resolve_device
from resnet_lab.fashion import run_d2l_recipe, run_our_trainer_same_recipe
from resnet_lab.profiles import get_profile

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--resize", type=int, default=96)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    device = resolve_device(args.device)
    n = args.steps * args.batch_size
    profile = dataclasses.replace(get_profile("cpu"), d2l_train=n, d2l_test=5 * args.batch_size, d2l_epochs=1,
                                  d2l_resize=args.resize, d2l_batch=args.batch_size)  # fmt: skip
    # d2l reads ../data relative to the working directory: run from benchmarks/
    # so that is <repo>/data, where the data set is prepared offline.
    os.chdir(REPO / "benchmarks")
    os.environ.setdefault("RESNET_LAB_DATA", str(REPO / "data"))

    theirs = run_d2l_recipe(profile, device, args.batch_size)
    ours = run_our_trainer_same_recipe(profile, device, args.batch_size)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"D2L ResNet-18, Fashion-MNIST at {args.resize}x{args.resize}, batch {args.batch_size}, "
          f"{args.steps} steps ({n:,} images), device {name}")  # fmt: skip
    for run in (theirs, ours):
        print(f"{run.name:<15}: {run.seconds:7.1f} s  {run.images_per_s:8.1f} img/s")
    print(f"speed-up (ours / d2l): {theirs.seconds / ours.seconds:.2f}x")
    print("reproduce: " + " ".join([".venv/bin/python", "benchmarks/trainer_speed.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()

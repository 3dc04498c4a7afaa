"""Laptop accuracy: the `cpu` profile's Fashion-MNIST recipe, timed end to end.

Goal: at least 93% test accuracy within 10 minutes of wall time on a 2-core
CPU, data loading included (D2L reports 91.5% for its 10-epoch GPU run).

    .venv/bin/python benchmarks/laptop_accuracy.py [--profile cpu] [--device auto]
"""

from __future__ import annotations

import argparse
import sys
import time

import torch

from resnet_lab import models
from resnet_lab.data import DeviceLoader, load_fashion_mnist
from resnet_lab.profiles import FASHION_AUGMENT, FASHION_RECIPE, get_profile
from resnet_lab.train import fit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="cpu")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, default=None, help="override the profile's epochs")
    args = parser.parse_args()
    profile = get_profile(args.profile)
    epochs = args.epochs or profile.fashion_epochs

    t0 = time.perf_counter()
    train = load_fashion_mnist(True, subset=profile.fashion_train)
    test = load_fashion_mnist(False, subset=profile.fashion_test)
    train_loader = DeviceLoader(train, profile.batch_size, augment=FASHION_AUGMENT, device=args.device, seed=0)
    test_loader = DeviceLoader(test, 1000, device=args.device)
    torch.manual_seed(0)
    model = models.cifar_model(profile.fashion_model, in_channels=1)
    history = fit(model, train_loader, test_loader, epochs=epochs, lr=profile.fashion_lr, device=args.device,
                  progress=False, **FASHION_RECIPE)  # fmt: skip
    wall = time.perf_counter() - t0

    for r in history.records:
        print(f"epoch {r.epoch}: train error {100 * r.train_error:.2f}%  test accuracy "
              f"{100 * (1 - r.test_error):.2f}%  {r.images_per_s:.0f} img/s  {r.seconds:.0f} s")  # fmt: skip
    acc = 1 - history.final.test_error
    print(f"\nprofile {profile.name}: {model.arch} ({history.info['params']:,} parameters), {epochs} epochs, "
          f"{len(train):,} train / {len(test):,} test images, device {history.info['device']}, "
          f"{torch.get_num_threads()} threads")  # fmt: skip
    print(f"test accuracy {100 * acc:.2f}%  wall time {wall:.0f} s ({wall / 60:.1f} min, data loading included)")
    print(f"goal: >= 93% within 600 s -> {'MET' if acc >= 0.93 and wall <= 600 else 'NOT MET'}")
    print("reproduce: " + " ".join([".venv/bin/python", *sys.argv]))


if __name__ == "__main__":
    main()

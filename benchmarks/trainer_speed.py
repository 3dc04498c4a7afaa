"""Trainer speed: resnet_lab's ``fit`` vs ``d2l.train_ch6``, same model, data and steps.

Both train D2L's ResNet-18 on Fashion-MNIST resized to 96x96 (D2L's recipe,
lr 0.05) for the same number of steps of the same batch size, in this one
process. The baseline is D2L's whole pipeline (``load_data_fashion_mnist`` +
``train_ch6``); ours is ``load_fashion_mnist`` + ``DeviceLoader`` + ``fit``.
Wall time covers data loading and training; both evaluate on one test batch.
Goal: at least 2x on a 2-core CPU, at least 5x on a GPU.

    .venv/bin/python benchmarks/trainer_speed.py [--steps 16] [--batch-size 256] [--device auto]
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


class FirstBatches:
    """The first ``n`` batches of a loader, with a matching ``len()`` (for train_ch6)."""

    def __init__(self, loader, n: int) -> None:
        self.loader, self.n = loader, n

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        return itertools.islice(iter(self.loader), self.n)


def run_d2l(steps: int, batch: int, resize: int, device: torch.device) -> tuple[float, int]:
    import d2l.torch as d2l

    from resnet_lab.models import d2l_resnet18

    d2l.use_svg_display = lambda: None  # no IPython display in a script
    torch.manual_seed(0)
    t0 = time.perf_counter()
    train_iter, test_iter = d2l.load_data_fashion_mnist(batch, resize=resize)
    net = d2l_resnet18()
    d2l.train_ch6(net, FirstBatches(train_iter, steps), FirstBatches(test_iter, 1), 1, 0.05, device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, steps * batch


def run_ours(steps: int, batch: int, resize: int, device: torch.device) -> tuple[float, int]:
    from resnet_lab.data import DeviceLoader, load_fashion_mnist
    from resnet_lab.models import d2l_resnet18
    from resnet_lab.train import fit

    torch.manual_seed(0)
    t0 = time.perf_counter()
    train = load_fashion_mnist(True, subset=steps * batch, resize=resize)
    test = load_fashion_mnist(False, subset=batch, resize=resize)
    train_loader = DeviceLoader(train, batch, device=device, normalize=False, drop_last=True)
    test_loader = DeviceLoader(test, batch, device=device, normalize=False)
    fit(d2l_resnet18(), train_loader, test_loader, epochs=1, lr=0.05, momentum=0.0, weight_decay=0.0,
        schedule="constant", device=device, progress=False)  # fmt: skip
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - t0, steps * batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--resize", type=int, default=96)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    from resnet_lab.data import prepare_fashion_mnist, resolve_device

    device = resolve_device(args.device)
    # d2l reads ../data relative to the working directory: run from benchmarks/
    # so that is <repo>/data, where prepare_fashion_mnist puts the files.
    os.chdir(REPO / "benchmarks")
    prepare_fashion_mnist("../data")
    os.environ.setdefault("RESNET_LAB_DATA", str(REPO / "data"))

    d2l_s, n = run_d2l(args.steps, args.batch_size, args.resize, device)
    ours_s, _ = run_ours(args.steps, args.batch_size, args.resize, device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {torch.get_num_threads()} threads"
    print(f"\nD2L ResNet-18, Fashion-MNIST at {args.resize}x{args.resize}, batch {args.batch_size}, "
          f"{args.steps} steps ({n:,} images), device {name}")  # fmt: skip
    print(f"d2l.train_ch6 : {d2l_s:7.1f} s  {n / d2l_s:8.1f} img/s")
    print(f"resnet_lab.fit: {ours_s:7.1f} s  {n / ours_s:8.1f} img/s")
    print(f"speed-up (ours / d2l): {d2l_s / ours_s:.2f}x")
    print("reproduce: " + " ".join([".venv/bin/python", "benchmarks/trainer_speed.py", *sys.argv[1:]]))


if __name__ == "__main__":
    main()

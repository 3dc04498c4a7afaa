"""Choose the SHORT recipe's learning rate and weight decay on a validation split, never on the test set.

1,000 images (100 per class, fixed seed) are held out of the CIFAR-10
training images (resnet_lab.data.validation_split); a small network (the
paper's ResNet-8 by default) trains on the rest with every candidate of a
grid of peak learning rates x weight decays, everything else as in
resnet_lab.recipes.SHORT (one cycle, Nesterov momentum 0.9, pad-crop-flip,
batch 128), all from the same initial weights on the same batches. Each
candidate is scored once, by the accuracy of its final weights on the
validation images; the highest wins (the first in grid order on a tie). The
test set is not loaded. The table, the choice, the data sizes, the command,
the device and the date go to resnet_lab/tuning_short.json
(resnet_lab.recipes.SHORT_TUNING), which the chapter "Training on CIFAR-10"
shows and a test holds SHORT to.

    RESNET_LAB_DATA=../shared/data/cifar10-subset .venv/bin/python benchmarks/tune_recipes.py
    # a check of the code path in seconds, written elsewhere:
    ... benchmarks/tune_recipes.py --images 300 --val 100 --epochs 1 --out /tmp/tuning.json

Before training it prints the planned time on 2 CPU cores (tracer MACs at
resnet_lab.profiles.CPU_MACS_PER_S); the defaults, 6 candidates of ResNet-8
for 25 epochs on 4,000 images, plan at about 10.5 minutes.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import shlex
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

from resnet_lab import device as dev
from resnet_lab import models, settings
from resnet_lab.chapters import cifar
from resnet_lab.data import load_cifar10, validation_split
from resnet_lab.files import atomic_save
from resnet_lab.loader import for_recipe, for_testing
from resnet_lab.profiles import CPU_MACS_PER_S, planned_work
from resnet_lab.recipes import SHORT, SHORT_TUNING, best_on_validation
from resnet_lab.sizes import PlannedRun
from resnet_lab.train import evaluate, fit


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5_000,
                        help="training images to start from (a class-balanced subset; 5,000 = the offline subset)")
    parser.add_argument("--val", type=int, default=1_000, help="of those, images held out for validation")
    parser.add_argument("--depth", type=int, default=8, help="the CIFAR ResNet trained for every candidate")
    parser.add_argument("--epochs", type=int, default=cifar.SIZES["cpu"].epochs,
                        help="epochs per candidate (default: the cpu profile's CIFAR-10 runs)")
    parser.add_argument("--lrs", type=float, nargs="+", default=[0.1, 0.2, 0.4], help="peak learning rates")
    parser.add_argument("--wds", type=float, nargs="+", default=[5e-4, 1e-4], help="weight decays")
    parser.add_argument("--seed", type=int, default=0, help="the validation draw, initial weights and batch order")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", type=Path, default=SHORT_TUNING, help="where the record is written")
    args = parser.parse_args(argv)
    if not 0 < args.val < args.images:
        parser.error(f"--val must be between 1 and --images - 1 ({args.images - 1}), got {args.val}")
    if args.epochs < 1:
        parser.error(f"--epochs must be at least 1, got {args.epochs}")
    return args


def planned_minutes(depth: int, train: int, val: int, epochs: int, candidates: int) -> float:
    """Planned minutes of the whole grid on 2 CPU cores: tracer MACs x (3 x images trained + images
    validated once) at :data:`resnet_lab.profiles.CPU_MACS_PER_S`."""
    run = PlannedRun(f"ResNet-{depth}", models.cifar_resnet(depth), (3, 32, 32), train * epochs, val)
    return candidates * planned_work(run) / CPU_MACS_PER_S / 60


def command(argv: list[str]) -> str:
    """The command line that reproduces this run, with the data root where one was set."""
    root = settings.data_root()
    env = f"RESNET_LAB_DATA={shlex.quote(str(root))} " if root is not None else ""
    return env + " ".join([".venv/bin/python", "benchmarks/tune_recipes.py", *map(shlex.quote, argv)])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    device = dev.resolve(args.device)
    start = time.perf_counter()
    data = load_cifar10(True, subset=args.images, seed=args.seed)
    train, val = validation_split(data, args.val, seed=args.seed)
    grid = [(lr, wd) for lr in args.lrs for wd in args.wds]
    minutes = planned_minutes(args.depth, len(train), len(val), args.epochs, len(grid))
    print(train.describe())
    print(val.describe())
    print(f"{len(grid)} candidates of ResNet-{args.depth}, {args.epochs} epochs each: about {minutes:.1f} planned "
          f"minutes on 2 CPU cores; running on {dev.describe(device)}; the test set is not loaded")  # fmt: skip
    val_loader = for_testing(val, device=device)
    results = []
    for lr, wd in grid:
        recipe = SHORT.replace(name=f"{SHORT.name}, lr {lr:g}, weight decay {wd:g}", lr=lr, weight_decay=wd)
        torch.manual_seed(args.seed)  # every candidate starts from the same weights ...
        net = models.cifar_resnet(args.depth)
        loader = for_recipe(recipe, train, device=device, seed=args.seed)  # ... and draws the same batches
        t0 = time.perf_counter()
        history = fit(net, loader, None, recipe=recipe, epochs=args.epochs, device=device, seed=args.seed,
                      progress=False)  # fmt: skip
        _, val_error = evaluate(net, val_loader, device, history.info.precision)
        results.append({"lr": lr, "weight_decay": wd, "val_accuracy": round(1 - val_error, 4),
                        "final_train_error": round(history.final.train_error, 4),
                        "seconds": round(time.perf_counter() - t0, 1)})  # fmt: skip
        r = results[-1]
        print(f"lr {lr:<5g} weight decay {wd:<7g} validation accuracy {100 * r['val_accuracy']:.1f}%  "
              f"(final training error {100 * r['final_train_error']:.1f}%, {r['seconds']:.0f} s)")  # fmt: skip
    choice = best_on_validation(results)
    ranked = sorted(results, key=lambda r: -r["val_accuracy"])
    p1, p2, n = ranked[0]["val_accuracy"], ranked[1]["val_accuracy"] if len(ranked) > 1 else None, len(val)
    se_diff = None if p2 is None else math.sqrt(p1 * (1 - p1) / n + p2 * (1 - p2) / n)
    wall = time.perf_counter() - start
    record = {
        "recipe": "SHORT",
        "what": "peak learning rate and weight decay of SHORT, chosen by validation accuracy",
        "rule": "highest validation accuracy of the final weights; the first in grid order on a tie",
        "choice": {"lr": choice["lr"], "weight_decay": choice["weight_decay"],
                   "val_accuracy": choice["val_accuracy"]},
        "grid": {"lr": args.lrs, "weight_decay": args.wds},
        "results": results,
        "runner_up_gap_points": None if p2 is None else round(100 * (p1 - p2), 2),
        "se_of_a_difference_points": None if se_diff is None else round(100 * se_diff, 2),
        "fixed": {k: v for k, v in asdict(SHORT).items() if k not in ("name", "lr", "weight_decay", "source")},
        "network": f"ResNet-{args.depth}",
        "epochs": args.epochs,
        "data": {
            "dataset": data.name,
            "copy": data.origin,
            "training images drawn": len(data),
            "trained on": len(train),
            "validation images": len(val),
            "validation per class": val.class_counts(),
            "validation": f"class-balanced draw (resnet_lab.data.validation_split) out of the training images, "
                          f"seed {args.seed}",
            "test set": "not loaded; the chapter reports it once, after this choice",
        },
        "seed": args.seed,
        "command": command(sys.argv[1:] if argv is None else argv),
        "device": dev.describe(device),
        "torch": torch.__version__,
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "planned_minutes_2_cpu_cores": round(minutes, 1),
        "wall_minutes": round(wall / 60, 1),
    }  # fmt: skip
    atomic_save(json.dumps(record, indent=1) + "\n", args.out)
    print(f"\nchoice: lr {choice['lr']:g}, weight decay {choice['weight_decay']:g} "
          f"(validation accuracy {100 * choice['val_accuracy']:.1f}% on {len(val):,} images)")  # fmt: skip
    if se_diff is not None:
        print(f"runner-up {record['runner_up_gap_points']:.1f} points lower; one standard error of a difference "
              f"of two accuracies on {n:,} images is {record['se_of_a_difference_points']:.1f} points")
    print(f"written to {args.out}; wall time {wall / 60:.1f} min (planned {minutes:.1f} on 2 CPU cores)")
    print("reproduce: " + record["command"])


if __name__ == "__main__":
    main()

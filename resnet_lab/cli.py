"""The command line: train a chapter's networks, or one model with a named recipe, on one or many processes.

One process::

    python -m resnet_lab.train --chapter cifar --profile paper

Two processes on this machine (one per GPU where there are GPUs, else on
the CPUs with ``gloo``)::

    torchrun --nproc_per_node=2 -m resnet_lab.train --chapter cifar --profile paper

Two machines (``--nnodes=2``; every node runs the same command with its own
``--node_rank``, and ``MASTER`` is an address of node 0 that the others reach)::

    torchrun --nnodes=2 --node_rank=0 --nproc_per_node=4 \\
        --master_addr=MASTER --master_port=29500 -m resnet_lab.train ...

or with torchrun's elastic rendezvous (``--rdzv-backend=c10d
--rdzv-endpoint=MASTER:29500 --rdzv-id=JOB``), which also tolerates nodes
starting at different times. Every node must see the same run folder
(``--runs`` on a shared file system) to resume.

Training is :func:`resnet_lab.runs.train_all`: the same run folder, the same
checkpoint names and the same resume as the notebooks, so a chapter trained
here is loaded, not trained, when its notebook runs under the same profile.
The recipe's batch size is the combined batch of all ranks. Only rank 0
prints. Chapter "Training on many devices" explains what each rank does.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

import torch

from . import distributed, models
from .files import atomic_save
from .history import History, RunKey
from .profiles import banner, get_profile
from .recipes import RECIPES

__all__ = ["main", "CHAPTERS", "MODELS"]

#: Chapters whose networks this command trains (their notebooks' ``train_all`` calls, with the same sizes).
CHAPTERS = ("fashion", "cifar", "distributed")

#: ``--model`` names: the CIFAR-style networks, each for 3-channel (CIFAR-10) or 1-channel input.
MODELS = {"resnet20": 20, "resnet32": 32, "resnet44": 44, "resnet56": 56, "resnet110": 110}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m resnet_lab.train",
        description="Train a chapter's networks, or one model with a named recipe, in a run folder that the "
                    "notebooks share; under torchrun, on every process it starts.",
        epilog="Examples: python -m resnet_lab.train --chapter cifar --profile cpu | "
               "torchrun --nproc_per_node=2 -m resnet_lab.train --model resnet20 --recipe paper --epochs 2 "
               "--profile smoke")  # fmt: skip
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--chapter", choices=CHAPTERS, help="train this chapter's networks under --profile")
    what.add_argument("--model", choices=sorted(MODELS), help="train one CIFAR ResNet")
    p.add_argument("--recipe", choices=sorted(RECIPES), default="paper", help="with --model (default: paper)")
    p.add_argument("--data", choices=("cifar10", "fashion_mnist"), default="cifar10", help="with --model")
    p.add_argument("--epochs", type=int, default=None, help="with --model (default: the chapter's epochs)")
    p.add_argument("--train-images", type=int, default=None, help="with --model: a subset (default: all)")
    p.add_argument("--test-images", type=int, default=None, help="with --model: a subset (default: all)")
    p.add_argument("--profile", default=None, help="smoke, cpu, gpu or paper (default: $RESNET_LAB_PROFILE, "
                                                   "else by machine)")  # fmt: skip
    p.add_argument("--runs", default=None, help="the run folder (default: as the notebooks choose it)")
    p.add_argument("--device", default="auto", help="auto (a GPU per rank where there are GPUs), cpu or cuda")
    p.add_argument("--sync-batchnorm", action="store_true", help="BatchNorm over the combined batch of all ranks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--summary", default=None, help="write each run's status and records to this JSON file")
    return p


def _fail(message: str) -> None:
    print(f"resnet_lab.train: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _load(load, *args, **kwargs):
    """``load(...)`` on rank 0 first (it may download), then on the others."""
    if distributed.is_main():
        data = load(*args, **kwargs)
    distributed.barrier()
    if not distributed.is_main():
        data = load(*args, **kwargs)
    return data


def _jobs(args, profile) -> list[tuple]:
    """``(recipe, nets, train_set, test_set, epochs)`` for each ``train_all`` call to make."""
    from .data import load_cifar10, load_fashion_mnist

    torch.manual_seed(args.seed)  # the networks' initial weights (rank 0's reach every rank)

    if args.model is not None:
        if args.epochs is None or args.epochs < 1:
            _fail("--model needs --epochs N (a positive number)")
        load = load_cifar10 if args.data == "cifar10" else load_fashion_mnist
        channels = 3 if args.data == "cifar10" else 1
        train_set = _load(load, True, subset=args.train_images)
        test_set = _load(load, False, subset=args.test_images)
        nets = {RunKey(args.model): models.cifar_resnet(MODELS[args.model], in_channels=channels)}
        return [(RECIPES[args.recipe], nets, train_set, test_set, args.epochs)]
    s = profile.sizes(args.chapter)
    if args.chapter == "cifar":
        from .chapters import cifar

        train_set, test_set = _load(load_cifar10, True, subset=s.train), _load(load_cifar10, False, subset=s.test)
        return [(RECIPES[s.recipe], cifar.networks(s), train_set, test_set, s.epochs)]
    if args.chapter == "fashion":
        from .chapters import fashion
        from .recipes import LAPTOP

        train_set = _load(load_fashion_mnist, True, subset=s.train)
        test_set = _load(load_fashion_mnist, False, subset=s.test)
        return [(LAPTOP, fashion.laptop_networks(s), train_set, test_set, s.epochs)]
    from .chapters import distributed as chapter

    train_set, test_set = _load(load_cifar10, True, subset=s.train), _load(load_cifar10, False, subset=s.test)
    return [(recipe, chapter.networks(s, b), train_set, test_set, s.epochs) for b, recipe in chapter.recipes(s).items()]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, join the process group torchrun describes (if any), train, print on rank 0."""
    args = _parser().parse_args(argv)
    try:
        profile = get_profile(args.profile)
    except ValueError as e:
        _fail(str(e))
    from .runs import train_all

    device = distributed.init(args.device)
    main_rank = distributed.is_main()  # asked now: after the group is destroyed, every process is "rank 0"
    say = print if main_rank else (lambda *_: None)
    world = distributed.world_size()
    say(banner(profile))
    say(f"{world} process{'es' if world > 1 else ''} ({distributed.backend_for(device) if world > 1 else 'no'} "
        f"process group), this one on {device}; each trains 1/{world} of every batch.")
    results: dict[str, History] = {}
    try:
        for recipe, nets, train_set, test_set, epochs in _jobs(args, profile):
            pad = distributed.padding(len(train_set), world)
            twice = f", {pad} of them twice so that every process gets as many" if pad else ""
            say(f"recipe: {recipe.name}, {epochs} epoch{'s' if epochs != 1 else ''}, combined batch "
                f"{recipe.batch_size} ({recipe.batch_size // world} per process); every training image once per "
                f"epoch across the processes{twice}")
            results |= train_all(recipe, nets, train_set, test_set, epochs, device=device, seed=args.seed,
                                 profile=profile, runs=args.runs, sync_batchnorm=args.sync_batchnorm, say=say)
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if args.summary and main_rank:
        summary = {str(k): {"status": h.info.status, "processes": h.info.processes, **h.to_dict()}
                   for k, h in results.items()}  # fmt: skip
        atomic_save(json.dumps(summary, indent=1, default=str), args.summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

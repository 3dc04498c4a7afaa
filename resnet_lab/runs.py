"""Running an experiment: one runner for every chapter, with a plan before and checkpoints during.

:func:`train_all` trains a dict of named networks with one
:class:`~resnet_lab.recipes.Recipe` on the same batches and returns their
histories. Before training it *probes*: a few steps of each network on this
machine give its speed, and one line says how long the run will take here
and where its checkpoints go. Every network is checkpointed every epoch in a
*run folder* (:func:`run_folder`), under a name that carries a fingerprint of
network, data, recipe, epochs and profile; re-running the same cell after a
disconnect resumes unfinished networks and loads finished ones.

The runner also keeps a time budget. Under a profile with one (``gpu``: 15
minutes per chapter, ``cpu``: 12), each call gets its share of its
chapter's budget (:func:`resnet_lab.profiles.call_budget`); when the probe
says the call would take longer, the runner says so before training and
shortens the schedule to fit: fewer epochs, with the learning-rate schedule
rescaled to them (``fit`` spreads the recipe's schedule over the epochs it
is given), printing what it changed and what that costs. Every history
records the epochs trained and the epochs asked for
(:attr:`~resnet_lab.history.RunInfo.requested_epochs`). A run resumed after a
disconnect keeps the schedule chosen when it started (its checkpoints carry
the epochs in their fingerprint). ``RESNET_LAB_FULL_SCHEDULE=1``, or
``full_schedule=True``, trains the full schedule anyway.

Inside a process group (``torchrun``, :mod:`resnet_lab.distributed`) the
runner works unchanged: every rank trains its share of every batch, the
probe times steps of the wrapped network (all-reduce included) and rank 0's
plan is every rank's, and only rank 0 speaks and writes checkpoints.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import device as dev
from . import distributed, settings
from .data import ImageSet
from .history import History, RunKey
from .loader import DeviceLoader, for_recipe, for_testing
from .profiles import Budget, Profile, call_budget
from .recipes import Recipe
from .train import epochs_done, fit, make_optimizer, make_scaler, train_step

__all__ = ["run_folder", "run_fingerprint", "run_slug", "probe", "Probe", "plan_line", "over_budget_line",
           "fitting_epochs", "train_all", "COLAB_DRIVE"]

#: Where Google Drive appears on Colab once mounted (``drive.mount("/content/drive")``).
COLAB_DRIVE = Path("/content/drive/MyDrive")


def run_folder(folder: str | os.PathLike | None = None) -> Path:
    """Where checkpoints go: ``folder``, else ``$RESNET_LAB_RUNS``, else on Colab with Google Drive
    mounted ``MyDrive/resnet-lab-runs`` (it survives a disconnect), else ``runs/`` here."""
    if folder is not None:
        return Path(folder).expanduser()
    if (chosen := settings.runs_folder()) is not None:
        return chosen
    if "google.colab" in sys.modules and COLAB_DRIVE.is_dir():
        return COLAB_DRIVE / "resnet-lab-runs"
    return Path("runs")


def drive_advice(folder: Path) -> str:
    """On Colab without Drive: how to make the run survive a disconnect. Elsewhere: nothing."""
    if "google.colab" not in sys.modules or str(folder).startswith(str(COLAB_DRIVE)):
        return ""
    return (" Google Drive is not mounted, so a disconnect loses this run: run "
            "`from google.colab import drive; drive.mount('/content/drive')` and this cell again.")  # fmt: skip


def run_fingerprint(name: RunKey | str, model: nn.Module, train_set: ImageSet, test_set: ImageSet | None,
                    recipe: Recipe, epochs: int, seed: int, profile: str | None) -> str:  # fmt: skip
    """A short hash of everything that makes a run what it is; a checkpoint resumes only a run with
    the same fingerprint (a changed profile, recipe or data size starts afresh)."""
    shapes = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    data = [train_set.name, train_set.origin, len(train_set), len(test_set) if test_set is not None else 0]
    key = json.dumps([str(name), getattr(model, "arch", ""), shapes, data, train_set.shape, recipe.as_dict(), epochs,
                      seed, profile], default=str)  # fmt: skip
    return hashlib.sha1(key.encode()).hexdigest()[:10]


@dataclass
class Probe:
    """Images per second of one network on this machine: training steps and test batches."""

    train_ips: float
    test_ips: float

    def seconds(self, train_images: int, test_images: int, epochs: int) -> float:
        """Planned seconds for ``epochs`` epochs with a test pass after each."""
        return epochs * (train_images / self.train_ips + test_images / self.test_ips)


def probe(model: nn.Module, loader: DeviceLoader, recipe: Recipe, steps: int = 10, device="auto",
          precision: str = "auto") -> Probe:  # fmt: skip
    """Time ``steps`` training steps (after 2 unmeasured ones) and 2 forward passes of a copy of ``model``.

    The steps are :func:`resnet_lab.train.train_step`, as in training: the
    recipe's parameter groups, label smoothing, gradient scaler and the
    loader's memory format (at a hundredth of the rate: the copy is thrown
    away, but should not diverge while timed). Each step is timed alone and
    the median is used: a pause of the machine during one step (a shared
    host, a notebook autosave) does not skew the plan.

    In a process group the copy is wrapped in ``DistributedDataParallel``, so
    the steps include the gradients' all-reduce, the rates count every rank's
    images, and every rank gets rank 0's numbers (every rank must plan alike).
    """
    device = dev.resolve(device)
    precision = dev.resolve_precision(precision, device)
    net = copy.deepcopy(model).to(device)
    if loader.channels_last:
        net.to(memory_format=torch.channels_last)
    net.train()
    optimizer = make_optimizer(net, recipe, lr=recipe.lr * 0.01)
    scaler = make_scaler(device, precision)
    stepped = distributed.wrap(net, device)
    x, y = next(iter(loader))
    times = []
    for i in range(steps + 2):
        dev.synchronize(device)
        t0 = time.perf_counter()
        train_step(stepped, x, y, optimizer, scaler, precision=precision, label_smoothing=recipe.label_smoothing,
                   rate=recipe.lr * 0.01)  # fmt: skip
        dev.synchronize(device)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    train_ips = len(y) / statistics.median(times)
    net.eval()
    with torch.no_grad(), dev.autocast(device, precision):
        net(x)
        dev.synchronize(device)
        t0 = time.perf_counter()
        for _ in range(2):
            net(x)
        dev.synchronize(device)
    test_ips = 2 * len(y) / (time.perf_counter() - t0)
    ranks = distributed.world_size()
    return Probe(*distributed.broadcast_floats([train_ips * ranks, test_ips * ranks]))


def plan_line(todo: int, finished: int, epochs: int, seconds: float, where: str, probe_steps: int,
              folder: Path | None) -> str:  # fmt: skip
    """One line before the work: what will run, for how long here, and where it is kept."""
    parts = [f"{todo} network{'s' if todo != 1 else ''}, {epochs} epochs each, {_took(seconds)} on {where} "
             f"(from a {probe_steps}-step probe)"]  # fmt: skip
    if finished:
        parts.append(f"{finished} finished earlier, loaded instead of trained")
    parts.append(f"checkpoints in {folder}" if folder else "no checkpoints")
    return ", ".join(parts) + "."


def _took(seconds: float) -> str:
    minutes = seconds / 60
    return f"about {minutes:.0f} min" if minutes >= 1.5 else f"about {seconds:.0f} s"


def fitting_epochs(seconds_per_epoch: float, epochs: int, budget_seconds: float) -> int:
    """The most epochs, at most ``epochs`` and at least 1, whose ``seconds_per_epoch`` fit ``budget_seconds``."""
    if seconds_per_epoch <= 0:
        return epochs
    return max(1, min(epochs, int(budget_seconds // seconds_per_epoch)))


def over_budget_line(todo: int, epochs: int, fitted: int, seconds: float, where: str, probe_steps: int,
                     budget: Budget, schedule: str) -> str:  # fmt: skip
    """What the runner says before it shortens a schedule: what would take how long, the budget it
    keeps, what it changes, what that costs, and how to train the full schedule anyway."""
    nets = f"{todo} network{'s' if todo != 1 else ''}"
    return (f"Over budget: {nets} x {epochs} epochs would take {_took(seconds)} on {where} (from a "
            f"{probe_steps}-step probe), more than {budget}. Shortened to {fitted} of {epochs} epochs: the "
            f"learning-rate schedule ({schedule}) is spread over {fitted} epochs (a warm-up keeps its length in "
            f"epochs), and each network trains on "
            f"{fitted / epochs:.0%} of the planned images, so expect higher errors than the full schedule's. "
            f"Set RESNET_LAB_FULL_SCHEDULE=1 to train all {epochs} epochs.")


def train_all(
    recipe: Recipe,
    nets: dict[RunKey | str, nn.Module],
    train_set: ImageSet,
    test_set: ImageSet | None,
    epochs: int,
    *,
    device: str | torch.device = "auto",
    precision: str = "auto",
    seed: int = 0,
    profile: Profile | str | None = None,
    runs: str | os.PathLike | None | bool = None,
    probe_steps: int | None = None,
    eval_every: int = 1,
    normalize: bool = True,
    progress: bool = False,
    budget_s: float | None = None,
    full_schedule: bool | None = None,
    say: Callable[[str], None] = print,
    sync_batchnorm: bool = False,
) -> dict[str, History]:
    """Train every network of ``nets`` with ``recipe`` on the same batches; returns their histories.

    Args:
        nets: run key (a :class:`~resnet_lab.history.RunKey`, or a display
            name) -> network, trained in place, in this order.
        profile: the profile (or its name), part of each checkpoint's fingerprint.
        runs: the run folder (see :func:`run_folder`); ``False`` keeps no checkpoints.
        probe_steps: steps per network in the speed probe before training (0: no probe, no plan;
            default: the profile's ``probe_steps``, else 10).
        eval_every: test every this many epochs (and after the last).
        budget_s: seconds this call may take (default: its share of its chapter's budget under a
            :class:`~resnet_lab.profiles.Profile` that has one; none for a profile given by name).
            Kept only with a probe, which measures the speed the budget is checked against.
        full_schedule: True trains all ``epochs`` whatever the budget (default:
            ``RESNET_LAB_FULL_SCHEDULE``).
        say: where the plan and per-network lines go (``print`` by default; rank 0's only, in a process group).
        sync_batchnorm: in a process group, BatchNorm over the combined batch (see :func:`~resnet_lab.train.fit`).

    Each history's ``info`` (:class:`~resnet_lab.history.RunInfo`) gets the run's key, the data, the profile,
    ``status`` (trained, resumed from epoch k, or loaded), the planned and
    the measured wall seconds (test passes included), the epochs asked for and the budget kept
    (``epochs`` is what was trained).
    """
    if not nets:
        raise ValueError("nets is empty: pass a dict of display name -> network")
    if recipe.resize is not None and train_set.shape[-1] != recipe.resize:
        raise ValueError(f"recipe {recipe.name!r} trains at {recipe.resize}x{recipe.resize}, but the data is "
                         f"{train_set.shape}; load it with resize={recipe.resize}")  # fmt: skip
    device = dev.resolve(device)
    if not distributed.is_main():
        say = _silent
    train = for_recipe(recipe, train_set, device=device, seed=seed, normalize=normalize)
    test = for_testing(test_set, device=device, normalize=normalize) if test_set is not None else None
    chosen = profile if isinstance(profile, Profile) else None
    if isinstance(profile, Profile):
        probe_steps = profile.probe_steps if probe_steps is None else probe_steps
        profile = profile.key
    probe_steps = 10 if probe_steps is None else probe_steps
    folder = None if runs is False else run_folder(None if runs in (None, True) else runs)
    requested = epochs
    full = settings.full_schedule() if full_schedule is None else full_schedule
    budget = None
    if probe_steps and not full:
        if budget_s is not None:
            budget = Budget(float(budget_s))
        elif chosen is not None:
            budget = call_budget(chosen, [(str(name), len(train_set) * epochs) for name in nets])

    def checkpoints(e: int) -> dict:
        """Each network's checkpoint for a schedule of ``e`` epochs (the epochs are in the fingerprint)."""
        if folder is None:
            return dict.fromkeys(nets)
        return {name: folder / f"{run_slug(str(name))}-"
                f"{run_fingerprint(name, net, train_set, test_set, recipe, e, seed, profile)}.pt"
                for name, net in nets.items()}  # fmt: skip

    ckpts = checkpoints(epochs)
    decide = budget is not None and not any(p is not None and p.exists() for p in ckpts.values())
    if decide and folder is not None:
        # A run started earlier under a budget resumes with the schedule chosen then, whatever today's probe.
        earlier = next((e for e in range(epochs - 1, 0, -1) if any(p.exists() for p in checkpoints(e).values())),
                       None)  # fmt: skip
        if earlier is not None:
            epochs, ckpts, decide = earlier, checkpoints(earlier), False
            say(f"Resuming the schedule chosen earlier to keep the time budget: {epochs} of {requested} epochs.")

    def statuses() -> dict:
        done = {name: epochs_done(ckpts[name]) for name in nets}
        return {name: "trained" if d == 0 else "loaded" if d >= epochs else f"resumed from epoch {d}"
                for name, d in done.items()}  # fmt: skip

    status = statuses()
    plans = {}
    if probe_steps:
        todo = [n for n in nets if status[n] != "loaded"]
        tests = len(test_set) / eval_every if test_set is not None else 0
        per_epoch = {name: probe(nets[name], train, recipe, probe_steps, device, precision)
                     .seconds(len(train_set), round(tests), 1) for name in todo}  # fmt: skip
        if decide:
            seconds = sum(per_epoch.values()) * epochs
            fitted = fitting_epochs(sum(per_epoch.values()), epochs, budget.seconds)
            if seconds > budget.seconds and fitted < epochs:
                say(over_budget_line(len(todo), epochs, fitted, seconds, dev.describe(device), probe_steps, budget,
                                     recipe.schedule))  # fmt: skip
                epochs, ckpts = fitted, checkpoints(fitted)
                status = statuses()
        plans = {name: per_epoch[name] * (epochs - epochs_done(ckpts[name])) for name in todo}
        say(plan_line(len(todo), len(nets) - len(todo), epochs, sum(plans.values()), dev.describe(device),
                      probe_steps, folder) + (drive_advice(folder) if folder else ""))  # fmt: skip

    histories = {}
    for name, net in nets.items():
        t0 = time.perf_counter()
        history = fit(net, train, test, recipe=recipe, epochs=epochs, device=device, precision=precision,
                      checkpoint=ckpts[name], seed=seed, progress=progress, eval_every=eval_every,
                      sync_batchnorm=sync_batchnorm)  # fmt: skip
        wall = time.perf_counter() - t0
        if status[name] == "loaded":
            wall = None  # trained in an earlier session; its epochs keep their own timings
        info = history.info
        info.key, info.data, info.profile, info.status = RunKey.of(name), train_set.describe(), profile, status[name]
        info.test_data = test_set.describe() if test_set is not None else None
        info.planned_seconds, info.wall_seconds = plans.get(name), wall
        info.requested_epochs, info.budget_seconds = requested, budget.seconds if budget is not None else None
        histories[name] = history
        say(_result_line(name, history, wall))
    return histories


def _silent(line: str) -> None:
    """What ranks other than 0 say: nothing (one voice per run)."""


def _result_line(name: RunKey | str, h: History, wall: float | None) -> str:
    f = h.final
    test = f", test error {100 * f.test_error:.1f}%" if f.test_error is not None else ""
    how = h.info.status
    took = "from its checkpoint" if wall is None else f"in {wall:.0f} s"
    short = f" ({h.info.epochs} of {h.info.requested_epochs} epochs)" if h.info.shortened else ""
    return f"{name}: {how} {took}{short}; final training error {100 * f.train_error:.1f}%{test}"


def run_slug(name: str) -> str:
    """``name`` as it appears in a checkpoint's file name (letters, digits, - and _)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)

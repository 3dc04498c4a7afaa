"""Running an experiment: one runner for every chapter, with a plan before and checkpoints during.

:func:`train_all` trains a dict of named networks with one
:class:`~resnet_lab.recipes.Recipe` on the same batches and returns their
histories. Before training it *probes*: a few steps of each network on this
machine give its speed, and one line says how long the run will take here
and where its checkpoints go. Every network is checkpointed every epoch in a
*run folder* (:func:`run_folder`), under a name that carries a fingerprint of
network, data, recipe, epochs and profile; re-running the same cell after a
disconnect resumes unfinished networks and loads finished ones.
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

from .data import ImageSet
from .loader import DeviceLoader, resolve_device
from .profiles import test_cap
from .recipes import Recipe
from .train import History, _autocast, _read, fit, param_groups, resolve_precision

__all__ = ["run_folder", "run_fingerprint", "probe", "Probe", "plan_line", "train_all", "COLAB_DRIVE"]

#: Where Google Drive appears on Colab once mounted (``drive.mount("/content/drive")``).
COLAB_DRIVE = Path("/content/drive/MyDrive")


def run_folder(folder: str | os.PathLike | None = None) -> Path:
    """Where checkpoints go: ``folder``, else ``$RESNET_LAB_RUNS``, else on Colab with Google Drive
    mounted ``MyDrive/resnet-lab-runs`` (it survives a disconnect), else ``runs/`` here."""
    if folder is not None:
        return Path(folder).expanduser()
    if os.environ.get("RESNET_LAB_RUNS"):
        return Path(os.environ["RESNET_LAB_RUNS"]).expanduser()
    if "google.colab" in sys.modules and COLAB_DRIVE.is_dir():
        return COLAB_DRIVE / "resnet-lab-runs"
    return Path("runs")


def drive_advice(folder: Path) -> str:
    """On Colab without Drive: how to make the run survive a disconnect. Elsewhere: nothing."""
    if "google.colab" not in sys.modules or str(folder).startswith(str(COLAB_DRIVE)):
        return ""
    return (" Google Drive is not mounted, so a disconnect loses this run: run "
            "`from google.colab import drive; drive.mount('/content/drive')` and this cell again.")  # fmt: skip


def run_fingerprint(name: str, model: nn.Module, train_set: ImageSet, test_set: ImageSet | None, recipe: Recipe,
                    epochs: int, seed: int, profile: str | None) -> str:  # fmt: skip
    """A short hash of everything that makes a run what it is; a checkpoint resumes only a run with
    the same fingerprint (a changed profile, recipe or data size starts afresh)."""
    shapes = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    data = [train_set.name, train_set.origin, len(train_set), len(test_set) if test_set is not None else 0]
    key = json.dumps([name, getattr(model, "arch", ""), shapes, data, train_set.shape, recipe.as_dict(), epochs, seed,
                      profile], default=str)  # fmt: skip
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

    Each step is timed alone and the median is used: a pause of the machine
    during one step (a shared host, a notebook autosave) does not skew the plan.
    """
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    net = copy.deepcopy(model).to(device, memory_format=torch.channels_last).train()
    optimizer = torch.optim.SGD(param_groups(net, recipe), lr=recipe.lr * 0.01, momentum=recipe.momentum)
    batches = iter(loader)
    x, y = next(batches)
    times = []
    for i in range(steps + 2):
        _sync(device)
        t0 = time.perf_counter()
        with _autocast(device, precision):
            loss = torch.nn.functional.cross_entropy(net(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _sync(device)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    train_ips = len(y) / statistics.median(times)
    net.eval()
    with torch.no_grad(), _autocast(device, precision):
        net(x)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(2):
            net(x)
        _sync(device)
    return Probe(train_ips, 2 * len(y) / (time.perf_counter() - t0))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"this CPU ({torch.get_num_threads()} threads)"


def plan_line(todo: int, finished: int, epochs: int, seconds: float, where: str, probe_steps: int,
              folder: Path | None) -> str:  # fmt: skip
    """One line before the work: what will run, for how long here, and where it is kept."""
    minutes = seconds / 60
    took = f"about {minutes:.0f} min" if minutes >= 1.5 else f"about {seconds:.0f} s"
    parts = [f"{todo} network{'s' if todo != 1 else ''}, {epochs} epochs each, {took} on {where} "
             f"(from a {probe_steps}-step probe)"]  # fmt: skip
    if finished:
        parts.append(f"{finished} finished earlier, loaded instead of trained")
    parts.append(f"checkpoints in {folder}" if folder else "no checkpoints")
    return ", ".join(parts) + "."


def train_all(
    recipe: Recipe,
    nets: dict[str, nn.Module],
    train_set: ImageSet,
    test_set: ImageSet | None,
    epochs: int,
    *,
    device: str | torch.device = "auto",
    precision: str = "auto",
    seed: int = 0,
    profile: str | None = None,
    runs: str | os.PathLike | None | bool = None,
    probe_steps: int = 10,
    eval_every: int = 1,
    normalize: bool = True,
    progress: bool = False,
    say: Callable[[str], None] = print,
) -> dict[str, History]:
    """Train every network of ``nets`` with ``recipe`` on the same batches; returns their histories.

    Args:
        nets: display name -> network (trained in place, in this order).
        profile: the profile's name, part of each checkpoint's fingerprint.
        runs: the run folder (see :func:`run_folder`); ``False`` keeps no checkpoints.
        probe_steps: steps per network in the speed probe before training (0: no probe, no plan).
        eval_every: test every this many epochs (and after the last).
        say: where the plan and per-network lines go (``print`` by default).

    Each history's ``info`` gets the network's name, the data, the profile,
    ``status`` (trained, resumed from epoch k, or loaded), the planned and
    the measured wall seconds (test passes included).
    """
    if not nets:
        raise ValueError("nets is empty: pass a dict of display name -> network")
    if recipe.resize is not None and train_set.shape[-1] != recipe.resize:
        raise ValueError(f"recipe {recipe.name!r} trains at {recipe.resize}x{recipe.resize}, but the data is "
                         f"{train_set.shape}; load it with resize={recipe.resize}")  # fmt: skip
    device = resolve_device(device)
    train = DeviceLoader(train_set, recipe.batch_size, augment=recipe.augment, normalize=normalize, device=device,
                         seed=seed)  # fmt: skip
    test = DeviceLoader(test_set, 500, normalize=normalize, device=device) if test_set is not None else None
    folder = None if runs is False else run_folder(None if runs in (None, True) else runs)
    status, ckpts = {}, {}
    for name, net in nets.items():
        ckpts[name] = None if folder is None else folder / (
            f"{_slug(name)}-{run_fingerprint(name, net, train_set, test_set, recipe, epochs, seed, profile)}.pt")
        done = _epochs_done(ckpts[name])
        status[name] = "trained" if done == 0 else "loaded" if done >= epochs else f"resumed from epoch {done}"

    plans = {}
    if test_cap():  # capped test runs train a step or two: a long probe would dominate
        probe_steps = min(probe_steps, 1)
    if probe_steps:
        todo = [n for n in nets if status[n] != "loaded"]
        for name in todo:
            p = probe(nets[name], train, recipe, probe_steps, device, precision)
            left = epochs - _epochs_done(ckpts[name])
            tests = len(test_set) / eval_every if test_set is not None else 0
            plans[name] = p.seconds(len(train_set), round(tests), left)
        say(plan_line(len(todo), len(nets) - len(todo), epochs, sum(plans.values()), device_name(device),
                      probe_steps, folder) + (drive_advice(folder) if folder else ""))  # fmt: skip

    histories = {}
    for name, net in nets.items():
        t0 = time.perf_counter()
        history = fit(net, train, test, recipe=recipe, epochs=epochs, device=device, precision=precision,
                      checkpoint=ckpts[name], seed=seed, progress=progress, eval_every=eval_every)  # fmt: skip
        wall = time.perf_counter() - t0
        if status[name] == "loaded":
            wall = None  # trained in an earlier session; its epochs keep their own timings
        history.info.update(name=name, data=train_set.describe(), profile=profile, status=status[name],
                            test_data=test_set.describe() if test_set is not None else None,
                            planned_seconds=plans.get(name), wall_seconds=wall)  # fmt: skip
        histories[name] = history
        say(_result_line(name, history, wall))
    return histories


def _result_line(name: str, h: History, wall: float | None) -> str:
    f = h.final
    test = f", test error {100 * f.test_error:.1f}%" if f.test_error is not None else ""
    how = h.info["status"]
    took = "from its checkpoint" if wall is None else f"in {wall:.0f} s"
    return f"{name}: {how} {took}; final training error {100 * f.train_error:.1f}%{test}"


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)


def _epochs_done(path: Path | None) -> int:
    if path is None or not path.exists():
        return 0
    state = _read(path, "cpu")
    return int(state.get("epoch", 0)) if isinstance(state, dict) else 0

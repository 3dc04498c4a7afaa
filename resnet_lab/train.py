"""Training: ``fit`` one network with a :class:`~resnet_lab.recipes.Recipe`, resumably.

``fit(model, train, test, recipe=PAPER, epochs=...)`` trains with SGD, sets
the learning rate every iteration (:func:`lr_at`), records a
:class:`~resnet_lab.history.History`, and at the end of every epoch writes a
checkpoint atomically (temporary file, then rename). Called again with the
same checkpoint path it resumes from there and, on the CPU with a fixed
seed, ends with exactly the weights and history of a run that was never
interrupted. One :func:`train_step` is the whole of an iteration, used by
the epoch loop and by the speed probe (:func:`resnet_lab.runs.probe`).
Mixed precision (bf16, or fp16 with loss scaling) runs through
``torch.autocast``, on a GPU or on the CPU. The training loader is made from
the recipe by :func:`resnet_lab.loader.for_recipe`; ``fit`` refuses one that
contradicts its recipe (:class:`Loader` says what ``fit`` reads).

Inside a process group of several ranks (``torchrun``; chapter "Training on
many devices", :mod:`resnet_lab.distributed`) ``fit`` runs unchanged: each
rank trains on its share of every batch, the model is wrapped in
``DistributedDataParallel`` (optionally with BatchNorm synchronised), the
epoch's sums and the test counts are added over the ranks, only rank 0
draws progress and writes checkpoints, and every rank resumes from the same
checkpoint.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from torch import nn

from . import device as dev
from . import distributed
from .files import CheckpointMismatchError, atomic_save, load_model, model_fingerprint, read_saved, save_model
from .history import EpochRecord, History, RunInfo
from .models import evaluating
from .recipes import SCHEDULES, Recipe

__all__ = [
    "Loader", "check_loader", "fit", "train_step", "train_one_epoch", "evaluate", "predict", "lr_at", "param_groups",
    "make_optimizer", "make_scaler", "save_checkpoint", "load_checkpoint", "epochs_done", "save_model", "load_model",
    "CheckpointMismatchError", "History", "EpochRecord", "RunInfo",
]  # fmt: skip


@runtime_checkable
class Loader(Protocol):
    """What :func:`fit` reads of a training loader (:class:`resnet_lab.loader.DeviceLoader` is one).

    ``batch_size`` and ``augment`` must be the recipe's; ``channels_last``
    says the batches come in that memory format (the model is moved to it
    too); ``set_epoch`` chooses the epoch's permutation, which makes a
    resumed run draw the same batches.
    """

    batch_size: int
    augment: str | None
    channels_last: bool
    num_images: int

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]: ...

    def set_epoch(self, epoch: int) -> None: ...


def check_loader(train: object, recipe: Recipe) -> Loader:
    """``train`` if it is a :class:`Loader` that agrees with ``recipe``; else a ValueError saying what differs."""
    fix = "build it with resnet_lab.loader.for_recipe(recipe, data)"
    if not isinstance(train, Loader):
        missing = [n for n in ("batch_size", "augment", "channels_last", "num_images", "set_epoch", "__len__")
                   if not hasattr(train, n)]  # fmt: skip
        raise TypeError(f"fit() needs a training loader with {', '.join(missing)} (see resnet_lab.train.Loader), "
                        f"got {type(train).__name__}; {fix}")  # fmt: skip
    if train.batch_size != recipe.batch_size:
        raise ValueError(f"the loader gives batches of {train.batch_size}, but recipe {recipe.name!r} trains with "
                         f"batches of {recipe.batch_size}; {fix}, or use recipe.with_batch_size({train.batch_size})")
    if train.augment != recipe.augment:
        raise ValueError(f"the loader augments with {train.augment!r}, but recipe {recipe.name!r} names "
                         f"{recipe.augment!r}; {fix}, or recipe.replace(augment={train.augment!r})")  # fmt: skip
    share = (getattr(train, "rank", 0), getattr(train, "world_size", 1))
    if share != distributed.share():
        raise ValueError(f"this process is rank {distributed.rank()} of {distributed.world_size()}, but the loader "
                         f"gives the share of rank {share[0]} of {share[1]}; {fix} inside the process group "
                         "(it takes this rank's share)")  # fmt: skip
    return train


def lr_at(step: int, total_steps: int, lr: float, schedule: str = "step", warmup: int = 0) -> float:
    """Learning rate at iteration ``step`` (0-based) of ``total_steps``.

    ``step``: lr, then lr/10 from 50% and lr/100 from 75% of training (the
    paper's 32k/48k of 64k iterations, scaled). ``onecycle``: linear up from
    lr/25 to lr over the first 25%, then cosine down to lr/1e4. The idea of one
    cycle up and down is Smith & Topin's (2019), whose 1cycle runs linearly both
    ways and cycles momentum (0.95 to 0.85 and back); the /25 start and the cosine
    descent follow PyTorch's ``OneCycleLR``, and the fixed momentum is the book's
    choice. ``cosine``: cosine to zero. ``warmup`` steps ramp linearly first
    (step, cosine and constant schedules).
    """
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if schedule != "onecycle" and step < warmup:
        return lr * (step + 1) / warmup
    if schedule == "constant":
        return lr
    if schedule == "step":
        frac = step / total_steps
        return lr * (0.01 if frac >= 0.75 else 0.1 if frac >= 0.5 else 1.0)
    if schedule == "onecycle":
        up = max(1, int(0.25 * total_steps))
        if step < up:
            return lr / 25 + (lr - lr / 25) * step / up
        t = (step - up) / max(1, total_steps - up)
        return lr / 1e4 + (lr - lr / 1e4) * 0.5 * (1 + math.cos(math.pi * t))
    t = (step - warmup) / max(1, total_steps - warmup)
    return lr * 0.5 * (1 + math.cos(math.pi * t))


def param_groups(model: nn.Module, recipe: Recipe) -> list[dict]:
    """Optimizer groups: weight decay on weights only (not BN parameters and biases), and the
    backbone at ``recipe.backbone_lr_scale`` of the head's rate. Frozen parameters are left out."""
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups.setdefault((p.ndim > 1, name.startswith("fc.")), []).append(p)
    return [
        {"params": params, "weight_decay": recipe.weight_decay if decay else 0.0,
         "lr_scale": 1.0 if head else recipe.backbone_lr_scale}
        for (decay, head), params in groups.items()
    ]  # fmt: skip


def set_train_mode(model: nn.Module) -> None:
    """``model.train()``, except modules marked ``frozen_eval`` (frozen BatchNorm) stay in eval mode."""
    model.train()
    for m in model.modules():
        if getattr(m, "frozen_eval", False):
            m.eval()


def make_optimizer(model: nn.Module, recipe: Recipe, lr: float | None = None) -> torch.optim.Optimizer:
    """SGD over :func:`param_groups` with the recipe's momentum and Nesterov setting (rate ``lr``, else the
    recipe's; the loop sets it per iteration)."""
    return torch.optim.SGD(param_groups(model, recipe), lr=recipe.lr if lr is None else lr,
                           momentum=recipe.momentum, nesterov=recipe.nesterov)  # fmt: skip


def make_scaler(device: torch.device, precision: str) -> torch.amp.GradScaler:
    """The gradient scaler for ``precision``: loss scaling for fp16, a pass-through otherwise."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer,
               scaler: torch.amp.GradScaler, *, precision: str, label_smoothing: float = 0.0,
               rate: float | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """One iteration: set the rate (each group at its ``lr_scale``), forward under autocast, loss, backward
    through the gradient scaler, step. Returns the loss and the outputs (not detached)."""
    if rate is not None:
        for group in optimizer.param_groups:
            group["lr"] = rate * group["lr_scale"]
    with dev.autocast(x.device, precision):
        out = model(x)
        loss = F.cross_entropy(out.float(), y, label_smoothing=label_smoothing)
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
    return loss, out


class Meter:
    """Running sums of loss, errors and images, kept on the device (no sync per step)."""

    def __init__(self, device: torch.device) -> None:
        self.loss = torch.zeros((), device=device)
        self.wrong = torch.zeros((), device=device, dtype=torch.long)
        self.images = 0

    def add(self, loss: torch.Tensor, out: torch.Tensor, y: torch.Tensor) -> None:
        self.loss += loss.detach() * len(y)
        self.wrong += (out.detach().argmax(1) != y).sum()
        self.images += len(y)

    def totals(self) -> tuple[float, int, int]:
        """Summed loss, errors and images since the meter was made, over every rank of a process group."""
        device = self.loss.device
        sums = torch.stack([self.loss.double(), self.wrong.double(), torch.tensor(float(self.images), device=device,
                                                                                  dtype=torch.float64)])
        loss, wrong, images = distributed.sum_across(sums).tolist()
        return loss, round(wrong), round(images)

    def averages(self) -> tuple[float, float]:
        """Mean loss and error fraction since the meter was made (over every rank)."""
        loss, wrong, images = self.totals()
        return loss / images, wrong / images


def train_one_epoch(model: nn.Module, loader: Iterable, optimizer: torch.optim.Optimizer, scaler, *,
                    rate: Callable[[int], float], step: int, precision: str, label_smoothing: float,
                    history: History, log_every: int, on_step: Callable[[int], None] | None = None,
                    bar=None) -> tuple[Meter, int]:  # fmt: skip
    """One pass over ``loader``: forward, loss, backward, step, with the rate set per iteration."""
    device = next(model.parameters()).device
    set_train_mode(model)
    epoch, window = Meter(device), Meter(device)
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss, out = train_step(model, x, y, optimizer, scaler, precision=precision, label_smoothing=label_smoothing,
                               rate=rate(step))
        epoch.add(loss, out, y)
        window.add(loss, out, y)
        step += 1
        if step % log_every == 0:
            loss_avg, error = window.averages()
            history.steps.append({"step": step, "train_loss": loss_avg, "train_error": error})
            window = Meter(device)
        if bar is not None:
            bar.update(1)
        if on_step is not None:
            on_step(step)
    return epoch, step


def fit(
    model: nn.Module,
    train: Loader,
    test: Iterable | None = None,
    *,
    recipe: Recipe,
    epochs: int,
    device: str | torch.device = "auto",
    precision: str = "auto",
    checkpoint: str | os.PathLike | None = None,
    seed: int = 0,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
    log_every: int | None = None,
    eval_every: int = 1,
    sync_batchnorm: bool = False,
) -> History:
    """Train ``model`` for ``epochs`` epochs with ``recipe``; returns the :class:`History`.

    Args:
        train: a :class:`Loader` made for ``recipe`` (its batch size and
            augmentation; :func:`resnet_lab.loader.for_recipe` makes one),
            else a clear error. It gets the epoch before each pass, which
            makes a resumed run draw the same batches.
        test: any iterable of ``(images, labels)`` batches, or None.
        precision: see :func:`resnet_lab.device.resolve_precision`; recorded in ``history.info``.
        checkpoint: a file path, written at the end of every epoch. If it
            exists when ``fit`` starts, training resumes from it (it must
            have been written for the same architecture, else
            :class:`CheckpointMismatchError`, and the file is left alone).
        on_step: called with the global step after every iteration.
        log_every: add a point to ``history.steps`` every this many steps
            (default: five points per epoch).
        eval_every: test every this many epochs, and after the last (runs
            of many tiny epochs, as with few labels, test less often).
        sync_batchnorm: in a process group, BatchNorm normalises with the statistics of the combined
            batch (:func:`resnet_lab.distributed.convert_sync_batchnorm`, which replaces ``model``'s
            BatchNorm modules in place); else with each rank's share's. Nothing changes in one process.
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    train = check_loader(train, recipe)
    steps_per_epoch = len(train)
    if steps_per_epoch == 0:
        raise ValueError("the training loader yields no batches (is the data set smaller than one batch?)")
    device = dev.resolve(device)
    precision = dev.resolve_precision(precision, device)
    torch.manual_seed(seed)
    model.to(device)
    if train.channels_last:
        model.to(memory_format=torch.channels_last)
    if sync_batchnorm and distributed.active():
        model = distributed.convert_sync_batchnorm(model, device)
    optimizer = make_optimizer(model, recipe)
    scaler = make_scaler(device, precision)
    total_steps = epochs * steps_per_epoch
    warmup = round(recipe.warmup_epochs * steps_per_epoch)

    def rate(step: int) -> float:
        return lr_at(step, total_steps, recipe.lr, recipe.schedule, warmup)

    history = History()
    start_epoch = 0
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    if ckpt_path is not None and ckpt_path.exists():
        start_epoch = load_checkpoint(ckpt_path, model, optimizer, scaler, history, device)
    if distributed.active() and distributed.broadcast_floats([start_epoch])[0] != start_epoch:
        raise RuntimeError(f"rank {distributed.rank()} resumes {ckpt_path} from epoch {start_epoch}, rank 0 from "
                           "another: every rank must see the same run folder (on several machines, a shared file "
                           "system)")  # fmt: skip
    net = distributed.wrap(model, device)  # DistributedDataParallel in a process group, else model
    # A run loaded whole (nothing left to train) keeps the device and processes that trained it.
    trained_by = history.info if start_epoch >= epochs and history.info.device else None
    history.info = RunInfo(
        arch=str(getattr(model, "arch", type(model).__name__)), params=sum(p.numel() for p in model.parameters()),
        trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        device=trained_by.device if trained_by else dev.describe(device),
        precision=precision, epochs=epochs, recipe=recipe.name, schedule=recipe.schedule, lr=recipe.lr,
        batch_size=train.batch_size, train_images=train.num_images, test_images=getattr(test, "num_images", None),
        processes=trained_by.processes if trained_by else distributed.world_size(),
    )  # fmt: skip
    log_every = log_every or max(1, steps_per_epoch // 5)
    step = start_epoch * steps_per_epoch
    for epoch in range(start_epoch, epochs):
        train.set_epoch(epoch)
        bar = _progress(steps_per_epoch, f"epoch {epoch + 1}/{epochs}", progress and distributed.is_main())
        dev.synchronize(device)
        t0 = time.perf_counter()
        meter, step = train_one_epoch(net, train, optimizer, scaler, rate=rate, step=step, precision=precision,
                                      label_smoothing=recipe.label_smoothing, history=history,
                                      log_every=log_every, on_step=on_step, bar=bar)  # fmt: skip
        dev.synchronize(device)
        seconds = time.perf_counter() - t0
        if bar is not None:
            bar.close()
        tested = test is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs)
        distributed.broadcast_buffers(model)  # per-rank BatchNorm: every rank tests (and rank 0 saves) rank 0's
        test_loss, test_error = evaluate(model, test, device, precision) if tested else (None, None)
        loss_sum, wrong, images = meter.totals()
        history.records.append(EpochRecord(epoch + 1, step, rate(step - 1), loss_sum / images, wrong / images,
                                           test_loss, test_error, images / seconds, seconds))  # fmt: skip
        if ckpt_path is not None:
            if distributed.is_main():
                save_checkpoint(ckpt_path, model, optimizer, scaler, history, epoch + 1)
            distributed.barrier()  # no rank runs ahead of the checkpoint it would resume from
    return history


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, unit="batch")


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, device: str | torch.device = "auto",
             precision: str = "fp32") -> tuple[float, float]:  # fmt: skip
    """Mean cross-entropy loss and error (fraction wrong) of ``model`` on ``loader``, in eval mode; in a
    process group, over every rank's share (the sums are added across ranks)."""
    device = dev.resolve(device)
    loss_sum, wrong, n = 0.0, 0, 0
    with evaluating(model), dev.autocast(device, dev.resolve_precision(precision, device)):
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            out = model(x).float()
            loss_sum += F.cross_entropy(out, y, reduction="sum").item()
            wrong += (out.argmax(1) != y).sum().item()
            n += len(y)
    loss_sum, wrong, n = distributed.sum_across(torch.tensor([loss_sum, wrong, n], dtype=torch.float64,
                                                              device=distributed.collective_device())).tolist()
    if n == 0:
        raise ValueError("evaluate() got an empty loader")
    return loss_sum / n, wrong / n


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable, device: str | torch.device = "auto") -> tuple[torch.Tensor,
                                                                                              torch.Tensor]:
    """Class probabilities (N, classes) and true labels for every batch of ``loader``, on the CPU."""
    device = dev.resolve(device)
    probs, labels = [], []
    with evaluating(model):
        for x, y in loader:
            probs.append(F.softmax(model(x.to(device)).float(), dim=1).cpu())
            labels.append(y.cpu())
    return torch.cat(probs), torch.cat(labels)


# --- Checkpoints of a run ------------------------------------------------------------------


def save_checkpoint(path: Path, model: nn.Module, optimizer, scaler, history: History, epoch: int) -> None:
    """Everything a resumed run needs after ``epoch`` epochs: weights, optimizer, scaler, history, and the
    random generators' states (the CPU's and, where there are GPUs, every GPU's)."""
    atomic_save({
        "format": "resnet_lab/1", "epoch": epoch, "fingerprint": model_fingerprint(model), "model": model.state_dict(),
        "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
        "history": json.dumps(history.to_dict()), "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }, path)  # fmt: skip


def epochs_done(path: Path | None) -> int:
    """Epochs finished by the checkpoint at ``path`` (0 where there is none)."""
    if path is None or not path.exists():
        return 0
    state = read_saved(path, "cpu")
    return int(state.get("epoch", 0)) if isinstance(state, dict) else 0


def load_checkpoint(path: Path, model: nn.Module, optimizer, scaler, history: History, device) -> int:
    """Restore a run from ``path`` into ``model``, ``optimizer``, ``scaler`` and ``history``; returns its epoch."""
    state = read_saved(path, device)
    if not isinstance(state, dict) or state.get("format") != "resnet_lab/1":
        raise CheckpointMismatchError(f"{path} is not a resnet_lab checkpoint; pass another checkpoint path")
    theirs, ours = state["fingerprint"], model_fingerprint(model)
    if theirs != ours:
        raise CheckpointMismatchError(
            f"checkpoint {path} was written for {theirs['arch']} ({len(theirs['shapes'])} tensors), but this model "
            f"is {ours['arch']} ({len(ours['shapes'])} tensors). Pass a different checkpoint path, "
            "or delete this file to start afresh. The file was not changed."
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    restored = History.from_dict(json.loads(state["history"]))
    history.records[:], history.steps[:] = restored.records, restored.steps
    history.info = restored.info
    torch.set_rng_state(state["torch_rng"].cpu())
    cuda_rng = [s.cpu() for s in state.get("cuda_rng", [])]
    if cuda_rng and torch.cuda.is_available() and len(cuda_rng) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_rng)  # the GPUs' generators too, where the run had them
    return int(state["epoch"])


if __name__ == "__main__":  # python -m resnet_lab.train ..., or under torchrun: the command line
    from resnet_lab.cli import main

    raise SystemExit(main())

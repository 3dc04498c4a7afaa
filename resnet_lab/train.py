"""Training: ``fit`` one network with a :class:`~resnet_lab.recipes.Recipe`, resumably.

``fit(model, train, test, recipe=PAPER, epochs=...)`` trains with SGD, sets
the learning rate every iteration (:func:`lr_at`), records a
:class:`History`, and at the end of every epoch writes a checkpoint
atomically (temporary file, then rename). Called again with the same
checkpoint path it resumes from there and, on the CPU with a fixed seed,
ends with exactly the weights and history of a run that was never
interrupted. Mixed precision (bf16, or fp16 with loss scaling) runs through
``torch.autocast``, on a GPU or on the CPU. Planning, probing and run
folders live in :mod:`resnet_lab.runs`; the chapters on training use both.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .loader import resolve_device
from .models import evaluating
from .recipes import SCHEDULES, Recipe

__all__ = [
    "EpochRecord", "History", "fit", "train_one_epoch", "evaluate", "predict", "lr_at", "param_groups",
    "resolve_precision", "save_model", "load_model", "atomic_save", "CheckpointMismatchError",
]  # fmt: skip

PRECISIONS = ("auto", "fp32", "bf16", "fp16")


class CheckpointMismatchError(ValueError):
    """A checkpoint was written for a different model or run."""


@dataclass
class EpochRecord:
    """What one epoch did. Errors are fractions (0.07 = 7% wrong)."""

    epoch: int
    step: int
    lr: float
    train_loss: float
    train_error: float
    test_loss: float | None
    test_error: float | None
    images_per_s: float
    seconds: float


@dataclass
class History:
    """Per-epoch records of a run, plus what the run was (model, data, device, precision)."""

    records: list[EpochRecord] = field(default_factory=list)
    info: dict = field(default_factory=dict)
    #: Training curve within epochs: ``{"step", "train_loss", "train_error"}``
    #: averaged over the batches since the previous entry (for iteration plots).
    steps: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def column(self, name: str) -> list:
        return [getattr(r, name) for r in self.records]

    @property
    def final(self) -> EpochRecord:
        if not self.records:
            raise ValueError("this history has no epochs yet")
        return self.records[-1]

    @property
    def seconds(self) -> float:
        """Training time summed over the epochs (test passes excluded)."""
        return sum(r.seconds for r in self.records)

    def to_dict(self) -> dict:
        return {"records": [asdict(r) for r in self.records], "info": self.info, "steps": self.steps}

    @classmethod
    def from_dict(cls, d: dict) -> History:
        return cls([EpochRecord(**r) for r in d["records"]], dict(d.get("info", {})), list(d.get("steps", [])))

    def save(self, path: str | os.PathLike) -> None:
        atomic_save(json.dumps(self.to_dict(), indent=1), path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> History:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def plot(self, ax=None, label: str = "", **kwargs):
        """Training (thin) and test (bold) error per epoch, in percent. Returns the axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(6.4, 3.6))
        epochs = self.column("epoch")
        train = [100 * e for e in self.column("train_error")]
        (line,) = ax.plot(epochs, train, lw=1.2, label=f"{label} train".strip(), **kwargs)
        if any(e is not None for e in self.column("test_error")):
            test = [None if e is None else 100 * e for e in self.column("test_error")]
            ax.plot(epochs, test, lw=2.8, color=line.get_color(), label=f"{label} test".strip())
        ax.set_xlabel("epoch")
        ax.set_ylabel("error (%)")
        ax.legend()
        return ax


def lr_at(step: int, total_steps: int, lr: float, schedule: str = "step", warmup: int = 0) -> float:
    """Learning rate at iteration ``step`` (0-based) of ``total_steps``.

    ``step``: lr, then lr/10 from 50% and lr/100 from 75% of training (the
    paper's 32k/48k of 64k iterations, scaled). ``onecycle``: linear up from
    lr/25 to lr over the first 25%, then cosine down to lr/1e4 (Smith & Topin
    2019). ``cosine``: cosine to zero. ``warmup`` steps ramp linearly first
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


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"auto"``: fp32 on the CPU; on a GPU bf16 from compute capability 8.0 (Ampere) up, else fp16.

    ``torch.cuda.is_bf16_supported()`` also counts emulated bf16, which is
    slow: a T4 (capability 7.5, Colab's free GPU) has fp16 tensor cores only,
    so it gets fp16 with loss scaling. Explicit ``"bf16"``/``"fp16"`` are
    honoured on any device (autocast runs on the CPU too).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.get_device_capability(device) >= (8, 0) else "fp16"


def _autocast(device: torch.device, precision: str):
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)


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

    def averages(self) -> tuple[float, float]:
        """Mean loss and error fraction since the meter was made."""
        return self.loss.item() / self.images, self.wrong.item() / self.images


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
        for group in optimizer.param_groups:
            group["lr"] = rate(step) * group["lr_scale"]
        with _autocast(device, precision):
            out = model(x)
            loss = F.cross_entropy(out.float(), y, label_smoothing=label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
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
    train: Iterable,
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
) -> History:
    """Train ``model`` for ``epochs`` epochs with ``recipe``; returns the :class:`History`.

    Args:
        train, test: iterables of ``(images, labels)`` batches with a
            ``len()``, e.g. :class:`resnet_lab.loader.DeviceLoader`; a loader
            with ``set_epoch`` gets the epoch before each pass, which makes a
            resumed run draw the same batches. (The recipe's batch size and
            augmentation are the loader's business.)
        precision: see :func:`resolve_precision`; recorded in ``history.info``.
        checkpoint: a file path, written at the end of every epoch. If it
            exists when ``fit`` starts, training resumes from it (it must
            have been written for the same architecture, else
            :class:`CheckpointMismatchError`, and the file is left alone).
        on_step: called with the global step after every iteration.
        log_every: add a point to ``history.steps`` every this many steps
            (default: five points per epoch).
        eval_every: test every this many epochs, and after the last (runs
            of many tiny epochs, as with few labels, test less often).
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    steps_per_epoch = len(train)  # type: ignore[arg-type]
    if steps_per_epoch == 0:
        raise ValueError("the training loader yields no batches (is the data set smaller than one batch?)")
    device = resolve_device(device)
    precision = resolve_precision(precision, device)
    torch.manual_seed(seed)
    model.to(device)
    if getattr(train, "channels_last", False):
        model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(param_groups(model, recipe), lr=recipe.lr, momentum=recipe.momentum,
                                nesterov=recipe.nesterov)  # fmt: skip
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    total_steps = epochs * steps_per_epoch
    warmup = round(recipe.warmup_epochs * steps_per_epoch)

    def rate(step: int) -> float:
        return lr_at(step, total_steps, recipe.lr, recipe.schedule, warmup)

    history = History()
    start_epoch = 0
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    if ckpt_path is not None and ckpt_path.exists():
        start_epoch = _load_checkpoint(ckpt_path, model, optimizer, scaler, history, device)
    history.info.update(
        arch=str(getattr(model, "arch", type(model).__name__)), params=sum(p.numel() for p in model.parameters()),
        trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        device=str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        precision=precision, epochs=epochs, recipe=recipe.name, schedule=recipe.schedule, lr=recipe.lr,
        batch_size=getattr(train, "batch_size", None), train_images=getattr(train, "num_images", None),
        test_images=getattr(test, "num_images", None),
    )  # fmt: skip
    log_every = log_every or max(1, steps_per_epoch // 5)
    step = start_epoch * steps_per_epoch
    for epoch in range(start_epoch, epochs):
        if hasattr(train, "set_epoch"):
            train.set_epoch(epoch)
        bar = _progress(steps_per_epoch, f"epoch {epoch + 1}/{epochs}", progress)
        _synchronize(device)
        t0 = time.perf_counter()
        meter, step = train_one_epoch(model, train, optimizer, scaler, rate=rate, step=step, precision=precision,
                                      label_smoothing=recipe.label_smoothing, history=history,
                                      log_every=log_every, on_step=on_step, bar=bar)  # fmt: skip
        _synchronize(device)
        seconds = time.perf_counter() - t0
        if bar is not None:
            bar.close()
        tested = test is not None and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs)
        test_loss, test_error = evaluate(model, test, device, precision) if tested else (None, None)
        train_loss, train_error = meter.averages()
        history.records.append(EpochRecord(epoch + 1, step, rate(step - 1), train_loss, train_error, test_loss,
                                           test_error, meter.images / seconds, seconds))  # fmt: skip
        if ckpt_path is not None:
            _save_checkpoint(ckpt_path, model, optimizer, scaler, history, epoch + 1)
    return history


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, unit="batch")


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, device: str | torch.device = "auto",
             precision: str = "fp32") -> tuple[float, float]:  # fmt: skip
    """Mean cross-entropy loss and error (fraction wrong) of ``model`` on ``loader``, in eval mode."""
    device = resolve_device(device)
    loss_sum, wrong, n = 0.0, 0, 0
    with evaluating(model), _autocast(device, resolve_precision(precision, device)):
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            out = model(x).float()
            loss_sum += F.cross_entropy(out, y, reduction="sum").item()
            wrong += (out.argmax(1) != y).sum().item()
            n += len(y)
    if n == 0:
        raise ValueError("evaluate() got an empty loader")
    return loss_sum / n, wrong / n


@torch.no_grad()
def predict(model: nn.Module, loader: Iterable, device: str | torch.device = "auto") -> tuple[torch.Tensor,
                                                                                              torch.Tensor]:
    """Class probabilities (N, classes) and true labels for every batch of ``loader``, on the CPU."""
    device = resolve_device(device)
    probs, labels = [], []
    with evaluating(model):
        for x, y in loader:
            probs.append(F.softmax(model(x.to(device)).float(), dim=1).cpu())
            labels.append(y.cpu())
    return torch.cat(probs), torch.cat(labels)


# --- Files: checkpoints and saved models ------------------------------------------------


def atomic_save(obj, path: str | os.PathLike) -> None:
    """Write ``obj`` (text, or anything ``torch.save`` takes) to ``path`` via a temporary file and a
    rename, so a crash leaves the previous file whole."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if isinstance(obj, str):
        tmp.write_text(obj)
    else:
        torch.save(obj, tmp)
    os.replace(tmp, path)


def _fingerprint(model: nn.Module) -> dict:
    shapes = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    return {"arch": str(getattr(model, "arch", type(model).__name__)), "shapes": shapes}


def _save_checkpoint(path: Path, model, optimizer, scaler, history: History, epoch: int) -> None:
    atomic_save({
        "format": "resnet_lab/1", "epoch": epoch, "fingerprint": _fingerprint(model), "model": model.state_dict(),
        "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(),
        "history": json.dumps(history.to_dict()), "torch_rng": torch.get_rng_state(),
    }, path)  # fmt: skip


def _read(path: Path, device) -> dict:
    """``torch.load`` with ``weights_only=True`` (tensors and plain data only: no code runs)."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read it is reported the same way
        raise CheckpointMismatchError(
            f"cannot read checkpoint {path}: {type(exc).__name__}: {str(exc).splitlines()[0]}. "
            "Delete it to start afresh, or pass another checkpoint path."
        ) from exc


def _load_checkpoint(path: Path, model, optimizer, scaler, history: History, device) -> int:
    state = _read(path, device)
    if not isinstance(state, dict) or state.get("format") != "resnet_lab/1":
        raise CheckpointMismatchError(f"{path} is not a resnet_lab checkpoint; pass another checkpoint path")
    theirs, ours = state["fingerprint"], _fingerprint(model)
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
    history.info.update(restored.info)
    torch.set_rng_state(state["torch_rng"].cpu())
    return int(state["epoch"])


def save_model(model: nn.Module, path: str | os.PathLike) -> None:
    """Save weights plus the architecture fingerprint, atomically."""
    atomic_save({"format": "resnet_lab/model", "fingerprint": _fingerprint(model), "model": model.state_dict()}, path)


def load_model(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load weights saved by :func:`save_model` into ``model`` (safe loading: tensors only, no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no saved model at {path}; save one with resnet_lab.train.save_model(model, path)")
    state = _read(path, "cpu")
    if not isinstance(state, dict) or state.get("format") != "resnet_lab/model":
        raise CheckpointMismatchError(f"{path} was not written by resnet_lab.train.save_model")
    if state["fingerprint"] != _fingerprint(model):
        raise CheckpointMismatchError(
            f"{path} holds weights of {state['fingerprint']['arch']}, not of {_fingerprint(model)['arch']}; "
            "build the same architecture before loading"
        )
    model.load_state_dict(state["model"])
    return model

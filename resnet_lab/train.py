"""Training: ``fit`` with the paper's schedule, resumable checkpoints, a history.

``fit(model, train, test, epochs=...)`` trains with SGD + momentum. The
learning rate follows the paper's step schedule (lr divided by 10 at 50% and
75% of training; He et al. 2015, section 4.2), or a one-cycle or cosine
schedule, set per iteration. At the end of every epoch it writes a
checkpoint atomically (temporary file, then rename); called again with the
same checkpoint path it resumes from there and, on the CPU with a fixed seed,
ends with exactly the weights and history of a run that was never
interrupted. The chapters "Training on Fashion-MNIST", "Training on CIFAR-10"
and "The degradation experiment" all train through it.
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

from .data import resolve_device

__all__ = [
    "EpochRecord", "History", "fit", "evaluate", "predict", "lr_at",
    "save_model", "load_model", "CheckpointMismatchError",
]  # fmt: skip

SCHEDULES = ("step", "onecycle", "cosine", "constant")


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
    """Per-epoch records of a run, plus what the run was (model, data, device)."""

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

    def to_dict(self) -> dict:
        return {"records": [asdict(r) for r in self.records], "info": self.info, "steps": self.steps}

    @classmethod
    def from_dict(cls, d: dict) -> History:
        return cls([EpochRecord(**r) for r in d["records"]], dict(d.get("info", {})), list(d.get("steps", [])))

    def save(self, path: str | os.PathLike) -> None:
        _atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path: str | os.PathLike) -> History:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def plot(self, ax=None, label: str = "", **kwargs):
        """Training (thin) and test (bold) error per epoch, in percent. Returns the axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(5, 3.2))
        epochs = self.column("epoch")
        (line,) = ax.plot(epochs, [100 * e for e in self.column("train_error")], lw=1, label=f"{label} train".strip(),
                          **kwargs)  # fmt: skip
        if any(e is not None for e in self.column("test_error")):
            ax.plot(epochs, [None if e is None else 100 * e for e in self.column("test_error")], lw=2.5,
                    color=line.get_color(), label=f"{label} test".strip())  # fmt: skip
        ax.set_xlabel("epoch")
        ax.set_ylabel("error (%)")
        ax.legend()
        return ax


def lr_at(step: int, total_steps: int, lr: float, schedule: str = "step", warmup: int = 0) -> float:
    """Learning rate at iteration ``step`` (0-based) of ``total_steps``.

    ``step``: lr, then lr/10 from 50% and lr/100 from 75% of training (the
    paper's 32k/48k of 64k iterations, scaled). ``onecycle``: linear up from
    lr/25 to lr over the first 25%, then cosine down to lr/1e4 (Smith 2018).
    ``cosine``: optional linear warm-up, then cosine to zero.
    """
    if schedule == "constant":
        return lr
    if schedule == "step":
        if step < warmup:
            return lr * (step + 1) / warmup
        frac = step / total_steps
        return lr * (0.01 if frac >= 0.75 else 0.1 if frac >= 0.5 else 1.0)
    if schedule == "onecycle":
        up = max(1, int(0.25 * total_steps))
        if step < up:
            return lr / 25 + (lr - lr / 25) * step / up
        t = (step - up) / max(1, total_steps - up)
        return lr / 1e4 + (lr - lr / 1e4) * 0.5 * (1 + math.cos(math.pi * t))
    if schedule == "cosine":
        if step < warmup:
            return lr * (step + 1) / warmup
        t = (step - warmup) / max(1, total_steps - warmup)
        return lr * 0.5 * (1 + math.cos(math.pi * t))
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")


def _atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _fingerprint(model: nn.Module) -> dict:
    shapes = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    return {"arch": str(getattr(model, "arch", type(model).__name__)), "shapes": shapes}


def _autocast(device: torch.device, precision: str):
    if precision == "fp32" or device.type != "cuda":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type="cuda", dtype=dtype)


def _resolve_precision(precision: str, device: torch.device) -> str:
    if precision not in ("auto", "fp32", "bf16", "fp16"):
        raise ValueError(f"precision must be 'auto', 'fp32', 'bf16' or 'fp16', got {precision!r}")
    if device.type != "cuda":
        return "fp32"
    if precision == "auto":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return precision


@torch.no_grad()
def evaluate(model: nn.Module, loader: Iterable, device: str | torch.device = "auto",
             precision: str = "fp32") -> tuple[float, float]:  # fmt: skip
    """Mean cross-entropy loss and error (fraction wrong) of ``model`` on ``loader``."""
    device = resolve_device(device)
    was_training = model.training
    model.eval()
    loss_sum, wrong, n = 0.0, 0, 0
    with _autocast(device, _resolve_precision(precision, device)):
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            out = model(x).float()
            loss_sum += F.cross_entropy(out, y, reduction="sum").item()
            wrong += (out.argmax(1) != y).sum().item()
            n += len(y)
    model.train(was_training)
    if n == 0:
        raise ValueError("evaluate() got an empty loader")
    return loss_sum / n, wrong / n


@torch.no_grad()
def predict(
    model: nn.Module, loader: Iterable, device: str | torch.device = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Class probabilities (N, classes) and true labels for every batch of ``loader``, on the CPU."""
    device = resolve_device(device)
    was_training = model.training
    model.eval()
    probs, labels = [], []
    for x, y in loader:
        probs.append(F.softmax(model(x.to(device)).float(), dim=1).cpu())
        labels.append(y.cpu())
    model.train(was_training)
    return torch.cat(probs), torch.cat(labels)


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, unit="batch")


def fit(
    model: nn.Module,
    train: Iterable,
    test: Iterable | None = None,
    *,
    epochs: int,
    lr: float = 0.1,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    nesterov: bool = False,
    schedule: str = "step",
    warmup_steps: int = 0,
    label_smoothing: float = 0.0,
    device: str | torch.device = "auto",
    precision: str = "auto",
    checkpoint: str | os.PathLike | None = None,
    seed: int = 0,
    progress: bool = True,
    on_step: Callable[[int], None] | None = None,
    log_every: int | None = None,
    history: History | None = None,
) -> History:
    """Train ``model`` for ``epochs`` epochs; returns the :class:`History`.

    Args:
        train, test: iterables of ``(images, labels)`` batches with a
            ``len()``, e.g. :class:`resnet_lab.data.DeviceLoader`; a loader
            with ``set_epoch`` gets the epoch before each pass, which makes a
            resumed run draw the same batches.
        schedule: ``"step"`` (the paper's), ``"onecycle"``, ``"cosine"`` or
            ``"constant"``; the rate is set every iteration (:func:`lr_at`).
        precision: ``"auto"`` = bf16 (or fp16 with loss scaling) autocast on
            CUDA, fp32 on the CPU.
        checkpoint: a file path. Written at the end of every epoch; if it
            exists when ``fit`` starts, training resumes from it (it must have
            been written for the same model architecture, else
            :class:`CheckpointMismatchError`, and the file is left alone).
        on_step: called with the global step after every iteration.
        log_every: add a point to ``history.steps`` every this many steps
            (default: five points per epoch).
    """
    if not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs must be a positive int, got {epochs!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    steps_per_epoch = len(train)  # type: ignore[arg-type]
    if steps_per_epoch == 0:
        raise ValueError("the training loader yields no batches (is the data set smaller than one batch?)")
    device = resolve_device(device)
    precision = _resolve_precision(precision, device)
    torch.manual_seed(seed)
    model.to(device)
    if getattr(train, "channels_last", False):
        model.to(memory_format=torch.channels_last)

    decay, no_decay = [], []
    for p in model.parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    # Weight decay on weights only, not on BN parameters and biases.
    optimizer = torch.optim.SGD(
        [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=lr, momentum=momentum, nesterov=nesterov,
    )  # fmt: skip
    scaler = torch.amp.GradScaler("cuda", enabled=precision == "fp16")
    total_steps = epochs * steps_per_epoch
    log_every = log_every or max(1, steps_per_epoch // 5)
    history = history or History()
    start_epoch = 0
    ckpt_path = Path(checkpoint) if checkpoint is not None else None
    if ckpt_path is not None and ckpt_path.exists():
        start_epoch = _load_checkpoint(ckpt_path, model, optimizer, scaler, history, device)
    history.info.update(
        arch=str(getattr(model, "arch", type(model).__name__)),
        params=sum(p.numel() for p in model.parameters()),
        device=str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        precision=precision,
        epochs=epochs,
        batch_size=getattr(train, "batch_size", None),
        train_images=getattr(train, "num_images", None),
        test_images=getattr(test, "num_images", None),
        schedule=schedule,
        lr=lr,
    )

    step = start_epoch * steps_per_epoch
    for epoch in range(start_epoch, epochs):
        if hasattr(train, "set_epoch"):
            train.set_epoch(epoch)
        model.train()
        loss_sum = torch.zeros((), device=device)
        wrong = torch.zeros((), device=device, dtype=torch.long)
        seen = 0
        window = [torch.zeros((), device=device), torch.zeros((), device=device, dtype=torch.long), 0]
        bar = _progress(steps_per_epoch, f"epoch {epoch + 1}/{epochs}", progress)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for x, y in train:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            rate = lr_at(step, total_steps, lr, schedule, warmup_steps)
            for group in optimizer.param_groups:
                group["lr"] = rate
            with _autocast(device, precision):
                out = model(x)
                loss = F.cross_entropy(out.float(), y, label_smoothing=label_smoothing)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            batch_wrong = (out.detach().argmax(1) != y).sum()
            loss_sum += loss.detach() * len(y)
            wrong += batch_wrong
            seen += len(y)
            step += 1
            window[0] += loss.detach() * len(y)
            window[1] += batch_wrong
            window[2] += len(y)
            if step % log_every == 0:
                history.steps.append({"step": step, "train_loss": window[0].item() / window[2],
                                      "train_error": window[1].item() / window[2]})  # fmt: skip
                window = [torch.zeros_like(window[0]), torch.zeros_like(window[1]), 0]
            if bar is not None:
                elapsed = time.perf_counter() - t0
                bar.update(1)
                if bar.n % 10 == 0 or bar.n == steps_per_epoch:
                    bar.set_postfix(loss=f"{loss_sum.item() / seen:.3f}", acc=f"{1 - wrong.item() / seen:.3f}",
                                    img_s=f"{seen / elapsed:.0f}")  # fmt: skip
            if on_step is not None:
                on_step(step)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - t0
        if bar is not None:
            bar.close()
        test_loss = test_error = None
        if test is not None:
            test_loss, test_error = evaluate(model, test, device, precision)
        history.records.append(
            EpochRecord(
                epoch=epoch + 1,
                step=step,
                lr=rate,
                train_loss=loss_sum.item() / seen,
                train_error=wrong.item() / seen,
                test_loss=test_loss,
                test_error=test_error,
                images_per_s=seen / seconds,
                seconds=seconds,
            )
        )
        if ckpt_path is not None:
            _save_checkpoint(ckpt_path, model, optimizer, scaler, history, epoch + 1)
    return history


def _save_checkpoint(path: Path, model, optimizer, scaler, history: History, epoch: int) -> None:
    state = {
        "format": "resnet_lab/1",
        "epoch": epoch,
        "fingerprint": _fingerprint(model),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict(),
        "history": json.dumps(history.to_dict()),
        "torch_rng": torch.get_rng_state(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)  # atomic: a crash leaves the previous checkpoint whole


def _load_checkpoint(path: Path, model, optimizer, scaler, history: History, device) -> int:
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read it is reported the same way
        raise CheckpointMismatchError(
            f"cannot read checkpoint {path}: {type(exc).__name__}: {str(exc).splitlines()[0]}. "
            "Delete it to start afresh, or pass another checkpoint path."
        ) from exc
    if not isinstance(state, dict) or state.get("format") != "resnet_lab/1":
        raise CheckpointMismatchError(f"{path} is not a resnet_lab checkpoint; pass another checkpoint path")
    theirs, ours = state["fingerprint"], _fingerprint(model)
    if theirs != ours:
        n_theirs = len(theirs["shapes"])
        raise CheckpointMismatchError(
            f"checkpoint {path} was written for {theirs['arch']} ({n_theirs} tensors), but this model is "
            f"{ours['arch']} ({len(ours['shapes'])} tensors). Pass a different checkpoint path, "
            "or delete this file to start afresh. The file was not changed."
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scaler.load_state_dict(state["scaler"])
    restored = History.from_dict(json.loads(state["history"]))
    history.records[:] = restored.records
    history.steps[:] = restored.steps
    history.info.update(restored.info)
    torch.set_rng_state(state["torch_rng"].cpu())
    return int(state["epoch"])


def save_model(model: nn.Module, path: str | os.PathLike) -> None:
    """Save weights plus the architecture fingerprint, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"format": "resnet_lab/model", "fingerprint": _fingerprint(model), "model": model.state_dict()}, tmp)
    os.replace(tmp, path)


def load_model(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load weights saved by :func:`save_model` into ``model`` (safe loading: tensors only)."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or state.get("format") != "resnet_lab/model":
        raise CheckpointMismatchError(f"{path} was not written by resnet_lab.train.save_model")
    if state["fingerprint"] != _fingerprint(model):
        raise CheckpointMismatchError(
            f"{path} holds weights of {state['fingerprint']['arch']}, not of {_fingerprint(model)['arch']}; "
            "build the same architecture before loading"
        )
    model.load_state_dict(state["model"])
    return model

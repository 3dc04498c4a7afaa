"""The device a run uses: which one, how to wait for it, how to name it, and its precision.

One home for what the trainer, the probe, the loaders and the banner each
need to know about CUDA and Apple's ``mps``: ``resolve("auto")`` picks the device,
:func:`synchronize` waits for queued GPU work before a clock is read,
:func:`describe` names the device for a page, :func:`resolve_precision` and
:func:`autocast` choose and apply mixed precision.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

__all__ = ["resolve", "mps_available", "synchronize", "describe", "resolve_precision", "autocast", "PRECISIONS"]

#: ``auto`` chooses per device (:func:`resolve_precision`).
PRECISIONS = ("auto", "fp32", "bf16", "fp16")


def mps_available() -> bool:
    """Whether Apple's Metal GPU (``mps``, Apple silicon with macOS 12.3 or later) can be used here."""
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` means CUDA where available, else Apple's ``mps`` where available, else the CPU; anything
    else goes to ``torch.device``."""
    if str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if mps_available() else "cpu")
    return torch.device(device)


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (a GPU runs asynchronously; a clock read without this
    measures the queueing, not the work). Nothing to wait for on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def describe(device: torch.device | str = "auto") -> str:
    """The device in words for a page: ``cuda (Tesla T4)``, ``mps (Apple GPU)`` or ``cpu (2 threads)``."""
    device = resolve(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "mps (Apple GPU)"
    threads = torch.get_num_threads()
    return f"cpu ({threads} thread{'s' if threads != 1 else ''})" if device.type == "cpu" else str(device)


def resolve_precision(precision: str, device: torch.device) -> str:
    """``"auto"``: fp32 on the CPU and on Apple's ``mps``; on a CUDA GPU bf16 from compute capability 8.0
    (Ampere) up, else fp16.

    ``torch.cuda.is_bf16_supported()`` also counts emulated bf16, which is
    slow: a T4 (capability 7.5, Colab's free GPU) has fp16 tensor cores only,
    so it gets fp16 with loss scaling.

    ``mps`` gets fp32: Apple's GPUs have no half-precision matrix units like
    the tensor cores that make fp16 pay on a T4 (Apple quotes about the same
    arithmetic rate for fp16 as for fp32; not measured here), so autocast
    would add casts and loss scaling for little gain on the book's small
    networks, and fp32 keeps a Mac's numbers comparable with the ``cpu``
    profile's. bf16 on ``mps`` needs macOS 14 or
    later and not every operation has a bf16 kernel there, so ``auto`` never
    picks it.

    Explicit ``"bf16"``/``"fp16"`` are honoured on any device (autocast runs
    on the CPU too, and fp16 autocast and its gradient scaler on ``mps``).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    if device.type != "cuda":  # the CPU, mps (see above), anything else
        return "fp32"
    return "bf16" if torch.cuda.get_device_capability(device) >= (8, 0) else "fp16"


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """``torch.autocast`` at ``precision`` ("bf16" or "fp16") on ``device``; nothing for "fp32"."""
    if precision == "fp32":
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)

"""The training loop written out, and where one epoch's time goes.

:func:`plain_epoch` is the loop every reader should see once before
:func:`resnet_lab.train.fit` takes over: for each batch, forward, loss,
backward, step. :func:`timed_epoch` runs the same loop with a stopwatch
around each part (data, forward, backward, optimizer step) and then the test
pass, synchronising the GPU where there is one so each part is charged its
own time. Chapter "Training on Fashion-MNIST" shows both.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from . import device as dev
from .train import evaluate

__all__ = ["plain_epoch", "timed_epoch"]


def plain_epoch(model: nn.Module, batches: Iterable, optimizer: torch.optim.Optimizer) -> float:
    """One epoch of training, nothing hidden: returns the mean loss."""
    model.train()
    total, n = 0.0, 0
    for x, y in batches:
        out = model(x)  # forward
        loss = F.cross_entropy(out, y)  # loss
        optimizer.zero_grad()  # forget the previous batch's gradients
        loss.backward()  # backward: d loss / d every parameter
        optimizer.step()  # step: move every parameter against its gradient
        total += loss.item() * len(y)
        n += len(y)
    return total / n


def timed_epoch(model: nn.Module, batches: Iterable, optimizer: torch.optim.Optimizer,
                test: Iterable | None = None) -> dict[str, float]:  # fmt: skip
    """:func:`plain_epoch` with a stopwatch per part: seconds spent getting data, in the forward pass
    (loss included), the backward pass and the optimizer step, then evaluating ``test``."""
    device = next(model.parameters()).device

    def sync() -> None:
        dev.synchronize(device)

    parts = dict.fromkeys(("data", "forward", "backward", "step", "evaluation"), 0.0)
    model.train()
    batches = iter(batches)
    while True:
        t0 = time.perf_counter()
        try:
            x, y = next(batches)
        except StopIteration:
            break
        x, y = x.to(device), y.to(device)
        sync()
        t1 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        sync()
        t2 = time.perf_counter()
        optimizer.zero_grad()
        loss.backward()
        sync()
        t3 = time.perf_counter()
        optimizer.step()
        sync()
        t4 = time.perf_counter()
        for part, seconds in zip(("data", "forward", "backward", "step"), (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            parts[part] += seconds
    if test is not None:
        t0 = time.perf_counter()
        evaluate(model, test, device)
        parts["evaluation"] = time.perf_counter() - t0
    return parts

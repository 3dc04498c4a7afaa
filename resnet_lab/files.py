"""Files on disk: atomic writes, safe reads, and saved models with the fingerprint of their architecture.

Checkpoints of a training run are written and read by :mod:`resnet_lab.train`
with these; :func:`save_model` and :func:`load_model` keep a trained network.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

__all__ = ["atomic_save", "read_saved", "model_fingerprint", "save_model", "load_model", "CheckpointMismatchError"]


class CheckpointMismatchError(ValueError):
    """A checkpoint was written for a different model or run."""


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


def read_saved(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict:
    """``torch.load`` with ``weights_only=True`` (tensors and plain data only: no code runs)."""
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to read it is reported the same way
        raise CheckpointMismatchError(
            f"cannot read checkpoint {path}: {type(exc).__name__}: {str(exc).splitlines()[0]}. "
            "Delete it to start afresh, or pass another checkpoint path."
        ) from exc


def model_fingerprint(model: nn.Module) -> dict:
    """The architecture's name and the shape of every tensor of its state: what must match to load."""
    shapes = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    return {"arch": str(getattr(model, "arch", type(model).__name__)), "shapes": shapes}


def save_model(model: nn.Module, path: str | os.PathLike) -> None:
    """Save weights plus the architecture fingerprint, atomically."""
    atomic_save({"format": "resnet_lab/model", "fingerprint": model_fingerprint(model), "model": model.state_dict()},
                path)  # fmt: skip


def load_model(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load weights saved by :func:`save_model` into ``model`` (safe loading: tensors only, no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no saved model at {path}; save one with resnet_lab.train.save_model(model, path)")
    state = read_saved(path, "cpu")
    if not isinstance(state, dict) or state.get("format") != "resnet_lab/model":
        raise CheckpointMismatchError(f"{path} was not written by resnet_lab.train.save_model")
    if state["fingerprint"] != model_fingerprint(model):
        raise CheckpointMismatchError(
            f"{path} holds weights of {state['fingerprint']['arch']}, not of {model_fingerprint(model)['arch']}; "
            "build the same architecture before loading"
        )
    model.load_state_dict(state["model"])
    return model

"""Every setting ``resnet_lab`` takes from the environment, read here and nowhere else.

Each function reads its variable when called (a notebook may set one between
cells), checks it, and says what to write where a value is malformed. The
README's table of variables is :data:`VARIABLES`.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["VARIABLES", "profile_name", "runs_folder", "data_root", "cap", "transfer_mode", "full_schedule",
           "launcher", "export"]

#: Every variable, with what it does (the README's table).
VARIABLES: dict[str, str] = {
    "RESNET_LAB_PROFILE": "smoke, cpu, gpu or paper: how big every experiment is (unset: gpu where CUDA is "
                          "available, else cpu)",
    "RESNET_LAB_CAP": "'images,epochs', e.g. 64,1: every size of the profile capped, to try a profile's code "
                      "path (its depths and networks) in seconds; the banner says so",
    "RESNET_LAB_RUNS": "the run folder for checkpoints (unset: Google Drive on Colab when mounted, else runs/)",
    "RESNET_LAB_DATA": "the data root (unset: ../data, as d2l does)",
    "RESNET_LAB_TRANSFER": "auto or offline: whether the transfer chapter may download ImageNet weights",
    "RESNET_LAB_FULL_SCHEDULE": "1 to train every schedule in full even where the probe says a chapter would "
                                "run past its profile's budget (unset or 0: the runner shortens it and says so)",
}  # fmt: skip


def _get(name: str) -> str | None:
    value = os.environ.get(name, "").strip()
    return value or None


def profile_name() -> str | None:
    """``$RESNET_LAB_PROFILE``, lower-cased, or None where unset (the profile is then chosen by machine)."""
    value = _get("RESNET_LAB_PROFILE")
    return value.lower() if value else None


def cap() -> tuple[int, int] | None:
    """``(images, epochs)`` from ``$RESNET_LAB_CAP``, or None where it is unset."""
    value = _get("RESNET_LAB_CAP")
    if value is None:
        return None
    try:
        images, epochs = (int(v) for v in value.split(","))
    except ValueError:
        images = epochs = 0
    if images < 1 or epochs < 1:
        raise ValueError(f"RESNET_LAB_CAP must be 'images,epochs' with two positive integers (for example 64,1), "
                         f"got {value!r}; unset it to run the profile's full sizes")  # fmt: skip
    return images, epochs


def runs_folder() -> Path | None:
    """``$RESNET_LAB_RUNS`` as a path, or None where unset."""
    value = _get("RESNET_LAB_RUNS")
    return Path(value).expanduser() if value else None


def data_root() -> Path | None:
    """``$RESNET_LAB_DATA`` as a path, or None where unset."""
    value = _get("RESNET_LAB_DATA")
    return Path(value).expanduser() if value else None


TRANSFER_MODES = ("auto", "offline")


def transfer_mode() -> str:
    """``$RESNET_LAB_TRANSFER``: ``auto`` (download ImageNet weights where online) or ``offline``."""
    value = (_get("RESNET_LAB_TRANSFER") or "auto").lower()
    if value not in TRANSFER_MODES:
        raise ValueError(f"RESNET_LAB_TRANSFER must be one of {TRANSFER_MODES}, got {value!r}; "
                         "set it to offline to skip the download, or unset it")  # fmt: skip
    return value


_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def full_schedule() -> bool:
    """``$RESNET_LAB_FULL_SCHEDULE``: True to keep every schedule whole past the profile's time budget."""
    value = (_get("RESNET_LAB_FULL_SCHEDULE") or "0").lower()
    if value not in _TRUE + _FALSE:
        raise ValueError(f"RESNET_LAB_FULL_SCHEDULE must be 1 (train every schedule in full) or 0 (shorten a "
                         f"schedule to the profile's budget), got {value!r}; unset it for the default (0)")
    return value in _TRUE


def launcher() -> dict[str, int] | None:
    """What ``torchrun`` (or :func:`resnet_lab.distributed.launch`) tells each process it starts:
    ``{"rank", "world_size", "local_rank"}`` from ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; None where
    ``WORLD_SIZE`` is unset (a process started by hand). These are PyTorch's variables, not the book's."""
    world = _get("WORLD_SIZE")
    if world is None:
        return None
    try:
        return {"rank": int(_get("RANK") or 0), "world_size": int(world), "local_rank": int(_get("LOCAL_RANK") or 0)}
    except ValueError:
        raise ValueError(f"RANK, WORLD_SIZE and LOCAL_RANK must be integers (torchrun sets them), got "
                         f"{_get('RANK')!r}, {world!r}, {_get('LOCAL_RANK')!r}; unset them to run one "
                         "process") from None


def export(values: dict[str, str]) -> None:
    """Set environment variables in this process (a worker's ``RANK`` and the like, before it joins its group)."""
    os.environ.update(values)


def child_environment() -> dict[str, str]:
    """A copy of this process's whole environment, for a child process such as the grader's kernels
    (which then drops the ``RESNET_LAB_*`` settings that would change a student's experiment)."""
    return dict(os.environ)

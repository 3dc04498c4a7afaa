"""Shared test helpers: where the real offline data sets are, tiny synthetic ones, small runs."""

from __future__ import annotations

import gzip
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
import torch

from resnet_lab.data import DEBIAN_FASHION_DIR, ImageSet
from resnet_lab.history import EpochRecord, History, RunInfo

if TYPE_CHECKING:
    from nbformat import NotebookNode

REPO = Path(__file__).resolve().parents[1]
#: Scripts the tests run in a fresh Python (run_script), real files so that ruff checks them.
SCRIPTS = Path(__file__).resolve().parent / "scripts"
# CI clones the repository with shared/ beside it; RESNET_LAB_CIFAR_SUBSET overrides.
CIFAR_SUBSET = Path(os.environ.get("RESNET_LAB_CIFAR_SUBSET", REPO.parent / "shared" / "data" / "cifar10-subset"))

needs_fashion = pytest.mark.skipif(
    not DEBIAN_FASHION_DIR.is_dir(),
    reason=f"Fashion-MNIST not installed in {DEBIAN_FASHION_DIR} (apt-get install dataset-fashion-mnist; .ci/run does)",
)
needs_cifar_subset = pytest.mark.skipif(
    not (CIFAR_SUBSET / "cifar-10-batches-py").is_dir(),
    reason=f"CIFAR-10 subset not found at {CIFAR_SUBSET} (set RESNET_LAB_CIFAR_SUBSET)",
)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write ``array`` (uint8) as an IDX file, gzipped if the name ends in .gz."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wb") as f:
        f.write(payload)


def synthetic_set(
    n: int = 256, size: int = 16, channels: int = 1, classes: int = 4, seed: int = 0, train: bool = True
) -> ImageSet:
    """Images whose class is written in their brightness: learnable in a few steps."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    base = (labels.float() * (200 / (classes - 1)))[:, None, None, None]
    noise = torch.randint(0, 40, (n, channels, size, size), generator=g).float()
    images = (base + noise).clamp(0, 255).to(torch.uint8)
    names = tuple(f"class {i}" for i in range(classes))
    return ImageSet("synthetic", images, labels, names, "synthetic", train, (0.5,) * channels, (0.3,) * channels,
                    "made in the test")  # fmt: skip


def history(train_errors: list[float], test_errors: list[float] | None = None, params: int = 1000,
            seconds: float = 1.0, losses: list[float] | None = None) -> History:  # fmt: skip
    """A History with the given per-epoch errors (fractions), for verdict and table tests."""
    h = History(info=RunInfo(params=params, device="cpu"))
    test_errors = test_errors or train_errors
    losses = losses or [1.0] * len(train_errors)
    for i, (tr, te, loss) in enumerate(zip(train_errors, test_errors, losses)):
        h.records.append(EpochRecord(i + 1, 10 * (i + 1), 0.1, loss, tr, loss, te, 100.0, seconds))
    return h


def run_script(script: Path | str, *args: str, kill_on: str | None = None, times: int = 1) -> None:
    """Run ``script`` (a path, or a file name in tests/scripts) with ``args`` in a fresh Python with the
    repository importable. With ``kill_on``, SIGKILL it the ``times``-th time it prints that line (a
    disconnect); else it must succeed."""
    import signal
    import subprocess
    import sys

    script = SCRIPTS / script  # an absolute path stays as it is
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, str(script), *map(str, args)], stdout=subprocess.PIPE, text=True,
                            cwd=REPO, env=env)  # fmt: skip
    seen = 0
    for line in proc.stdout:
        if kill_on is not None and line.strip() == kill_on:
            seen += 1
            if seen == times:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(timeout=300)
    if kill_on is None:
        assert proc.returncode == 0, f"{script.name} failed with exit code {proc.returncode}"


def run_notebook(notebook: Path | NotebookNode, *, profile: str, env: Mapping[str, str | None] | None = None,
                 cwd: Path | None = None, timeout: int = 900) -> NotebookNode:  # fmt: skip
    """Execute ``notebook`` (a path, or a notebook already read) in a fresh ``python3`` kernel; return it executed.

    The kernel's environment is this process's with ``RESNET_LAB_PROFILE=profile``, ``MPLBACKEND=Agg`` and
    ``env`` on top (a value of None removes the variable). It is handed to the kernel when it starts, so
    this process's ``os.environ`` is never changed. The kernel runs in ``cwd``, by default the notebook's
    folder (required for a notebook given as a NotebookNode). A cell that fails raises
    ``nbclient.exceptions.CellExecutionError``, naming the cell.
    """
    import nbformat
    from nbclient import NotebookClient

    if isinstance(notebook, (str, Path)):
        cwd = cwd or Path(notebook).parent
        notebook = nbformat.read(notebook, as_version=4)
    if cwd is None:
        raise ValueError("run_notebook needs cwd for a notebook that is not read from a file")
    kernel_env = {**os.environ, "RESNET_LAB_PROFILE": profile, "MPLBACKEND": "Agg"}
    for key, value in (env or {}).items():
        if value is None:
            kernel_env.pop(key, None)
        else:
            kernel_env[key] = str(value)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(cwd)}})  # fmt: skip
    client.execute(env=kernel_env)  # passed on to the kernel manager's start_kernel
    return notebook

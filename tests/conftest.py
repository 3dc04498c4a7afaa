"""Fixtures only; shared helpers live in tests/helpers.py."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import REPO, write_idx


@pytest.fixture
def tiny_fashion_root(tmp_path: Path) -> Path:
    """A data root in torchvision's layout with 40 train / 20 test random 28x28 images."""
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 40), ("t10k", 20)):
        write_idx(raw / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    return tmp_path


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """This checkout built as a wheel (``pip wheel --no-deps``), once per pytest session, in a temporary folder."""
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)],
                   check=True)  # fmt: skip
    (built,) = dist.glob("resnet_lab-*.whl")
    return built

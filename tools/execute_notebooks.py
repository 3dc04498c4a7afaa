"""Re-execute chapter notebooks in place, saving widget state (``make outputs``).

    RESNET_LAB_PROFILE=cpu .venv/bin/python tools/execute_notebooks.py notebooks/*.ipynb

Each notebook runs top to bottom in a fresh kernel with ``notebooks/`` as its
working directory, so execution counts come out 1, 2, 3, ... and widget state
is stored in the notebook's metadata, which the HTML book renders.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def execute(path: Path, timeout: int = 3600) -> None:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        store_widget_state=True,
    )
    t0 = time.perf_counter()
    client.execute()
    nbformat.write(nb, path)
    print(f"{path}: executed under profile {os.environ.get('RESNET_LAB_PROFILE', '(auto)')} "
          f"in {time.perf_counter() - t0:.0f} s")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for arg in sys.argv[1:]:
        execute(Path(arg))

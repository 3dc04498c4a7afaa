"""Re-execute chapter notebooks in place, saving widget state (``make outputs``).

    RESNET_LAB_PROFILE=cpu .venv/bin/python tools/execute_notebooks.py notebooks/*.ipynb

Each notebook runs top to bottom in a fresh kernel with ``notebooks/`` as its
working directory, so execution counts come out 1, 2, 3, ... and cell timings
are recorded; widget state is stored in the notebook's metadata, which the
HTML book renders. Every network is trained afresh: the run folder is a new
temporary folder unless ``RESNET_LAB_RUNS`` is set. Afterwards the chapter
boxes are updated from the new timings (tools/chapter_info.py).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.chapter_info import update  # noqa: E402


def execute(path: Path, timeout: int = 3600) -> None:
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=True,
                            resources={"metadata": {"path": str(path.parent)}}, store_widget_state=True)
    t0 = time.perf_counter()
    client.execute()
    nbformat.write(nb, path)
    print(f"{path}: executed under profile {os.environ.get('RESNET_LAB_PROFILE', '(auto)')} "
          f"in {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    os.environ.setdefault("RESNET_LAB_RUNS", tempfile.mkdtemp(prefix="resnet-lab-runs-"))
    for arg in sys.argv[1:]:
        execute(Path(arg))
    for item in update():
        print(f"updated {item}")

"""The Colab install path: the wheel, installed alone, runs a chapter from a folder outside the repository."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import nbformat
from nbclient import NotebookClient

from tests.helpers import REPO


def test_wheel_carries_the_license_and_every_module(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path), str(REPO)], check=True)  # fmt: skip
    wheel = next(tmp_path.glob("resnet_lab-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "resnet_lab/exercises/engine.py" in names and "resnet_lab/quiz.py" in names


def test_chapter_one_runs_from_the_installed_wheel_outside_the_repository(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                    str(tmp_path / "dist"), str(REPO)], check=True)  # fmt: skip
    wheel = next((tmp_path / "dist").glob("resnet_lab-*.whl"))
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True)  # fmt: skip
    content = tmp_path / "content"  # as Colab runs from /content
    content.mkdir()
    nb = nbformat.read(REPO / "notebooks" / "01_tracing_shapes.ipynb", as_version=4)
    where = nbformat.v4.new_code_cell("import resnet_lab; print('imported from', resnet_lab.__file__)")
    nb.cells.insert(1, where)
    env = {**os.environ, "PYTHONPATH": str(site), "RESNET_LAB_PROFILE": "smoke", "MPLBACKEND": "Agg"}
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(content)}}).execute()  # fmt: skip
    finally:
        os.environ.clear()
        os.environ.update(old)
    printed = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert f"imported from {site}" in printed, printed
    assert str(REPO) not in printed

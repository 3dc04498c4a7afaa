"""The Colab install path: the wheel, installed alone, runs a chapter from a folder outside the repository."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import nbformat
import pytest

from tests.helpers import REPO, run_notebook

pytestmark = pytest.mark.slow  # builds a wheel (once per session: the wheel fixture) and runs a notebook kernel


def test_wheel_carries_the_license_and_every_module(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "resnet_lab/exercises/engine.py" in names and "resnet_lab/quiz.py" in names


def test_chapter_one_runs_from_the_installed_wheel_outside_the_repository(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
                   check=True)  # fmt: skip
    content = tmp_path / "content"  # as Colab runs from /content
    content.mkdir()
    nb = nbformat.read(REPO / "notebooks" / "01_tracing_shapes.ipynb", as_version=4)
    where = nbformat.v4.new_code_cell("import resnet_lab; print('imported from', resnet_lab.__file__)")
    nb.cells.insert(1, where)
    run_notebook(nb, profile="smoke", env={"PYTHONPATH": str(site)}, cwd=content, timeout=600)
    printed = "".join(o.get("text", "") for o in nb.cells[1].outputs)
    assert f"imported from {site}" in printed, printed
    assert str(REPO) not in printed

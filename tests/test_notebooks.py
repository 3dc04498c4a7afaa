"""Conventions every committed chapter notebook keeps (see book/how-to-use.md)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
import yaml

from tools.nbtools import colab_cell_source, repository_url

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
SKELETON = ["What you will learn", "Build", "Run", "Read the result", "Summary", "Exercises"]


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _text(output) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    return str(output.get("data", {}).get("text/plain", ""))


def _toc_files() -> list[str]:
    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                yield node["file"]
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    toc = yaml.safe_load((REPO / "_toc.yml").read_text())
    return [toc["root"], *walk(toc)]


def test_there_are_chapters():
    assert NOTEBOOKS, "no notebooks in notebooks/"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_cell_installs_on_colab_only_from_the_configured_repository(path):
    first = next(c for c in _read(path).cells if c.cell_type == "code")
    assert first.source == colab_cell_source(repository_url()), "run `make colab-url`"
    assert 'if "google.colab" in sys.modules:' in first.source
    assert "--no-deps d2l==1.0.3" in first.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_banner_cell_prints_profile_device_and_versions(path):
    code = [c for c in _read(path).cells if c.cell_type == "code"]
    banner = code[1]
    assert "setup(" in banner.source
    printed = "".join(_text(o) for o in banner.outputs)
    assert "profile:" in printed and "device:" in printed and "torch " in printed and "resnet_lab " in printed
    assert "profile: smoke" not in printed, "committed outputs must come from a cpu or gpu run (make outputs)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_code_cell_ran_in_order(path):
    counts = [c.execution_count for c in _read(path).cells if c.cell_type == "code"]
    assert None not in counts, f"cells never executed: {[i for i, c in enumerate(counts) if c is None]}"
    assert counts == sorted(counts) and len(set(counts)) == len(counts), f"execution counts out of order: {counts}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_output_shows_an_error(path):
    for cell in _read(path).cells:
        if cell.cell_type == "code" and "raises-exception" not in cell.metadata.get("tags", []):
            assert not [o for o in cell.outputs if o.output_type == "error"], cell.source[:80]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_skeleton_headings_in_order(path):
    headings = [
        line.lstrip("#").strip()
        for c in _read(path).cells
        if c.cell_type == "markdown"
        for line in c.source.splitlines()
        if line.startswith("## ")
    ]
    positions = [headings.index(h) for h in SKELETON if h in headings]
    assert [h for h in SKELETON if h in headings] == SKELETON, f"missing sections; found {headings}"
    assert positions == sorted(positions)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exercises_have_checkers_and_hidden_solutions(path):
    cells = _read(path).cells
    checks = [c for c in cells if c.cell_type == "code" and "exercises." in c.source]
    solutions = [c for c in checks if "hide-cell" in c.metadata.get("tags", [])]
    assert len(checks) - len(solutions) >= 3 and len(solutions) >= 3
    assert any("NBVAL_CHECK_OUTPUT" in c.source for c in cells)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_in_the_table_of_contents(path):
    assert f"notebooks/{path.stem}" in _toc_files()

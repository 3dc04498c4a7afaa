"""The student edition: no solutions anywhere, and every notebook runs with every checker saying "Not yet"."""

from __future__ import annotations

import re
import shutil

import nbformat
import pytest

from tests.helpers import CIFAR_SUBSET, REPO, needs_cifar_subset, needs_fashion, run_notebook
from tools.student_edition import write_edition

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


def _solutions_and_the_rest(path):
    nb = nbformat.read(path, as_version=4)
    solution = [c.source for c in nb.cells if "solution" in c.metadata.get("tags", [])]
    rest = "\n".join(c.source for c in nb.cells if "solution" not in c.metadata.get("tags", []))
    return solution, rest


@pytest.fixture(scope="module")
def edition(tmp_path_factory):
    return write_edition(tmp_path_factory.mktemp("edition") / "student")


def test_no_solution_code_appears_in_the_student_files(edition):
    assert [p.name for p in edition] == [p.name for p in NOTEBOOKS]
    for original, student in zip(NOTEBOOKS, edition):
        text = student.read_text()
        nb = nbformat.read(student, as_version=4)
        assert all(c.get("outputs", []) == [] and c.get("execution_count") is None for c in nb.cells
                   if c.cell_type == "code")  # fmt: skip
        assert "widgets" not in nb.metadata
        solutions, rest = _solutions_and_the_rest(original)
        assert solutions, f"{original.name} has no solution cells"
        for solution in solutions:
            # What only the solution holds: its lines of code that appear nowhere else in the chapter
            # (not the class header of the placeholder, not the checker call of the exercise cell).
            distinctive = [line for line in solution.splitlines() if len(line.strip()) > 12
                           and not line.lstrip().startswith("#") and line not in rest]  # fmt: skip
            assert distinctive, f"nothing to look for in a solution of {original.name}: {solution!r}"
            for line in distinctive:
                assert line not in text, f"{student.name} contains solution code: {line!r}"


@pytest.mark.slow  # every chapter in a notebook kernel
@needs_fashion
@needs_cifar_subset
def test_every_student_notebook_runs_and_every_checker_says_not_yet(edition, tmp_path):
    env = {"RESNET_LAB_DATA": str(CIFAR_SUBSET), "RESNET_LAB_RUNS": str(tmp_path / "runs")}
    try:
        for path in edition:
            nb = run_notebook(path, profile="smoke", env=env)
            verdicts = [o for c in nb.cells if c.cell_type == "code" and re.search(r"\bex\.\w+\(", c.source)
                        for o in c.outputs if "text/plain" in o.get("data", {})]  # fmt: skip
            assert verdicts, path.name
            for o in verdicts:
                text = o["data"]["text/plain"]
                assert text.startswith("Not yet.") and "Hint:" in text, (path.name, text[:120])
    finally:
        shutil.rmtree(tmp_path / "runs", ignore_errors=True)

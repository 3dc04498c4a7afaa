"""The student edition: no solutions anywhere, and every notebook runs with every checker saying "Not yet"."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import nbformat
import pytest

from tests.helpers import CIFAR_SUBSET, REPO, needs_cifar_subset, needs_fashion, run_notebook
from tools.student_edition import SETUP_CALL, write_edition
from tools.student_edition import main as student_main

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


def _setup_cell(nb):
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and SETUP_CALL in c.source.splitlines()]
    return cell


def test_without_a_class_profile_the_setup_cell_is_as_in_the_book(edition):
    for original, student in zip(NOTEBOOKS, edition):
        assert _setup_cell(nbformat.read(student, as_version=4)).source == \
            _setup_cell(nbformat.read(original, as_version=4)).source  # fmt: skip
        assert "RESNET_LAB_PROFILE" not in student.read_text()


def test_a_class_profile_is_written_into_every_setup_cell_and_wins(tmp_path, monkeypatch, capsys):
    """`make student PROFILE=smoke`: every set-up cell sets the profile, visibly, with a comment, before
    setup() reads it; run, the cell gives that profile whatever the student's environment says."""
    written = write_edition(tmp_path / "student", profile=" Smoke ")
    assert [p.name for p in written] == [p.name for p in NOTEBOOKS]
    for path in written:
        lines = _setup_cell(nbformat.read(path, as_version=4)).source.splitlines()
        assert lines[0] == "import os"
        at = lines.index('os.environ["RESNET_LAB_PROFILE"] = "smoke"')
        assert lines[at + 1] == SETUP_CALL and "Chosen by your instructor" in lines[at - 2], lines
        assert max(map(len, lines)) <= 77  # the book's code column
    source = _setup_cell(nbformat.read(written[0], as_version=4)).source
    monkeypatch.setenv("RESNET_LAB_PROFILE", "paper")  # the student's own setting; restored afterwards
    monkeypatch.delenv("RESNET_LAB_CAP", raising=False)
    namespace: dict = {}
    exec(compile(source, "setup-cell", "exec"), namespace)
    assert namespace["profile"].name == "smoke" and "profile: smoke" in capsys.readouterr().out


def test_an_unknown_class_profile_is_refused_before_anything_is_written(tmp_path, capsys):
    with pytest.raises(ValueError, match=r"unknown profile 'laptop'.*smoke, cpu, gpu, paper"):
        write_edition(tmp_path / "student", profile="laptop")
    assert not (tmp_path / "student").exists()
    with pytest.raises(SystemExit) as exit_:
        student_main([str(tmp_path / "student"), "--profile", "laptop"])
    assert exit_.value.code == 2 and "unknown profile 'laptop'" in capsys.readouterr().err


def _make_n(*args: str) -> str:
    """What ``make -n`` would run (nothing is run; the set-up commands show too where .venv is stale)."""
    # Run from `make test`, make's own variables would make this a sub-make that prints its directory.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    return subprocess.run(["make", "--no-print-directory", "-n", *args], cwd=REPO, capture_output=True, text=True,
                          check=True, env=env).stdout  # fmt: skip


@pytest.mark.skipif(shutil.which("make") is None, reason="no make here")
def test_the_makefile_passes_the_class_profile_only_when_given():
    assert "tools/student_edition.py student --profile smoke" in _make_n("student", "PROFILE=smoke")
    assert "tools/student_edition.py student --profile gpu" in _make_n("student", "CLASS_PROFILE=gpu")
    assert "--profile" not in _make_n("student")  # PROFILE's default (cpu, for `make outputs`) does not count


@pytest.mark.skipif(shutil.which("make") is None, reason="no make here")
def test_make_lab_sets_up_and_opens_jupyterlab_without_tests_or_npm():
    commands = _make_n("lab")
    assert commands.rstrip().splitlines()[-1].startswith("cd notebooks && ")
    assert commands.rstrip().endswith('/.venv/bin/jupyter" lab')
    assert not any(word in commands for word in ("pytest", "npm", "jupyter-book", "ruff"))
    assert _make_n("lab", "LAB=student/notebooks").rstrip().splitlines()[-1].startswith("cd student/notebooks && ")

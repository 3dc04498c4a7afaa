"""The grader (resnet_lab/grade.py): a folder of synthetic submissions of one chapter, graded cell by cell.

The slow test builds seven submissions of the chapter "Residual learning" from the book's own notebook
(its exercise part: the set-up cell and every cell from the exercises' import on; the chapter's figures
are left out, as the grader does not look at them): every exercise right, the untouched student edition,
answers that are the book's code (with the refusal patched away in the kernel), a syntax error (and a
deleted exercise), an infinite loop, a kernel that dies, and a file that is not a notebook. It grades
them with a 60 s limit per notebook, two at a time, and checks the gradebook cell by cell.
"""

from __future__ import annotations

import csv
import importlib
import re
import time
from pathlib import Path

import nbformat
import pytest
from torch import nn

from resnet_lab import grade
from resnet_lab.grade import CellRun, Exercise, Graded, Outcome, check_cells, exercise_outcome
from tests.helpers import REPO
from tools.student_edition import student_notebook

NOTEBOOK = REPO / "notebooks" / "03_residual_learning.ipynb"
CHAPTER = "residual"
TIMEOUT = 60
GRADE_TIMEOUT = 60


# --- Fast: the pure parts ------------------------------------------------------------------------------


def test_check_cells_maps_each_exercise_to_the_cells_that_call_it():
    sources = ["from resnet_lab.exercises import residual as ex", "answer = ...\nex.plain_gradient(answer)",
               "ex.plain_gradient (0.1**10)  # solution", "ex.hint(ex.plain_gradient)\nex.shattered('B')",
               "ex.SHATTERED_OPTIONS", "plain_gradient(1)", "x = ex . shattered(\n'B')"]  # fmt: skip
    assert check_cells(sources, ["plain_gradient", "shattered", "residual_wrapper"]) == {
        "plain_gradient": [1, 2], "shattered": [3, 6], "residual_wrapper": []}  # fmt: skip


def _ex(kind: str = "number") -> Exercise:
    return Exercise("q", "A question", kind)


def test_exercise_outcome_follows_the_last_check_cell_then_the_recheck():
    runs = {0: CellRun("ok"), 1: CellRun("ok"), 2: CellRun("error", "SyntaxError: invalid syntax"),
            3: CellRun("timeout"), 4: CellRun("not run"), 5: CellRun("died")}  # fmt: skip
    right = {"recorded": True, "correct": True, "message": "10 blocks: 2.59.", "attempts": 2, "hint1": "Look at x."}
    wrong = {"recorded": True, "correct": False, "message": "Too low.", "hint": "The chain rule.", "attempts": 1}
    book = {**wrong, "book_code": True, "message": "You passed the book's own class."}

    def status(cells, record, **kw):
        kw.setdefault("graded", True)
        return exercise_outcome(_ex(kw.pop("kind", "number")), cells, runs, record, **kw)

    assert (status([0, 1], right).status, status([0, 1], right).attempts, status([0, 1], right).hint) == (
        "correct", 2, "")  # fmt: skip
    assert status([1], right, kind="written").status == "answered"
    assert (status([1], wrong).status, status([1], wrong).hint) == ("not yet", "The chain rule.")
    assert status([1], book).status == "not yet (book code)"
    error = status([1, 2], right)  # the placeholder was recorded, the answer's cell did not compile
    assert error.status == "error" and "SyntaxError: invalid syntax" in error.message
    assert status([3], right).status == "timed out"
    assert status([4], right, stopped="timeout", stopped_at="cell 4").status == "timed out"
    assert status([4], right, stopped="died", stopped_at="cell 6").status == "error"
    assert status([5], None).status == "error"
    assert status([], None).status == "missing"
    assert status([], right).status == "correct"  # answered through another name for the module
    assert status([1], {"recorded": False}).status == "not yet"  # the call never reached the book's checker
    assert status([1], None, graded=False, problem="no kernel").status == "error"
    assert status([1], None, graded=False, problem="stuck", problem_status="timed out").status == "timed out"
    assert status([1], {"recorded": True, "grading_error": "boom"}).status == "error"


def test_the_books_own_solution_cells_are_recognised_tagged_titled_or_copied():
    cells = [{"source": "answer = ...\nex.shattered(answer)", "metadata": {}},
             {"source": "ex.shattered('B')", "metadata": {"tags": ["hide-cell", "solution"]}},
             {"source": "# @title Solution\nex.shattered('B')", "metadata": {}},
             {"source": "  ex.shattered('B')  \n\n", "metadata": {}},  # the book's code, tag and title removed
             {"source": "# mine\nex.shattered('B')", "metadata": {}}]  # fmt: skip
    assert grade.book_solutions(cells, ["ex.shattered('B')"]) == {1, 2, 3}
    assert grade.book_solutions(cells) == {1, 2}  # without the book's notebooks: tags and titles only
    right = {"recorded": True, "correct": True, "message": "B.", "attempts": 1}
    runs = {i: CellRun("ok") for i in range(5)}
    outcome = grade.exercise_outcome(_ex("choice"), [0, 2], runs, right, graded=True, solutions=frozenset({1, 2}))
    assert outcome.status == "not yet (book solution)" and not outcome.counts
    assert grade.exercise_outcome(_ex("choice"), [0, 4], runs, right, graded=True,
                                  solutions=frozenset({1, 2})).status == "correct"  # fmt: skip


def test_force_profile_rewrites_the_class_profile_line_only():
    sources = ['import os\nos.environ["RESNET_LAB_PROFILE"] = "gpu"\nprofile = setup()', "print('gpu')"]
    assert grade.force_profile(sources, "smoke") == "gpu"
    assert sources == ['import os\nos.environ["RESNET_LAB_PROFILE"] = "smoke"\nprofile = setup()', "print('gpu')"]
    assert grade.force_profile(sources, "smoke") is None


def test_force_profile_catches_the_line_the_student_edition_writes():
    nb = student_notebook(nbformat.read(NOTEBOOK, as_version=4), "gpu")
    sources = [c.source for c in nb.cells]
    assert grade.force_profile(sources, "smoke") == "gpu"
    assert not any("gpu" in line for s in sources for line in s.splitlines() if "RESNET_LAB_PROFILE" in line)


def test_kernel_env_keeps_where_the_data_is_and_sets_the_experiment(tmp_path):
    base = {"PATH": "/bin", "RESNET_LAB_DATA": "/d", "RESNET_LAB_TRANSFER": "offline", "RESNET_LAB_CAP": "10,1",
            "RESNET_LAB_PROFILE": "paper", "RESNET_LAB_FULL_SCHEDULE": "1"}  # fmt: skip
    assert grade.kernel_env("smoke", tmp_path, base) == {
        "PATH": "/bin", "RESNET_LAB_DATA": "/d", "RESNET_LAB_TRANSFER": "offline", "RESNET_LAB_PROFILE": "smoke",
        "RESNET_LAB_RUNS": str(tmp_path), "MPLBACKEND": "Agg"}  # fmt: skip


def test_find_submissions_takes_files_and_per_student_folders(tmp_path):
    (tmp_path / "bob.ipynb").write_text("{}")
    (tmp_path / "carol").mkdir()
    (tmp_path / "carol" / "03_residual_learning.ipynb").write_text("{}")
    (tmp_path / "carol" / "scratch.ipynb").write_text("{}")
    (tmp_path / "carol" / ".ipynb_checkpoints").mkdir()
    (tmp_path / "carol" / ".ipynb_checkpoints" / "x.ipynb").write_text("{}")
    (tmp_path / "dave").mkdir()
    (tmp_path / "notes.txt").write_text("")
    found = grade.find_submissions(tmp_path, "residual")
    assert [(s, p.name if p else None) for s, p, _ in found] == [
        ("bob", "bob.ipynb"), ("carol", "03_residual_learning.ipynb"), ("dave", None)]  # fmt: skip
    assert "2 notebooks" in found[1][2]


def test_gradebook_written_answers_and_feedback_files(tmp_path):
    exercises = [Exercise("a", "First", "number"), Exercise("w", "Say why", "written")]
    results = [Graded("ann", Path("ann.ipynb"), [Outcome("a", "correct", "Right.", attempts=2),
                                                   Outcome("w", "answered", "Recorded.", attempts=1, text="Because.")],
                      12.34, ""),
               Graded("ben", Path("ben.ipynb"), [Outcome("a", "not yet", "Too low.", "Look at the chain rule.", 1),
                                                   Outcome("w", "missing", "No cell.")], 3.0, "timed out")]  # fmt: skip
    grade.write_gradebook(results, exercises, tmp_path / "g.csv")
    grade.write_written(results, exercises, tmp_path / "w.csv")
    with (tmp_path / "g.csv").open() as f:
        rows = list(csv.reader(f))
    assert rows == [["student", "file", "correct", "of", "seconds", "note", "a", "w", "a attempts", "w attempts"],
                    ["ann", "ann.ipynb", "2", "2", "12.3", "", "correct", "answered", "2", "1"],
                    ["ben", "ben.ipynb", "0", "2", "3.0", "timed out", "not yet", "missing", "1", "0"]]  # fmt: skip
    with (tmp_path / "w.csv").open() as f:
        assert list(csv.reader(f)) == [["student", "exercise", "title", "text"], ["ann", "w", "Say why", "Because."]]
    text = grade.feedback_markdown(results[1], exercises, "residual", "smoke")
    assert "0 of 2" in text and "Note: timed out." in text
    assert "## 1. First: not yet" in text and "Too low." in text and "Hint: Look at the chain rule." in text


# --- Slow: a batch of synthetic submissions ---------------------------------------------------------------


def _exercise_part(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The set-up cell and everything from the exercises' import on (the chapter's figures left out)."""
    nb = nbformat.from_dict(nb)
    start = next(i for i, c in enumerate(nb.cells) if "from resnet_lab.exercises import" in c.source)
    nb.cells = [c for i, c in enumerate(nb.cells) if i >= start or "setup(" in c.source]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def _insert_after(nb: nbformat.NotebookNode, index: int, source: str) -> nbformat.NotebookNode:
    nb = nbformat.from_dict(nb)
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell(source))
    return nb


def _book_code_answer(module, name: str) -> str:
    """A cell answering exercise ``name`` with the book's code: its reference, else a subclass of a book class."""
    references = [k for k in vars(module) if "reference" in k.lower() and name in k]
    if references:
        return f"ex.{name}(ex.{references[0]})"
    classes = [k for k, v in vars(module).items()
               if isinstance(v, type) and issubclass(v, nn.Module) and v.__module__ == module.__name__]  # fmt: skip
    if classes:
        return f"class Answer(ex.{classes[0]}):\n    pass\n\n\nex.{name}(Answer)"
    return f"ex.{name}(ex.{name})"


@pytest.mark.slow
def test_grader_says_exactly_what_each_submission_earned(tmp_path, capsys):
    key, module_name, exercises = grade.chapter_exercises(CHAPTER)
    module = importlib.import_module(module_name)
    kinds = {e.name: e.kind for e in exercises}
    full = _exercise_part(nbformat.read(NOTEBOOK, as_version=4))
    cells = check_cells([c.source for c in full.cells], kinds)
    assert all(cells.values()), f"every exercise of {CHAPTER} is called in the notebook: {cells}"
    order = sorted(kinds, key=lambda n: cells[n][0])  # the exercises in the notebook's order
    student = student_notebook(full)
    done = {n: "answered" if kinds[n] == "written" else "correct" for n in kinds}
    # Every exercise right, in the student's own cells: the book's solutions, untagged and reworded a little.
    # (Submitted as they are, the book's solution cells do not count: the full edition below.)
    mine = nbformat.from_dict(full)
    for cell in mine.cells:
        if "solution" in cell.metadata.get("tags", []):
            lines = [line for line in cell.source.splitlines() if not line.startswith("# @title")]
            cell.source = "\n".join(["# my answer", *lines])
            cell.metadata = {}

    # Book code, with the refusal patched away in the kernel: the student sees "Correct!", the grader does not.
    cheat = nbformat.from_dict(student)
    ex_import = next(i for i, c in enumerate(cheat.cells) if "from resnet_lab.exercises import" in c.source)
    patch = "import resnet_lab.exercises.engine as engine\nengine.book_code = lambda *args, **kwargs: None"
    cheat.cells.insert(ex_import + 1, nbformat.v4.new_code_cell(patch))
    code = [n for n in order if kinds[n] == "code"]
    assert code, f"{CHAPTER} has code exercises"
    for name in code:
        at = next(i for i, c in enumerate(cheat.cells) if f"ex.{name}(" in c.source)
        cheat.cells[at] = nbformat.v4.new_code_cell(_book_code_answer(module, name))

    # A syntax error in the first code exercise's answer cell, and the last exercise's cells deleted.
    broken, deleted = code[0], order[-1]
    syntax = nbformat.from_dict(mine)
    last = cells[broken][-1]
    syntax.cells[last].source = "def oops(:\n    pass\n" + syntax.cells[last].source
    syntax.cells = [c for c in syntax.cells if f"ex.{deleted}(" not in c.source]

    # An infinite loop and a kernel that dies, both after the second exercise's last cell.
    after = cells[order[1]][-1]
    before = {n for n in order if cells[n][-1] <= after}
    loop = _insert_after(mine, after, "while True:\n    pass")
    dies = _insert_after(mine, after, "import os\n\nos._exit(1)")

    folder = tmp_path / "submissions"
    folder.mkdir()
    for name, nb in (("a_all_right", mine), ("b_student_edition", student), ("d_syntax_error", syntax),
                     ("e_infinite_loop", loop), ("g_kernel_dies", dies), ("h_full_edition", full)):  # fmt: skip
        nbformat.write(nb, folder / f"{name}.ipynb")
    (folder / "c_book_code").mkdir()  # a per-student folder
    nbformat.write(cheat, folder / "c_book_code" / NOTEBOOK.name)
    (folder / "f_unreadable.ipynb").write_text('{"cells": [ this is not json')

    out = tmp_path / "graded"
    started = time.monotonic()
    assert grade.main([str(folder), "--chapter", CHAPTER, "--profile", "smoke", "--timeout", str(TIMEOUT),
                 "--grade-timeout", str(GRADE_TIMEOUT), "--jobs", "2", "--out", str(out)]) == 0  # fmt: skip
    wall = time.monotonic() - started
    printed = capsys.readouterr().out
    with (out / "gradebook.csv").open() as f:
        book = {row["student"]: row for row in csv.DictReader(f)}

    expected = {
        "a_all_right": done,
        "b_student_edition": dict.fromkeys(kinds, "not yet"),
        "c_book_code": {n: "not yet (book code)" if n in code else "not yet" for n in kinds},
        "d_syntax_error": {**done, broken: "error", deleted: "missing"},
        "e_infinite_loop": {n: done[n] if n in before else "timed out" for n in kinds},
        "f_unreadable": dict.fromkeys(kinds, "error"),
        "g_kernel_dies": {n: done[n] if n in before else "error" for n in kinds},
        "h_full_edition": dict.fromkeys(kinds, "not yet (book solution)"),
    }
    assert sorted(book) == sorted(expected)
    got = {s: {n: book[s][n] for n in kinds} for s in book}
    assert got == expected, printed
    assert {n: int(book["a_all_right"][f"{n} attempts"]) for n in kinds} == {n: len(cells[n]) for n in kinds}
    assert "timed out after 60 s" in book["e_infinite_loop"]["note"]
    assert "kernel died" in book["g_kernel_dies"]["note"]
    assert "not a readable notebook" in book["f_unreadable"]["note"]
    assert book["c_book_code"]["file"] == NOTEBOOK.name

    # Within the time limit: every notebook within its budget (run + re-check), the loop stopped at its limit.
    seconds = {s: float(row["seconds"]) for s, row in book.items()}
    assert all(t < TIMEOUT + GRADE_TIMEOUT + 15 for t in seconds.values()), seconds
    assert TIMEOUT <= seconds["e_infinite_loop"] < TIMEOUT + 30, seconds
    assert wall < 240, (wall, seconds)
    assert all(re.search(rf"^{s}: .* in [\d.]+ s", printed, re.MULTILINE) for s in expected), printed

    # Written answers are copied for the instructor; feedback gives level-1 hints only.
    with (out / "written.csv").open() as f:
        written = [(r["student"], r["exercise"]) for r in csv.DictReader(f)]
    for name in (n for n in kinds if kinds[n] == "written"):
        assert ("a_all_right", name) in written
    engine = importlib.import_module("resnet_lab.exercises.engine")
    feedback = (out / "feedback" / "b_student_edition.md").read_text()
    assert feedback.count("\nHint: ") == len(kinds), feedback
    for name in order:
        levels = engine._hint_levels((key, name))
        assert all(level not in feedback for level in levels[1:]), name
    assert (out / "executed" / "a_all_right.ipynb").exists() and (out / "README.md").exists()


_OWN_RUN = """from resnet_lab.exercises import degradation as ex
from resnet_lab.history import EpochRecord, History, RunKey


def history(error):
    return History(records=[EpochRecord(1, 10, 0.1, 1.0, error, None, None, 100.0, 1.0)])


runs = {RunKey("plain", 20): [history(0.10), history(0.12)], RunKey("plain", 56): [history(0.20), history(0.22)]}
ex.plain_gap(10.0, runs)"""


@pytest.mark.slow
def test_own_run_answers_are_rechecked_on_the_students_run_and_a_patched_torch_is_named(tmp_path):
    """The re-check gets the student's run objects re-bound to the freshly imported classes (a History of the
    purged module would not be one of the fresh module's); a notebook that replaces torch.allclose counts for
    nothing."""
    folder = tmp_path / "submissions"
    folder.mkdir()
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(_OWN_RUN)]), folder / "own.ipynb")
    patched = [nbformat.v4.new_code_cell("import torch\n\ntorch.allclose = lambda *args, **kwargs: True"),
               nbformat.v4.new_code_cell(_OWN_RUN)]  # fmt: skip
    nbformat.write(nbformat.v4.new_notebook(cells=patched), folder / "patched.ipynb")
    results = grade.grade_folder(folder, "degradation", tmp_path / "out", timeout=TIMEOUT, jobs=2, log=lambda _: None)
    status = {r.student: {o.name: o.status for o in r.outcomes} for r in results}
    assert status["own"]["plain_gap"] == "correct", results[0]
    assert status["patched"]["plain_gap"] == "not yet (patched)"
    assert "torch.allclose" in results[1].note
    assert {s for n, s in status["own"].items() if n != "plain_gap"} == {"missing"}

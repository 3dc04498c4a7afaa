"""Solutions folded where students work (JupyterLab and Colab), and tools/nbtools.py's commands."""

from __future__ import annotations

import json
import shutil

import nbformat
import pytest

from resnet_lab import quiz
from tests.helpers import REPO
from tools import nbtools

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_solution_cell_opens_folded_in_jupyterlab_and_colab(path):
    """Fails until `python tools/nbtools.py collapse-solutions notebooks/*.ipynb` has run over the notebooks
    (and after a solution cell is added without it)."""
    nb = nbformat.read(path, as_version=4)
    solutions = [c for c in nb.cells if nbtools.is_solution(c)]
    assert solutions, f"{path.name} has no solution cells"
    open_ = [c.source.splitlines()[0] for c in solutions if not nbtools.is_collapsed(c)]
    assert not open_, (f"{path.name}: {len(open_)} solution cell(s) not folded ({open_}); run "
                       f"`python tools/nbtools.py collapse-solutions {path.relative_to(REPO)}`")  # fmt: skip


def _solution(source: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = ["hide-cell", "solution"]
    return cell


def test_collapse_sets_what_jupyterlab_and_colab_read_and_keeps_the_code():
    cell = _solution("# Solution: the trace shows 6 blocks per stage.\nblocks = 6\nprint(blocks)")
    assert nbtools.collapse_solution(cell) and nbtools.is_collapsed(cell)
    assert cell.metadata["jupyter"] == {"source_hidden": True, "outputs_hidden": True}
    assert cell.metadata["cellView"] == "form" and cell.metadata["collapsed"] is True
    assert cell.metadata["tags"] == ["hide-cell", "solution"]  # the book's own fold stays
    # The title says only "Solution" (Colab shows it while the code is folded); the answer stays in the code.
    assert cell.source == "# @title Solution\n# the trace shows 6 blocks per stage.\nblocks = 6\nprint(blocks)"
    assert not nbtools.collapse_solution(cell)  # a second run changes nothing
    nbformat.validate(nbformat.v4.new_notebook(cells=[cell]))


@pytest.mark.parametrize("source,expected", [
    ("# Solution\nx = 1", "# @title Solution\nx = 1"),
    ("#Solution:\nx = 1", "# @title Solution\nx = 1"),
    ("x = 1", "# @title Solution\nx = 1"),
    ("# Solutions differ\nx = 1", "# @title Solution\n# Solutions differ\nx = 1"),
])  # fmt: skip
def test_the_colab_title_line(source, expected):
    cell = _solution(source)
    nbtools.collapse_solution(cell)
    assert cell.source == expected


def test_collapse_solutions_command_folds_only_solution_cells(tmp_path, capsys):
    path = tmp_path / "chapter.ipynb"
    nbformat.write(nbtools.new_notebook([
        ("md", "**Exercise 1.** How many blocks?", []),
        ("code", "answer = ...\nex.blocks(answer)", ["nbval-check-output"]),
        ("code", "# Solution: six.\nex.blocks(6)", ["hide-cell", "solution", "nbval-check-output"]),
    ]), path)  # fmt: skip
    before = nbformat.read(path, as_version=4)
    before.cells[2].outputs = [nbformat.v4.new_output("stream", text="Correct!")]
    nbformat.write(before, path)
    assert nbtools.main(["collapse-solutions", str(path)]) == 0
    after = nbformat.read(path, as_version=4)
    nbformat.validate(after)
    assert len(after.cells) == len(before.cells)
    for old, new in zip(before.cells, after.cells):
        if nbtools.is_solution(old):
            assert nbtools.is_collapsed(new) and new.outputs == old.outputs  # outputs folded, not removed
        else:
            assert new == old
    assert not nbtools.is_collapsed(before.cells[2])
    assert nbtools.collapse_solutions(path) == 0  # a second run changes nothing


def test_refresh_quizzes_rewrites_stale_quiz_outputs_only(tmp_path):
    path = tmp_path / NOTEBOOKS[0].name
    shutil.copy(NOTEBOOKS[0], path)
    nb = nbformat.read(path, as_version=4)
    (cell,) = [c for c in nb.cells if c.cell_type == "code" and "quiz.show(" in c.source]
    chapter = nbtools.QUIZ_CALL.search(cell.source)[1]
    stale = [{**q, "answers": q["answers"][::-1]} for q in quiz.QUIZZES[chapter]]
    for output in cell.outputs:
        if "application/javascript" in output.get("data", {}):
            script = output["data"]["application/javascript"]
            output["data"]["application/javascript"] = script.replace(
                json.dumps(quiz.embedded_questions(script)), json.dumps(stale))
    nbformat.write(nb, path)
    others = [c for c in nb.cells if c is not cell]
    assert nbtools.refresh_quizzes(path) == 1
    refreshed = nbformat.read(path, as_version=4)
    (new,) = [c for c in refreshed.cells if c.cell_type == "code" and "quiz.show(" in c.source]
    scripts = [o["data"]["application/javascript"] for o in new.outputs if "application/javascript" in o["data"]]
    assert len(new.outputs) == 2 and quiz.embedded_questions(scripts[0]) == quiz.QUIZZES[chapter]
    assert [c for c in refreshed.cells if c is not new and "quiz.show(" not in c.source] == others
    assert nbtools.refresh_quizzes(path) == 0  # up to date: not rewritten

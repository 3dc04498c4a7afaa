"""Write the student edition: every chapter without its solutions and without outputs (``make student``).

    .venv/bin/python tools/student_edition.py [student]

A tag-based filter with nbformat: cells tagged ``solution`` are dropped,
every output and execution count is cleared, and everything else (the
exercises' placeholders, the checkers, the quizzes, the scorecards) stays.
The folder is git-ignored; hand it out as it is.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]


def student_notebook(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """A copy of ``nb`` without solution cells, outputs, execution counts or saved widget state."""
    nb = nbformat.from_dict(nb)
    nb.cells = [c for c in nb.cells if "solution" not in c.metadata.get("tags", [])]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)
    return nb


def write_edition(target: Path) -> list[Path]:
    if target.exists():
        shutil.rmtree(target)
    (target / "notebooks").mkdir(parents=True)
    written = []
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        out = target / "notebooks" / path.name
        nbformat.write(student_notebook(nbformat.read(path, as_version=4)), out)
        written.append(out)
    return written


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "student"
    for path in write_edition(folder):
        print(f"wrote {path.relative_to(folder.parent) if folder.is_absolute() else path}")

"""Small helpers for authoring chapter notebooks with nbformat (used by hand, not at run time).

    python tools/nbtools.py [colab-url]                       # every notebook's Colab cell (`make colab-url`)
    python tools/nbtools.py collapse-solutions notebooks/*.ipynb
    python tools/nbtools.py refresh-quizzes notebooks/*.ipynb

``collapse-solutions`` folds every cell tagged ``solution`` where students
work (see :func:`collapse_solution`); ``refresh-quizzes`` rewrites each
``quiz.show(...)`` cell's output from :mod:`resnet_lab.quiz` without running
the notebook. Both write only the notebooks that change, and say which.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import nbformat
import yaml

REPO = Path(__file__).resolve().parents[1]


def repository_url() -> str:
    """The repository URL set once in _config.yml."""
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    url = (config.get("repository") or {}).get("url")
    if not url:
        raise ValueError("_config.yml has no repository.url")
    return url


def colab_cell_source(url: str | None = None) -> str:
    """The first code cell of every chapter: installs resnet_lab from ``url`` on Colab, nothing elsewhere."""
    url = url or repository_url()
    return (
        "# Colab set-up: install resnet_lab and d2l there; does nothing anywhere else.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    !pip install -q "resnet-lab @ git+{url}"\n'
        "    !pip install -q --no-deps d2l==1.0.3  # without its old pins, which break numpy"
    )


def new_notebook(cells: list[tuple[str, str, list[str]]]) -> nbformat.NotebookNode:
    """cells: (kind, source, tags) with kind 'md' or 'code'."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, source, tags in cells:
        cell = nbformat.v4.new_markdown_cell(source) if kind == "md" else nbformat.v4.new_code_cell(source)
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    return nb


def set_colab_url(path: Path, url: str | None = None) -> bool:
    """Rewrite the first code cell of a notebook with the configured URL. True if it changed."""
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    new = colab_cell_source(url)
    if first.source == new:
        return False
    first.source = new
    nbformat.write(nb, path)
    return True



# --- Solutions folded away where students work -------------------------------------------------

#: The first line of every solution cell: a Colab form title. Colab collapses a cell whose metadata has
#: ``cellView: "form"`` to its form, and a cell with no form field shows only its title and a "Show code"
#: link; without a ``@title`` line there is nothing to show in the code's place. The title says only
#: "Solution": the cells' own first comments often state the answer, so they stay in the code.
SOLUTION_TITLE = "# @title Solution"


def collapse_solution(cell: nbformat.NotebookNode) -> bool:
    """Fold a solution cell in JupyterLab and in Colab, in place; True if anything changed.

    * JupyterLab (and Notebook 7, nbconvert, VS Code) read nbformat's own fields
      ``metadata.jupyter.source_hidden`` and ``outputs_hidden``: the cell opens as
      a collapsed bar that one click expands, with its output (the "Correct!"
      verdict) folded too; ``collapsed``, the older name for hidden outputs, is
      set as well for the classic Notebook 6.
    * Colab ignores those fields; it folds a cell with ``metadata.cellView =
      "form"`` to its form, so the source gets a ``# @title Solution`` first line
      (:data:`SOLUTION_TITLE`; a leading ``# Solution: ...`` comment becomes the
      second line, without its ``Solution:``). Colab still shows the output.

    The book (Jupyter Book) reads neither field; its ``hide-cell`` tag keeps folding the cell there.
    """
    changed = False
    hidden = cell.metadata.setdefault("jupyter", {})
    for key in ("source_hidden", "outputs_hidden"):
        if hidden.get(key) is not True:
            hidden[key], changed = True, True
    if cell.metadata.get("collapsed") is not True:  # the older name for outputs_hidden (classic Notebook 6)
        cell.metadata["collapsed"], changed = True, True
    if cell.metadata.get("cellView") != "form":
        cell.metadata["cellView"], changed = "form", True
    if not cell.source.startswith(SOLUTION_TITLE):
        first, _, rest = cell.source.partition("\n")
        match = re.fullmatch(r"#\s*Solution\b\s*:?\s*(.*)", first.strip())
        if match:  # "# Solution: the answer" -> title, then "# the answer"
            lines = [SOLUTION_TITLE] + ([f"# {match[1]}"] if match[1] else []) + ([rest] if rest else [])
        else:
            lines = [SOLUTION_TITLE, cell.source]
        cell.source, changed = "\n".join(lines), True
    return changed


def is_solution(cell: nbformat.NotebookNode) -> bool:
    """A cell tagged ``solution``."""
    return "solution" in cell.metadata.get("tags", [])


def is_collapsed(cell: nbformat.NotebookNode) -> bool:
    """Whether a cell carries what :func:`collapse_solution` sets (for the tests)."""
    hidden = cell.metadata.get("jupyter", {})
    return (hidden.get("source_hidden") is True and hidden.get("outputs_hidden") is True
            and cell.metadata.get("collapsed") is True and cell.metadata.get("cellView") == "form"
            and cell.source.startswith(SOLUTION_TITLE))  # fmt: skip


def collapse_solutions(path: Path) -> int:
    """Fold every solution cell of the notebook at ``path``; writes it only if one changed. Returns how many."""
    nb = nbformat.read(path, as_version=4)
    changed = sum(collapse_solution(cell) for cell in nb.cells if is_solution(cell))
    if changed:
        nbformat.write(nb, path)
    return changed


# --- Quiz outputs without a kernel ---------------------------------------------------------------

QUIZ_CALL = re.compile(r'quiz\.show\("(\w+)"\)')


def refresh_quizzes(path: Path) -> int:
    """Rewrite the output of every ``quiz.show("chapter")`` cell whose embedded questions differ from
    :data:`resnet_lab.quiz.QUIZZES` (jupyterquiz's output is a pure function of them, up to a random
    element id, so no kernel is needed). Writes the notebook only if one changed; returns how many."""
    from IPython.core.interactiveshell import InteractiveShell

    from resnet_lab import quiz

    InteractiveShell.instance()  # capture_output captures displays into a shell
    nb = nbformat.read(path, as_version=4)
    changed = 0
    for cell in nb.cells:
        match = QUIZ_CALL.search(cell.source) if cell.cell_type == "code" else None
        if not match:
            continue
        scripts = [o["data"]["application/javascript"] for o in cell.get("outputs", [])
                   if "application/javascript" in o.get("data", {})]  # fmt: skip
        if len(scripts) == 1 and quiz.embedded_questions(scripts[0]) == quiz.QUIZZES[match[1]]:
            continue
        cell.outputs = [nbformat.v4.new_output("display_data", data=data, metadata=metadata)
                        for data, metadata in quiz.rendered(match[1])]  # fmt: skip
        changed += 1
    if changed:
        nbformat.write(nb, path)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module's docstring)."""
    parser = argparse.ArgumentParser(prog="tools/nbtools.py", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command")
    commands.add_parser("colab-url", help="rewrite every notebook's Colab cell from _config.yml's repository.url")
    for name, what in (("collapse-solutions", "fold every solution cell in JupyterLab and Colab"),
                       ("refresh-quizzes", "rewrite the quiz cells' outputs from resnet_lab.quiz")):  # fmt: skip
        sub = commands.add_parser(name, help=what)
        sub.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    if args.command in (None, "colab-url"):
        for nb_path in sorted((REPO / "notebooks").glob("*.ipynb")):
            if set_colab_url(nb_path):
                print(f"updated {nb_path.relative_to(REPO)}")
        return 0
    action = collapse_solutions if args.command == "collapse-solutions" else refresh_quizzes
    for nb_path in args.notebooks:
        changed = action(nb_path)
        print(f"{nb_path}: {f'{changed} cell(s) changed' if changed else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Conventions every committed chapter notebook keeps (see book/how-to-use.md and book/instructors.md)."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
import yaml

from resnet_lab.exercises import EXERCISES
from resnet_lab.profiles import PROFILES, chapter_plan
from tools.chapter_info import CHAPTER_OF, update
from tools.nbtools import colab_cell_source, repository_url

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
SKELETON = ["What you will learn", "Build", "Run", "Read the result", "Summary", "Exercises"]
NBVAL_TAGS = {"nbval-check-output", "nbval-ignore-output", "nbval-skip", "raises-exception"}


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _text(output) -> str:
    if output.get("output_type") == "stream":
        return output.get("text", "")
    return str(output.get("data", {}).get("text/plain", ""))


def _tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


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


def test_there_are_nine_chapters_in_the_books_order():
    assert [p.stem for p in NOTEBOOKS] == list(CHAPTER_OF)
    chapters = [f for f in _toc_files() if f.startswith("notebooks/")]
    assert chapters == [f"notebooks/{p.stem}" for p in NOTEBOOKS]
    # The puzzle before its explanation: degradation comes before residual learning.
    assert chapters.index("notebooks/02_degradation") < chapters.index("notebooks/03_residual_learning")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_cell_installs_on_colab_only_from_the_configured_repository(path):
    first = next(c for c in _read(path).cells if c.cell_type == "code")
    assert first.source == colab_cell_source(repository_url()), "run `make colab-url`"
    assert 'if "google.colab" in sys.modules:' in first.source and "--no-deps d2l==1.0.3" in first.source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_page_starts_with_title_box_and_banner(path):
    cells = _read(path).cells
    assert cells[1].cell_type == "markdown" and cells[1].source.startswith("# ")
    assert "chapter-info" in _tags(cells[2]) and "min to read" in cells[2].source
    banner = cells[3]
    assert banner.cell_type == "code" and "setup(" in banner.source
    printed = "".join(_text(o) for o in banner.outputs)
    assert "profile:" in printed and "device:" in printed and "torch " in printed and "resnet_lab " in printed
    assert "profile: smoke" not in printed, "committed outputs must come from a cpu or gpu run (make outputs)"


def test_chapter_boxes_and_the_table_of_times_are_current():
    assert update(check=True) == [], "run .venv/bin/python tools/chapter_info.py (make outputs does)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_code_cell_ran_in_order(path):
    counts = [c.execution_count for c in _read(path).cells if c.cell_type == "code"]
    assert None not in counts, f"cells never executed: {[i for i, c in enumerate(counts) if c is None]}"
    assert counts == sorted(counts) and len(set(counts)) == len(counts), f"execution counts out of order: {counts}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_no_output_shows_an_error(path):
    for cell in _read(path).cells:
        if cell.cell_type == "code" and "raises-exception" not in _tags(cell):
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
    found = [h for h in SKELETON if h in headings]
    assert found == SKELETON, f"missing sections; found {headings}"
    assert [headings.index(h) for h in found] == sorted(headings.index(h) for h in found)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_nbval_markers_are_tags_not_comments(path):
    cells = _read(path).cells
    assert not [c.source[:60] for c in cells if "NBVAL" in c.source.upper()]
    assert any("nbval-check-output" in _tags(c) for c in cells)
    for cell in cells:
        unknown = {t for t in _tags(cell) if t.startswith("nbval")} - NBVAL_TAGS
        assert not unknown, f"unknown nbval tags {unknown}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_code_exercise_is_posed_checked_and_solved(path):
    chapter = CHAPTER_OF[path.stem]
    cells = [c for c in _read(path).cells if c.cell_type == "code"]
    code_exercises = [name for (ch, name), (_, kind) in EXERCISES.items() if ch == chapter and kind == "code"]
    assert len(code_exercises) >= 2
    for name in [n for (ch, n) in EXERCISES if ch == chapter]:
        calls = [c for c in cells if re.search(rf"\bex\.{name}\(", c.source)]
        posed = [c for c in calls if "solution" not in _tags(c)]
        solved = [c for c in calls if {"solution", "hide-cell"} <= set(_tags(c))]
        assert posed and solved, f"{chapter}.{name}: posed {len(posed)}, solved {len(solved)}"
        for cell in posed:
            shown = "".join(_text(o) for o in cell.outputs)
            assert "Not yet." in shown and "Hint:" in shown, f"{name}: the posed cell should show its hint"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_quiz_in_the_page_and_scorecard_at_the_end(path):
    chapter = CHAPTER_OF[path.stem]
    cells = [c for c in _read(path).cells if c.cell_type == "code"]
    quiz = [c for c in cells if f'quiz.show("{chapter}")' in c.source]
    assert quiz and "remove-input" in _tags(quiz[0])
    assert any(o.get("output_type") == "display_data" and "application/javascript" in o.get("data", {})
               for o in quiz[0].outputs)  # fmt: skip
    assert f'scorecard("{chapter}")' in cells[-1].source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_in_the_table_of_contents(path):
    assert f"notebooks/{path.stem}" in _toc_files()


#: A run's result line; a run the time budget shortened adds "(k of n epochs)" after its time.
RESULT = re.compile(r"^(?P<name>.+?): (trained|resumed from epoch \d+|loaded) "
                    r"(in \d+ s(?: \(\d+ of \d+ epochs\))?|from its checkpoint);", re.MULTILINE)


#: The builders each training chapter's notebook shows and calls; its plan enumerates the same ones.
BUILDERS = {"02_degradation": ["degradation.networks"], "04_training_fashion_mnist": ["fashion.laptop_networks"],
            "05_training_cifar10": ["cifar.networks"],
            "06_beyond_resnet": ["beyond.networks", "beyond.zero_init_networks"],
            "07_transfer_learning": ["transfer.source_network", "transfer.target_networks"],
            "08_keras": ["keras.networks"], "09_training_on_many_devices": ["distributed.networks"]}  # fmt: skip


@pytest.mark.parametrize("stem", BUILDERS)
def test_notebooks_train_the_networks_their_chapters_builders_make(stem):
    """Every network handed to train_all comes from a builder of the chapter module (the one its plan
    calls): no Run cell builds a network of its own."""
    import ast

    cells = [c.source for c in _read(REPO / "notebooks" / f"{stem}.ipynb").cells if c.cell_type == "code"]
    source = "\n".join(c for c in cells if not any(line.lstrip().startswith("!") for line in c.splitlines()))
    aliases = {a.asname or a.name: a.name for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)
               and node.module == "resnet_lab.chapters" for a in node.names}  # fmt: skip
    called = {f"{aliases[n.func.value.id]}.{n.func.attr}" for n in ast.walk(ast.parse(source))
              if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
              and isinstance(n.func.value, ast.Name) and n.func.value.id in aliases}  # fmt: skip
    assert set(BUILDERS[stem]) <= called, f"{stem} does not call {set(BUILDERS[stem]) - called}"
    shown = {m for cell in cells for m in re.findall(r"show_source\((\w+\.\w+)\)", cell)}
    assert {f"{aliases[m.split('.')[0]]}.{m.split('.')[1]}" for m in shown} >= {
        b for b in BUILDERS[stem] if b != "transfer.source_network"}
    for cell in cells:
        if "train_all(" in cell:  # a network built to load pretrained weights into is not trained as built
            built = [line.strip() for line in cell.splitlines() if re.search(r"models\.\w+\(", line)
                     and not ((m := re.match(r"\s*(\w+) = models\.", line)) and f"{m[1]}.load_state_dict(" in cell)]
            assert not built, f"a Run cell of {stem} builds networks itself: {built}"


@pytest.mark.parametrize("stem,chapter", [(s, CHAPTER_OF[s]) for s in BUILDERS if s != "07_transfer_learning"])
def test_the_committed_runs_are_the_planned_networks(stem, chapter):
    """The committed outputs (executed under cpu) trained exactly the plan's train_all runs. (The
    transfer chapter keeps its target runs' lines out of the page; the run-folder test of
    tests/test_profile_paths.py checks it.)"""
    nb = _read(REPO / "notebooks" / f"{stem}.ipynb")
    printed = "".join(_text(o) for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    trained = [m["name"] for m in RESULT.finditer(printed)]
    planned = [r.label for r in chapter_plan(PROFILES["cpu"], chapter) if r.runner == "train_all"]
    assert sorted(trained) == sorted(planned)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_code_the_page_shows_fits_the_column(path):
    """The book's code boxes hold 77 characters (652 px inside the padding, 8.43 px per character,
    measured at 1280 px in Chromium); a longer line scrolls sideways. The browser test sees the same
    in the rendered page; this finds it before a build."""
    shown = [c for c in _read(path).cells
             if c.cell_type == "code" and not {"remove-cell", "remove-input"} & set(_tags(c))]  # fmt: skip
    long = [line for c in shown for line in c.source.splitlines() if len(line) > 77]
    assert not long, f"lines over 77 characters: {long[:3]}"

"""In-page quizzes: every chapter has questions with exactly one right answer and feedback for each."""

from __future__ import annotations

import re

import nbformat
import pytest

from resnet_lab import quiz
from resnet_lab.profiles import CHAPTERS
from tests.helpers import REPO


def test_every_chapter_has_at_least_two_questions_with_one_right_answer():
    assert set(quiz.QUIZZES) == set(CHAPTERS) and sum(map(len, quiz.QUIZZES.values())) >= 10
    for chapter, questions in quiz.QUIZZES.items():
        assert len(questions) >= 2, chapter
        for q in questions:
            assert q["type"] == "multiple_choice" and sum(a["correct"] for a in q["answers"]) == 1, q["question"]
            assert all(a["feedback"] for a in q["answers"])


def _shown(chapter: str) -> tuple[str, str]:
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    InteractiveShell.instance()
    with capture_output() as captured:
        quiz.show(chapter)
    html, script = captured.outputs
    return html.data["text/html"], script.data["application/javascript"]


def test_show_embeds_questions_and_scripts_without_network():
    html, script = _shown("keras")
    assert "<div id=" in html and "function check_mc" in script and "(3, 3, 32, 64)" in script
    # Questions are embedded (the static loader), not fetched; the browser test checks that the page
    # requests nothing from outside.
    assert "try_show" in script and "fetch(" not in script
    with pytest.raises(ValueError, match="unknown chapter"):
        quiz.show("appendix")


def test_quiz_script_runs_inside_the_wait_for_mathjax():
    _, script = _shown("tracing")
    head, tail = quiz.AFTER_MATHJAX.split("QUIZ_SCRIPT")
    assert script.startswith(head) and script.endswith(tail)
    assert "MathJax.version" in script[len(head) : -len(tail)]  # what the wrapper guards


def test_right_answers_sit_in_varying_places():
    """Not all first (a reader learns to click the first answer): across the book no place holds more than
    half of the right answers, and no chapter with two questions or more has all of them in one place."""
    positions = quiz.right_positions([q for questions in quiz.QUIZZES.values() for q in questions])
    assert len(set(positions)) >= 2, f"every right answer is in place {positions[0]}"
    most = max(positions.count(p) for p in set(positions))
    assert most <= len(positions) / 2, f"{most} of {len(positions)} right answers share one place: {positions}"
    for chapter, questions in quiz.QUIZZES.items():
        if len(questions) >= 2:
            assert len(set(quiz.right_positions(questions))) >= 2, f"{chapter}: all right answers in one place"


def test_right_positions_notices_when_all_are_first():
    """The check above has teeth: the book before this change (every right answer first) fails it."""
    first = [{**q, "answers": sorted(q["answers"], key=lambda a: not a["correct"])}
             for questions in quiz.QUIZZES.values() for q in questions]  # fmt: skip
    assert set(quiz.right_positions(first)) == {0}


def test_the_right_answer_stays_marked_right_in_the_page():
    """Every answer marked correct says "Right:" and no other does; the rendered quiz carries the stored
    questions, answers in the stored order, with the same answers marked correct."""
    for chapter, questions in quiz.QUIZZES.items():
        for q in questions:
            assert all(a["feedback"].startswith("Right:") == a["correct"] for a in q["answers"]), q["question"]
        _, script = _shown(chapter)
        assert quiz.embedded_questions(script) == questions


def test_the_order_is_the_same_on_every_call():
    """No shuffle per call or per page load: two renderings carry the same questions in the same order, and
    jupyterquiz is told not to shuffle in the browser."""
    (html1, script1), (html2, script2) = _shown("cifar"), _shown("cifar")
    assert quiz.embedded_questions(script1) == quiz.embedded_questions(script2) == quiz.QUIZZES["cifar"]
    assert 'data-shuffleanswers="False"' in html1 and 'data-shuffleanswers="False"' in html2


@pytest.mark.parametrize("path", sorted((REPO / "notebooks").glob("*.ipynb")), ids=lambda p: p.name)
def test_committed_quiz_outputs_show_the_stored_order(path):
    """The committed page shows today's quiz: refresh with `python tools/nbtools.py refresh-quizzes
    notebooks/*.ipynb` after changing QUIZZES (no kernel needed)."""
    nb = nbformat.read(path, as_version=4)
    cells = [c for c in nb.cells if c.cell_type == "code" and "quiz.show(" in c.source]
    assert cells, f"{path.name} has no quiz cell"
    for cell in cells:
        chapter = re.search(r'quiz\.show\("(\w+)"\)', cell.source)[1]
        scripts = [o["data"]["application/javascript"] for o in cell.outputs
                   if "application/javascript" in o.get("data", {})]  # fmt: skip
        assert len(scripts) == 1, f"{path.name}: the quiz cell has no (or more than one) script output"
        assert quiz.embedded_questions(scripts[0]) == quiz.QUIZZES[chapter], (
            f"{path.name}: its quiz output is out of date; run "
            f"`python tools/nbtools.py refresh-quizzes {path.relative_to(REPO)}`")

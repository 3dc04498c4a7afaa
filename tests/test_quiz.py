"""In-page quizzes: every chapter has questions with exactly one right answer and feedback for each."""

from __future__ import annotations

import pytest

from resnet_lab import quiz
from resnet_lab.profiles import CHAPTERS


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

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


def test_show_embeds_questions_and_scripts_without_network(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **kw: shown.extend(objs))
    import jupyterquiz.dynamic.display as jq

    monkeypatch.setattr(jq, "display", lambda *objs, **kw: shown.extend(objs))
    quiz.show("keras")
    html, script = shown[0].data, shown[1].data
    assert "<div id=" in html and "function check_mc" in script and "(3, 3, 32, 64)" in script
    # Questions are embedded (the static loader), not fetched; the browser test checks that the page
    # requests nothing from outside.
    assert "try_show" in script and "fetch(" not in script
    with pytest.raises(ValueError, match="unknown chapter"):
        quiz.show("appendix")

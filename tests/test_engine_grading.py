"""The engine as a grade rests on it: checkers that see gradients, refuse the book's own code, count attempts,
give hints by level and record written answers. Unit tier: small modules, a few seconds in all."""

from __future__ import annotations

import ast
import copy
import functools
import importlib
import json
import math
import re

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_lab import models as M
from resnet_lab.exercises import engine
from resnet_lab.exercises import residual as R
from resnet_lab.exercises import tracing as T
from tests.helpers import REPO

TEST_CHAPTER = "test_engine_grading"
CHAPTER_IMPORT = re.compile(r"from resnet_lab\.exercises import (\w+) as ex\b")
#: The BasicBlock exercise's reference (private to its module: found by name, public or not).
REFERENCE_BLOCK = next(v for n, v in vars(T).items() if n.lstrip("_") == "reference_basic_block")


@pytest.fixture
def throwaway():
    """Exercises registered by a test in its own chapter, removed afterwards (the registry is global)."""
    yield TEST_CHAPTER
    for key in [k for k in engine.EXERCISES if k[0] == TEST_CHAPTER]:
        engine._unregister(*key)


def chapter_modules() -> list:
    """Every chapter's exercise module (those with registered exercises)."""
    chapters = sorted({ch for ch, _ in engine.EXERCISES if ch != TEST_CHAPTER})
    return [importlib.import_module(f"resnet_lab.exercises.{ch}") for ch in chapters]


def code_checkers(module) -> list:
    """The decorated checkers of ``module``'s code exercises."""
    chapter = module.CHAPTER
    return [getattr(module, name) for (ch, name), (_, kind) in engine.EXERCISES.items()
            if ch == chapter and kind == "code"]  # fmt: skip


# --- A correct block and hand-written wrong ones ----------------------------------------------------------


class MyBlock(nn.Module):
    """The chapter's solution, as a student writes it."""

    def __init__(self, inplanes, planes, stride, bias=False):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=bias)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=bias)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Identity()
        if stride != 1 or inplanes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def main(self, x):
        return self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))

    def forward(self, x):
        return torch.relu(self.main(x) + self.shortcut(x))


class DetachedShortcut(MyBlock):
    def forward(self, x):
        return torch.relu(self.main(x) + self.shortcut(x).detach())


class DetachedInput(MyBlock):
    def forward(self, x):
        x = x.detach()
        return torch.relu(self.main(x) + self.shortcut(x))


class Biased(MyBlock):
    def __init__(self, inplanes, planes, stride):
        super().__init__(inplanes, planes, stride, bias=True)


class ExtraUnused(MyBlock):
    def __init__(self, inplanes, planes, stride):
        super().__init__(inplanes, planes, stride)
        self.extra = nn.Linear(3, 3)


class ExtraParameterOnItself(MyBlock):
    def __init__(self, inplanes, planes, stride):
        super().__init__(inplanes, planes, stride)
        self.unused = nn.Parameter(torch.zeros(5))


class ExtraScale(MyBlock):
    """An extra learnable scale, 1 at the start: same outputs, but it trains."""

    def __init__(self, inplanes, planes, stride):
        super().__init__(inplanes, planes, stride)
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return super().forward(x) * self.scale


class Wrapper(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return x + self.f(x)


class WrapperDetachedShortcut(Wrapper):
    def forward(self, x):
        return x.detach() + self.f(x)


class WrapperDetachedResidualInput(Wrapper):
    def forward(self, x):
        return x + self.f(x.detach())


class WrapperInAList(nn.Module):
    """Right outputs, but f is hidden in a list: its parameters are not the wrapper's."""

    def __init__(self, f):
        super().__init__()
        self.fs = [f]

    def forward(self, x):
        return x + self.fs[0](x)


# --- Gradients ------------------------------------------------------------------------------------------------


def test_a_correct_block_and_wrapper_pass_with_gradients_compared():
    fb = T.basic_block(MyBlock)
    assert fb.correct and not fb.book_code and not fb.note, str(fb)
    assert R.residual_wrapper(Wrapper).correct


def test_a_detached_shortcut_is_rejected_and_named():
    fb = T.basic_block(DetachedShortcut)
    assert not fb.correct and fb.mistake == engine.SHORTCUT_DETACHED, str(fb)
    assert engine.SHORTCUT_DETACHED in str(fb) and fb.hints
    fb = R.residual_wrapper(WrapperDetachedShortcut)
    assert not fb.correct and fb.mistake == engine.SHORTCUT_DETACHED, str(fb)


def test_a_detached_residual_input_is_rejected_and_named():
    fb = R.residual_wrapper(WrapperDetachedResidualInput)
    assert not fb.correct and fb.mistake != engine.SHORTCUT_DETACHED, str(fb)
    assert "detached" in fb.mistake and "passed in" in fb.mistake and fb.mistake in fb.message
    fb = T.basic_block(DetachedInput)
    assert not fb.correct and fb.mistake == engine.INPUT_DETACHED, str(fb)


def test_a_module_passed_in_but_not_registered_is_named():
    fb = R.residual_wrapper(WrapperInAList)
    assert not fb.correct and "not registered" in fb.mistake, str(fb)


def test_convolutions_with_bias_are_a_named_mistake():
    fb = T.basic_block(Biased)
    assert not fb.correct and "bias=True" in fb.mistake and fb.mistake in fb.message, str(fb)
    assert "no counterpart" not in fb.message


def test_an_extra_unused_parameter_is_accepted_with_a_note_naming_it():
    fb = T.basic_block(ExtraUnused)
    assert fb.correct and "extra (Linear(3, 3))" in fb.note, str(fb)
    assert "Note:" in str(fb) and "Note:" in fb._repr_html_()
    small = (REFERENCE_BLOCK, [(8, 8, 1)], lambda args: (2, 8, 6, 6), "your block")
    fb = engine.check_module(ExtraParameterOnItself, *small)
    assert fb.correct and "unused" in fb.note and "the module itself" not in fb.note, str(fb)
    fb = engine.check_module(ExtraScale, *small)
    assert not fb.correct and "scale" in fb.message and fb.mistake, str(fb)


def test_the_checkers_own_inputs_may_be_the_books_modules():
    """A wrapper around a module the checker passes in (here one of the book's blocks) is not book code."""
    fb = engine.check_module(Wrapper, Wrapper, [(M.PlainBlock(4, 4, 1),)], lambda args: (2, 4, 5, 5), "wrapper")
    assert fb.correct and not fb.book_code, str(fb)


def test_a_broken_backward_pass_gets_feedback_not_a_traceback():
    class BackwardFails(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, grad):
            raise RuntimeError("no backward here")

    class Odd(Wrapper):
        def forward(self, x):
            return BackwardFails.apply(x) + self.f(x)

    fb = R.residual_wrapper(Odd)
    assert not fb.correct and "RuntimeError" in fb.message, str(fb)


# --- The book's own code is refused -----------------------------------------------------------------------


def references(module) -> list[tuple[str, object]]:
    """What a student could hand in from an exercise module: every function or class whose name says it is a
    reference, and every class the module defines (the reference's wrong variants included)."""
    found = []
    for name, value in vars(module).items():
        if "reference" in name.lower() and callable(value):
            found.append((name, value))
        elif isinstance(value, type) and value.__module__ == module.__name__:
            found.append((name, value))
    return found


def test_every_reference_passed_as_an_answer_is_refused():
    tried = 0
    for module in chapter_modules():
        checkers = code_checkers(module)
        for name, value in references(module):
            for checker in checkers:
                fb = checker(value)
                assert not fb.correct and fb.book_code, f"{module.CHAPTER}.{checker.__name__}({name}): {fb}"
                tried += 1
    assert tried >= 30


class SubclassOfTheBooks(M.PlainBlock):
    pass


class FillsInWhatItLacks(M.BasicBlock):
    def forward(self, x):
        return super().forward(x)


class DelegatesToTheBook(nn.Module):
    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.inner = M.PlainBlock(inplanes, planes, stride)

    def forward(self, x):
        return self.inner(x)


class BorrowsTheForward(nn.Module):
    forward = M.ShortcutA.forward

    def __init__(self, in_planes, out_planes, stride):
        super().__init__()
        self.in_planes, self.out_planes, self.stride = in_planes, out_planes, stride


@pytest.mark.parametrize("answer", [
    M.BasicBlock, M.PlainBlock, M.ShortcutA, M.PreActBlock, M.Bottleneck, SubclassOfTheBooks, FillsInWhatItLacks,
    functools.partial(M.PlainBlock), functools.partial(functools.partial(M.BasicBlock, downsample=None)),
    M.PlainBlock(16, 16, 1), M.PlainBlock(16, 16, 1).forward, BorrowsTheForward,
], ids=lambda a: type(a).__name__ if not isinstance(a, type) else a.__name__)  # fmt: skip
def test_the_books_classes_subclasses_partials_and_instances_are_refused(answer):
    from resnet_lab.exercises import beyond, degradation

    for checker in (T.basic_block, T.bottleneck, degradation.plain_block, degradation.option_a_shortcut,
                    beyond.preact_block, R.residual_wrapper):  # fmt: skip
        fb = checker(answer)
        assert not fb.correct and fb.book_code, f"{checker.__name__}: {fb}"
        assert fb.message and "resnet_lab." in fb.message


def test_the_books_functions_are_refused():
    from resnet_lab.chapters import transfer as book_transfer
    from resnet_lab.exercises import transfer

    fb = transfer.freeze_backbone(book_transfer.freeze_backbone)
    assert not fb.correct and fb.book_code and "resnet_lab.chapters.transfer.freeze_backbone" in fb.message
    assert "own function" in fb.message
    fb = transfer.freeze_backbone(functools.partial(book_transfer.freeze_backbone))
    assert not fb.correct and fb.book_code


def test_an_answer_given_by_keyword_is_refused_too(throwaway):
    @engine.exercise(throwaway, "by keyword", "code")
    def by_keyword(answer):
        return engine.Feedback(True, "accepted")

    assert by_keyword(answer=M.PlainBlock).book_code and by_keyword(answer=MyBlock).correct


def test_delegating_to_the_books_block_is_refused_by_check_module():
    from resnet_lab.exercises import degradation

    fb = degradation.plain_block(DelegatesToTheBook)
    assert not fb.correct and fb.book_code and ".inner" in fb.message and "PlainBlock" in fb.message, str(fb)
    fb = degradation.plain_block(lambda inplanes, planes, stride: M.PlainBlock(inplanes, planes, stride))
    assert not fb.correct and fb.book_code, str(fb)


def test_allow_lets_an_exercise_accept_named_book_classes(throwaway):
    @engine.exercise(throwaway, "uses the book's block", "code", allow=(M.PlainBlock,))
    def stack_of_plain(student):
        return engine.check_module(student, DelegatesToTheBook, [(8, 8, 1)], lambda a: (2, 8, 6, 6), "your stack")

    assert stack_of_plain(DelegatesToTheBook).correct
    assert stack_of_plain(SubclassOfTheBooks).book_code is False  # allowed: judged on behaviour, not refused
    assert stack_of_plain(M.BasicBlock).book_code


def test_book_code_allowed_lets_a_reference_pass_its_own_checker():
    from resnet_lab.exercises import degradation

    assert degradation.option_a_shortcut(M.ShortcutA).book_code
    with engine.book_code_allowed():
        assert degradation.option_a_shortcut(M.ShortcutA).correct
    assert degradation.option_a_shortcut(M.ShortcutA).book_code


def solution_answers() -> list[tuple[str, str, object]]:
    """(chapter, checker, answer) for every ``ex.<checker>(Name)`` in a notebook cell tagged ``solution``, the
    answer built as a notebook does: the cell's imports, classes and functions run in a ``__main__``."""
    found = []
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        sources = ["".join(c["source"]) for c in cells]
        chapter = next((m.group(1) for s in sources for m in CHAPTER_IMPORT.finditer(s)), None)
        for cell, source in zip(cells, sources):
            if chapter is None or "solution" not in cell.get("metadata", {}).get("tags", []):
                continue
            tree = ast.parse(source)
            defs = [n for n in tree.body if isinstance(n, (ast.ClassDef, ast.FunctionDef, ast.Import, ast.ImportFrom))]
            space = {"__name__": "__main__", "torch": torch, "nn": nn, "F": F, "copy": copy, "math": math}
            exec(compile(ast.Module(defs, []), f"<{path.name} solution>", "exec"), space)  # noqa: S102
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and isinstance(node.func.value, ast.Name) and node.func.value.id == "ex"):  # fmt: skip
                    for arg in node.args[:1]:
                        if isinstance(arg, ast.Name) and arg.id in space:
                            found.append((chapter, node.func.attr, space[arg.id]))
    return found


def test_every_solution_in_the_notebooks_passes_its_checker_gradients_included():
    """No correct answer is refused as book code, nor rejected by the gradient comparison."""
    answers = solution_answers()
    assert len(answers) >= 12
    for chapter, name, answer in answers:
        checker = getattr(importlib.import_module(f"resnet_lab.exercises.{chapter}"), name)
        assert engine.book_code(answer, getattr(checker, "allow", ())) is None, (chapter, name, answer)
        fb = checker(answer)
        assert fb.correct and not fb.book_code and not fb.note, f"{chapter}.{name}: {fb}"


# --- Attempts, answers, hint levels ---------------------------------------------------------------------


LEVELS = ("Look at how the value grows from block to block.", "Each block multiplies it by the same factor.")


def test_attempts_and_answers_are_recorded(throwaway):
    @engine.exercise(throwaway, "a number", "number")
    def a_number(answer):
        return engine.check_number(answer, 42, "the answer", hint=LEVELS)

    key = (throwaway, "a_number")
    assert key not in engine.ATTEMPTS and engine.EXERCISES[key] == ("a number", "number")
    a_number(...)
    a_number(41)
    fb = a_number(42)
    assert fb.correct and fb.attempt == 3 and fb.exercise == key
    assert engine.ATTEMPTS[key] == 3 and engine.ANSWERS[key] == ((42,), {})
    again = engine.recheck(*key)
    assert again.correct and engine.ATTEMPTS[key] == 3  # a re-check is not an attempt
    assert engine.recheck(throwaway, "never_registered") is None
    engine.reset(throwaway)
    assert key not in engine.ATTEMPTS and key not in engine.ANSWERS and key in engine.EXERCISES

    before = engine.ATTEMPTS.get(("residual", "residual_gradient"), 0)
    R.residual_gradient(2.0)
    assert engine.ATTEMPTS[("residual", "residual_gradient")] == before + 1
    assert engine.ANSWERS[("residual", "residual_gradient")] == ((2.0,), {})


def test_the_second_wrong_attempt_shows_the_second_hint_level(throwaway):
    @engine.exercise(throwaway, "levels", "number")
    def levels(answer):
        return engine.check_number(answer, 42, "the answer", hint=LEVELS)

    placeholder = levels(...)
    assert placeholder.placeholder and placeholder.level == 1  # the untouched cell is not a wrong attempt
    first = levels(40)
    assert not first.correct and first.level == 1 and first.shown_hints == LEVELS[:1]
    assert first.hint == LEVELS[0] and f"Hint: {LEVELS[0]}" in str(first) and LEVELS[1] not in str(first)
    assert LEVELS[1] not in first._repr_html_()
    second = levels(41)
    assert second.level == 2 and second.shown_hints == LEVELS and second.hints == LEVELS
    assert f"Hint 2: {LEVELS[1]}" in str(second) and "Hint 2:" in second._repr_html_()
    assert LEVELS[0] in second.hint and LEVELS[1] in second.hint
    assert levels(42).correct and levels(40).level == 2


def test_a_named_mistake_keeps_the_exercises_second_level():
    fb = engine.check_module(DetachedShortcut, REFERENCE_BLOCK, [(8, 8, 1)], lambda a: (2, 8, 6, 6), "b", hint=LEVELS)
    assert fb.mistake and fb.hints[0] == engine.DETACHED_HINT and fb.hints[1:] == LEVELS[1:]
    fb.level = 2
    assert engine.DETACHED_HINT in fb.hint and LEVELS[1] in fb.hint


def test_hint_returns_each_level_by_checker_or_name(throwaway):
    @engine.exercise(throwaway, "hinted", "number")
    def hinted(answer):
        return engine.check_number(answer, 42, "the answer", hint=LEVELS)

    @engine.exercise(throwaway, "registered", "choice", hint=("First look here, please.", "Then look there."))
    def registered(answer):
        return engine.Feedback(False, "no")

    assert engine.hint(hinted, 1) == LEVELS[0] and engine.hint(hinted, level=2) == LEVELS[1]
    assert engine.hint(hinted) == LEVELS[1]  # asking is the second level
    assert engine.hint("hinted", 1) == LEVELS[0] and engine.hint(f"{throwaway}.hinted", 2) == LEVELS[1]
    assert engine.hint(hinted, 7) == LEVELS[-1] and engine.hint(hinted, 0) == LEVELS[0]
    assert engine.hint(registered, 2) == "Then look there."
    assert registered("A").hints == ("First look here, please.", "Then look there.")  # filled in from exercise()
    assert isinstance(engine.hint("no_such_exercise"), str) and isinstance(engine.hint(42), str)
    assert repr(engine.hint(hinted, 1)) == LEVELS[0]  # shown without quotes in a notebook
    assert engine.hint(T.basic_block, 1) == T.basic_block(...).hints[0]


def test_hint_is_re_exported_where_chapters_import_it():
    from resnet_lab import exercises as E

    assert E.hint is engine.hint and E.check_written is engine.check_written
    assert E.ANSWERS is engine.ANSWERS and E.ATTEMPTS is engine.ATTEMPTS


# --- Written answers and kinds ------------------------------------------------------------------------------


RUBRIC = ("Names the chapter's verdict.", "Gives the numbers it rests on.", "Says what could change it.")


def test_check_written_rules():
    words = " ".join(["word"] * 30)
    fb = engine.check_written(words, "the verdict", RUBRIC)
    assert fb.correct and fb.rubric == RUBRIC and all(r in str(fb) for r in RUBRIC) and "30" in fb.message
    assert "<ol" in fb._repr_html_()
    assert engine.check_written(words, "the verdict", "One rule.").rubric == ("One rule.",)
    short = engine.check_written("Too short to count.", "the verdict", RUBRIC, hint="Say why.")
    assert not short.correct and "4" in short.message and short.hints == ("Say why.",) and short.rubric == RUBRIC
    assert engine.check_written(" ".join(["w"] * 5), "v", RUBRIC, min_words=5).correct
    for placeholder in (None, ..., "", "   "):
        fb = engine.check_written(placeholder, "the verdict", RUBRIC)
        assert not fb.correct and fb.placeholder
    assert not engine.check_written(42, "the verdict", RUBRIC).correct
    assert engine.count_words("plain-56 isn't worse, it's 2.5 points") == 7


def test_written_and_run_kinds(throwaway):
    @engine.exercise(throwaway, "interpret", "written")
    def interpret(answer):
        return engine.check_written(answer, "the verdict", RUBRIC, min_words=3)

    @engine.exercise(throwaway, "own run", "run")
    def own_run(answer, runs):
        return engine.check_number(answer, sum(runs), "your total")

    text = "The deeper plain net trains worse."
    assert interpret(text).correct and engine.ANSWERS[(throwaway, "interpret")] == ((text,), {})
    assert engine.EXERCISES[(throwaway, "interpret")][1] == "written"
    assert own_run(6, [1, 2, 3]).correct and not own_run(5, [1, 2, 3]).correct
    with pytest.raises(ValueError):
        engine.exercise(throwaway, "bad", "essay")


def test_a_checker_never_raises_for_the_student(throwaway):
    @engine.exercise(throwaway, "broken", "code")
    def broken(answer):
        raise KeyError("oops")

    @engine.exercise(throwaway, "returns nothing", "number")
    def returns_nothing(answer):
        return None

    fb = broken(lambda: 1)
    assert not fb.correct and "KeyError" in fb.message
    assert not returns_nothing(1).correct
    assert engine.book_code(object()) is None and engine.book_code(3.5) is None and engine.book_code("text") is None

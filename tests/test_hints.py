"""Hints teach before they tell: every exercise has at least two hint levels, and no hint (nor any named
mistake's hint) contains the code of the exercise's solution cell in the chapter's notebook.

The hints are read the way a student meets them: from the engine's ``hint(checker, level)`` where it exists,
else from the Feedback of a call with the notebook's placeholder answer (``...``).
"""

from __future__ import annotations

import ast
import importlib
import inspect
import io
import json
import re
import tokenize
from functools import cache

import pytest

from resnet_lab import exercises as E
from resnet_lab.exercises import engine
from tests.helpers import REPO

CHAPTERS = ("tracing", "degradation", "residual", "fashion", "cifar", "beyond", "transfer", "keras", "distributed")
MIN_LINE = 12  # a solution line this long (comments stripped) must not appear in a hint
MIN_TOKEN = 6  # nor an expression or call of the solution this long (whitespace removed)

_OPERAND = r"[A-Za-z0-9_.]+(?:\([^()]*\)|\[[^\[\]]*\])*"
_OPERATOR = r"(?:\*\*|//|[-+*/%@]|[<>]=?|==|!=)"
EXPRESSION = re.compile(rf"{_OPERAND}(?:\s*{_OPERATOR}\s*{_OPERAND})+")
CALL = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*\([^()]*\)")
CHAPTER_IMPORT = re.compile(r"from resnet_lab\.exercises import (\w+) as ex\b")


def normalise(text: str) -> str:
    """Whitespace removed and quotes unified, so that spacing and quoting cannot hide a copy."""
    return re.sub(r"\s+", "", text).replace("'", '"')


_STRINGS = {tokenize.STRING, getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)}


def strip_comments(source: str, strings: str = "keep") -> str:
    """``source`` without comments; string literals kept, or blanked: ``"prose"`` (those with whitespace in them,
    a written answer's text) or ``"all"``. Prose is not code, and "ResNet-50" in it is no subtraction."""
    try:
        tokens = []
        for t in tokenize.generate_tokens(io.StringIO(source).readline):
            if t.type == tokenize.COMMENT:
                continue
            if t.type in _STRINGS and (strings == "all" or (strings == "prose" and re.search(r"\s", t.string))):
                t = t._replace(string='""' if t.type == tokenize.STRING else "")
            tokens.append(t)
        return tokenize.untokenize(tokens)
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return "\n".join(line.split("#", 1)[0] for line in source.splitlines())


def _checker_arguments(code: str, name: str) -> list[str]:
    """The source text of the arguments of ``ex.<name>(...)`` in ``code`` (the answer handed to the checker)."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return []
    return [ast.get_source_segment(code, arg) or ""
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == name
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "ex"
            for arg in node.args]  # fmt: skip


def forbidden(code: str, names: tuple[str, ...] = ()) -> set[str]:
    """What a hint must not contain from a solution cell: every line of ``MIN_LINE`` or more characters
    (comments stripped), every expression and call of ``MIN_TOKEN`` or more, and the answer handed to each
    checker in ``names`` unless it is a bare name (the student's own class or function)."""
    found = set()
    for line in strip_comments(code).splitlines():
        if len(line.strip()) >= MIN_LINE:
            found.add(normalise(line))
    for pattern, strings in ((EXPRESSION, "all"), (CALL, "prose")):
        for line in strip_comments(code, strings).splitlines():
            found.update(t for t in map(normalise, pattern.findall(line)) if len(t) >= MIN_TOKEN)
    code = strip_comments(code)
    for name in names:
        for arg in _checker_arguments(code, name):
            if not arg.isidentifier() and len(normalise(arg)) >= MIN_TOKEN:
                found.add(normalise(arg))
    return found


def leaks(text: str, fragments: set[str]) -> list[str]:
    flat = normalise(text)
    return sorted(f for f in fragments if f in flat)


@cache
def solutions() -> tuple[tuple[str, str, str], ...]:
    """(chapter, checker name, solution cell's code) for every ``ex.<checker>(...)`` in a cell tagged solution."""
    found = []
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        sources = ["".join(c["source"]) for c in cells]
        chapters = {m.group(1) for s in sources for m in CHAPTER_IMPORT.finditer(s)}
        if len(chapters) != 1:
            continue
        (chapter,) = chapters
        for cell, source in zip(cells, sources):
            if cell["cell_type"] != "code" or "solution" not in cell.get("metadata", {}).get("tags", []):
                continue
            for name in sorted(set(re.findall(r"\bex\.(\w+)\(", source))):
                if (chapter, name) in engine.EXERCISES:
                    found.append((chapter, name, source))
    return tuple(found)


def _placeholder_call(checker):
    """Call a checker as the untouched notebook does: ``...`` for every required positional argument."""
    try:
        params = inspect.signature(checker).parameters.values()
        required = [p for p in params if p.default is p.empty
                    and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]  # fmt: skip
    except (TypeError, ValueError):
        required = [None]
    return checker(*[...] * max(1, len(required)))


def _as_levels(hint) -> list[str]:
    if isinstance(hint, str):
        return [hint] if hint else []
    return [h for h in hint or () if h]


def hint_levels(chapter: str, name: str) -> list[str]:
    """The texts of an exercise's hint levels, first level first."""
    checker = getattr(importlib.import_module(f"resnet_lab.exercises.{chapter}"), name)
    if hasattr(engine, "hint"):
        levels: list[str] = []
        for level in (1, 2, 3, 4):
            try:
                text = engine.hint(checker, level)
            except (IndexError, KeyError, ValueError):
                break
            if not text or (levels and text == levels[-1]):
                break
            levels.append(str(text))
        if levels:
            return levels
    return _as_levels(_placeholder_call(checker).hint)


def shown_text(chapter: str, name: str) -> str:
    """Everything a student reads under two wrong (placeholder) attempts: messages and hints as printed."""
    checker = getattr(importlib.import_module(f"resnet_lab.exercises.{chapter}"), name)
    return "\n".join(str(_placeholder_call(checker)) for _ in range(2))


def mistakes(chapter: str) -> list[engine.Mistake]:
    """Every named mistake a chapter's module holds (alone or in a tuple or list of them)."""
    module = importlib.import_module(f"resnet_lab.exercises.{chapter}")
    found = []
    for value in vars(module).values():
        if isinstance(value, engine.Mistake):
            found.append(value)
        elif isinstance(value, (tuple, list)):
            found.extend(v for v in value if isinstance(v, engine.Mistake))
    return found


def _exercise_ids() -> list[tuple[str, str]]:
    return sorted(key for key in E.EXERCISES if key[0] in CHAPTERS)


# --- The test's own rules, on small cases --------------------------------------------------------------


def test_forbidden_fragments_catch_the_solution_in_any_spacing():
    code = "# Solution: a factor of (1 + 0.1) per block.\nex.residual_gradient(1.1**10)\n"
    bad = forbidden(code, ("residual_gradient",))
    assert "1.1**10" in bad and not any("factor" in f for f in bad)  # comments are prose, not code
    assert leaks("Hint: it is 1.1 ** 10.", bad) and not leaks("Multiply 1.5 by itself 3 times.", bad)
    wrapper = "class R(nn.Module):\n    def __init__(self, f):\n        self.f = f\n\n    def forward(self, x):\n" \
              "        return x + self.f(x)\n"  # fmt: skip
    bad = forbidden(wrapper)
    assert leaks("return x + self.f(x) in forward", bad) and leaks("x+self.f( x )", bad)
    assert not leaks("add the input to f applied to the input", bad)
    assert leaks("use name.startswith('fc.')", forbidden('p.requires_grad = name.startswith("fc.")'))
    assert "(256,6,6)" in forbidden("ex.stage_output((256, 6, 6))", ("stage_output",))
    prose = 'answer = """\\\nResNet-50 costs 4.1 G MACs, 8.63 - 3.44 points.\n"""\nkey = RunKey("fine-tune", n=10)\n'
    assert not leaks("ResNet-50 and fine-tune", forbidden(prose))  # prose and names are no expressions
    assert leaks('RunKey("fine-tune", n=10)', forbidden(prose))
    assert "MyBlock" not in forbidden("ex.basic_block(MyBlock)", ("basic_block",))  # the student's own class


def test_the_notebooks_have_solution_cells_for_the_exercises():
    found = solutions()
    assert {chapter for chapter, _, _ in found} == set(CHAPTERS)
    assert len({(chapter, name) for chapter, name, _ in found}) >= 33


# --- Every exercise's hints ------------------------------------------------------------------------------


@pytest.mark.parametrize("chapter,name", _exercise_ids(), ids=lambda v: v)
def test_every_exercise_has_at_least_two_hint_levels(chapter, name):
    levels = hint_levels(chapter, name)
    assert len(levels) >= 2, f"{chapter}.{name} has {len(levels)} hint level(s): {levels}"
    assert all(len(level.split()) >= 5 for level in levels), levels
    assert levels[0] != levels[1]


@pytest.mark.parametrize("chapter,name,code", solutions(), ids=lambda v: v if len(v) < 40 else "")
def test_no_hint_level_contains_the_solutions_code(chapter, name, code):
    bad = forbidden(code, (name,))
    for level, text in enumerate(hint_levels(chapter, name), 1):
        assert not leaks(text, bad), f"{chapter}.{name} hint level {level} contains the solution's {leaks(text, bad)}"
    shown = shown_text(chapter, name)
    assert not leaks(shown, bad), f"{chapter}.{name} prints the solution's {leaks(shown, bad)} under a wrong answer"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_no_mistake_hint_contains_a_solutions_code(chapter):
    cells = [(name, code) for ch, name, code in solutions() if ch == chapter]
    bad = set().union(*(forbidden(code, (name,)) for name, code in cells))
    for mistake in mistakes(chapter):
        assert isinstance(mistake.hint, str) and len(mistake.hint.split()) >= 5, mistake
        found = leaks(mistake.hint, bad)
        assert not found, f"{chapter}: the hint for {mistake.name!r} contains the solution's {found}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_each_chapter_module_re_exports_hint(chapter):
    module = importlib.import_module(f"resnet_lab.exercises.{chapter}")
    assert module.hint is engine.hint
    name = next(n for ch, n in _exercise_ids() if ch == chapter)
    assert module.hint(getattr(module, name), 1) == hint_levels(chapter, name)[0]

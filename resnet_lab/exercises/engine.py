"""The checker engine: instant, specific feedback that never crashes on the student's code.

Every checker returns a :class:`Feedback` (a coloured box in a notebook, one
line of text elsewhere; ``.correct`` for tests and graders) and records the
verdict for :func:`scorecard`. Kinds of checker:

* :func:`check_number`, :func:`check_shape`, :func:`check_choice`;
* :func:`check_module`: builds the student's module and the reference with
  the same arguments, copies the reference's weights into the student's
  (:func:`place_weights`), and compares outputs in training and evaluation
  mode for several argument sets, then the gradients (with respect to the
  input and to every parameter) in training mode, so that a detached path is
  caught; where outputs differ it tries known wrong variants and names the
  one the student's module behaves like;
* :func:`check_function`: the same for a plain function;
* :func:`check_written`: a written answer, recorded for the instructor and
  graded by a rubric.

Hints teach before they tell: a checker's ``hint`` is one string or a tuple
of levels; the first wrong attempt shows level 1 (what to look at), the
second and later wrong attempts show level 2 as well, and :func:`hint` gives
any level on demand. The :func:`exercise` wrapper counts attempts, records
the last answer (:data:`ANSWERS`, :data:`ATTEMPTS`, for a grader) and refuses
answers that are the book's own code (a reference, a ``resnet_lab`` class, a
subclass of one, ...): a checker must grade what the student wrote.
"""

from __future__ import annotations

import contextlib
import contextvars
import copy
import dis
import functools
import html
import inspect
import itertools
import math
import os
import re
import traceback
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import torch
from torch import nn

__all__ = ["Feedback", "Mistake", "check_number", "check_shape", "check_choice", "check_module", "check_function",
           "check_written", "place_weights", "PlacementError", "exercise", "scorecard", "hint", "recheck", "reset",
           "book_code_allowed", "book_code", "EXERCISES", "ANSWERS", "ATTEMPTS", "KINDS", "HintText",
           "randomize_batchnorm", "not_a_function", "call_student"]  # fmt: skip

#: A checker's ``hint``: one string (one level) or a sequence of levels, most general first.
Hints = str | Sequence[str] | None

#: The kinds of exercise :func:`exercise` registers.
KINDS = ("code", "number", "choice", "shape", "written", "run")


@torch.no_grad()
def randomize_batchnorm(module: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm random scales, shifts and running statistics (as after training), so that
    comparisons of two networks in eval mode would show a mix-up of BN layers. Returns ``module``."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
            m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)
            m.running_mean.copy_(0.4 * torch.rand(m.running_mean.shape, generator=g) - 0.2)
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    return module


# --- Feedback -------------------------------------------------------------------------------------


def _levels(hint: object) -> tuple[str, ...]:
    """``hint`` as a tuple of non-empty levels: a str is one level, a sequence is several, None is none."""
    if hint is None:
        return ()
    if isinstance(hint, str):
        return (hint,) if hint else ()
    try:
        return tuple(str(h) for h in hint if h)  # type: ignore[union-attr]
    except TypeError:
        return (str(hint),)


class Feedback:
    """A checker's verdict: right or not, what was expected, what came back, and hints by level.

    ``hint`` may be one string or a tuple ``(level1, level2)``. ``level`` says how many levels are
    shown (the :func:`exercise` wrapper sets 2 from the second wrong attempt on); ``.hint`` is the text
    shown, ``.hints`` every level. ``note`` is said even when the answer is right (an unused parameter,
    say); ``rubric`` is shown with written answers. ``book_code`` is True when the answer was refused
    because it is the book's own code; ``mistake`` names the known mistake the answer made, if any;
    ``placeholder`` is True when the answer is the untouched placeholder (it does not count as a wrong
    attempt for the hint level).
    """

    def __init__(self, correct: bool, message: str, hint: Hints = "", *, note: str = "", rubric: Hints = (),
                 level: int = 1, book_code: bool = False, mistake: str = "",
                 placeholder: bool = False) -> None:  # fmt: skip
        self.correct = bool(correct)
        self.message = message
        self.hints = _levels(hint)
        self.note = note
        self.rubric = _levels(rubric)
        self.level = level
        self.book_code = book_code
        self.mistake = mistake
        self.placeholder = placeholder
        #: The exercise ``(chapter, name)`` and which call of it this is; set by the :func:`exercise` wrapper.
        self.exercise: tuple[str, str] | None = None
        self.attempt = 0

    @property
    def shown_hints(self) -> tuple[str, ...]:
        """The hint levels shown: the first, and the second too from ``level`` 2 on."""
        return self.hints[: max(1, self.level)]

    @property
    def hint(self) -> str:
        """The hint text shown (level 1, then "Hint 2: ..." from the second wrong attempt on)."""
        shown = self.shown_hints
        return " ".join([*shown[:1], *(f"Hint {i}: {h}" for i, h in enumerate(shown[1:], 2))])

    @hint.setter
    def hint(self, value: Hints) -> None:
        self.hints = _levels(value)

    def _more(self) -> str:
        """Where a second level exists but is not shown yet: how to see it."""
        if self.correct or len(self.hints) < 2 or self.level >= 2:
            return ""
        name = f'"{self.exercise[1]}"' if self.exercise else "the exercise"
        return f"Another try shows a second hint, or ask for it now: ex.hint({name}, level=2)."

    @property
    def mark(self) -> str:
        """The verdict's first word: Correct!, Not yet., or Answered. for a written answer (it carries a rubric)."""
        return ("Answered." if self.rubric else "Correct!") if self.correct else "Not yet."

    def __str__(self) -> str:
        parts = [f"{self.mark} {self.message}"]
        if not self.correct:
            shown = self.shown_hints
            parts += [f"Hint: {h}" if i == 1 else f"Hint {i}: {h}" for i, h in enumerate(shown, 1)]
            parts += [self._more()] if self._more() else []
        if self.note:
            parts.append(f"Note: {self.note}")
        if self.rubric:
            parts.append("Rubric: " + " ".join(f"({i}) {r}" for i, r in enumerate(self.rubric, 1)))
        return " ".join(parts)

    __repr__ = __str__

    def __bool__(self) -> bool:
        return self.correct

    def _repr_html_(self) -> str:
        colour, border, mark = (
            ("#e8f5e9", "#2e7d32", f"✔ {self.mark}") if self.correct else ("#fff3e0", "#ef6c00", "✘ Not yet.")
        )
        extra = ""
        if not self.correct:
            for i, h in enumerate(self.shown_hints, 1):
                label = "Hint:" if i == 1 else f"Hint {i}:"
                extra += f"<br><i>{label}</i> {html.escape(h)}"
            if self._more():
                extra += f"<br><small>{html.escape(self._more())}</small>"
        if self.note:
            extra += f"<br><i>Note:</i> {html.escape(self.note)}"
        if self.rubric:
            items = "".join(f"<li>{html.escape(r)}</li>" for r in self.rubric)
            extra += f"<br><i>Rubric:</i><ol style='margin:0.2em 0'>{items}</ol>"
        return (
            f"<div style='background:{colour};border-left:4px solid {border};padding:0.5em 0.8em;margin:0.3em 0'>"
            f"<b>{mark}</b> {html.escape(self.message)}{extra}</div>"
        )


def _no_answer(answer: object) -> bool:
    return answer is None or answer is ...


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.6g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return repr(value)


def first_error_line(exc: BaseException) -> str:
    """The exception as one line a student can act on: type, message and the line it came from."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (line {frames[-1].lineno} of {frames[-1].name})" if frames else ""
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}{where}"


# --- Numbers, shapes, choices, written answers ------------------------------------------------------


def _significant_digits(value: float) -> int:
    digits = Decimal(repr(float(value))).normalize().as_tuple().digits
    return max(1, len(digits))


def _round_sig(value: float, digits: int) -> float:
    if value == 0:
        return 0.0
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def check_number(answer: object, expected: float, what: str, hint: Hints = "",
                 rel_tol: float | None = None) -> Feedback:  # fmt: skip
    """Is ``answer`` the number ``expected``?

    Integers must match exactly. A non-integer ``expected`` is matched to the
    answer's own precision: the answer is right when ``expected``, rounded to
    as many significant digits as the answer gives (at least two), equals it
    (2.6 and 2.59 are both right for 1.1**10 = 2.5937...). One unit off in
    the last digit is "close: give more digits". ``rel_tol`` replaces the
    rule with a relative tolerance.
    """
    if _no_answer(answer):
        return Feedback(False, f"No answer yet for {what}: replace the placeholder with a number.", hint,
                        placeholder=True)  # fmt: skip
    try:
        value = float(answer.item() if isinstance(answer, torch.Tensor) else answer)  # type: ignore[arg-type]
    except (TypeError, ValueError, RuntimeError):
        return Feedback(False, f"Expected a number for {what}, got {type(answer).__name__} {answer!r}.", hint)
    if not math.isfinite(value):
        return Feedback(False, f"You gave {value} for {what}: expected a finite number.", hint)
    direction = "too high" if value > expected else "too low"
    if rel_tol is not None or float(expected).is_integer():
        tol = (rel_tol or 0.0) * abs(expected)
        if abs(value - expected) <= tol:
            return Feedback(True, f"{what}: {_fmt(expected)}.")
        return Feedback(False, f"You gave {_fmt(answer)} for {what}: {direction}.", hint)
    if math.isclose(value, expected, rel_tol=1e-9):
        return Feedback(True, f"{what}: {_fmt(expected)}.")
    own = _significant_digits(value)
    digits = max(2, own)
    if _round_sig(expected, digits) == _round_sig(value, digits):
        return Feedback(True, f"{what}: {_fmt(expected)} (you gave {_fmt(answer)}, right to {digits} digits).")
    unit = 10 ** (math.floor(math.log10(abs(expected))) - digits + 1) if expected else 0
    if _round_sig(expected, own) == _round_sig(value, own) or abs(value - expected) <= unit:
        return Feedback(False, f"Close: {_fmt(answer)} is near {what}, but not it to {digits} significant digits; "
                               "give more digits.", hint)  # fmt: skip
    return Feedback(False, f"You gave {_fmt(answer)} for {what}: {direction}.", hint)


def check_shape(answer: object, expected: Sequence[int], what: str, hint: Hints = "") -> Feedback:
    """Is ``answer`` the shape ``expected``? Accepts tuples, lists and ``torch.Size``."""
    expected = tuple(expected)
    if _no_answer(answer):
        return Feedback(False, f"No answer yet for {what}: give a tuple of {len(expected)} ints.", hint,
                        placeholder=True)  # fmt: skip
    try:
        given = tuple(int(v) for v in answer)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return Feedback(False, f"Expected a shape (a tuple of ints) for {what}, got {answer!r}.", hint)
    if given == expected:
        return Feedback(True, f"{what}: {expected}.")
    if len(given) != len(expected):
        return Feedback(False, f"{what} has {len(expected)} dimensions; you gave {len(given)}: {given}.", hint)
    wrong = [i for i, (g, e) in enumerate(zip(given, expected)) if g != e]
    return Feedback(False, f"You gave {given} for {what}; dimension(s) {wrong} are off.", hint)


def check_choice(answer: object, expected: str, options: dict[str, str], what: str, hint: Hints = "") -> Feedback:
    """Multiple choice: ``answer`` is one key of ``options`` (case-insensitive)."""
    if _no_answer(answer):
        return Feedback(False, f"No answer yet for {what}: answer with one of {', '.join(options)}.", hint,
                        placeholder=True)  # fmt: skip
    key = str(answer).strip().upper()
    if key not in options:
        return Feedback(False, f"Answer with one of {', '.join(options)} for {what}; you gave {answer!r}.", hint)
    if key == expected:
        return Feedback(True, f"{key}: {options[key]}")
    return Feedback(False, f"{key} ({options[key]}) is not it.", hint)


_WORD = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")


def count_words(text: str) -> int:
    """Words in ``text``: runs of letters or digits (a hyphen or apostrophe inside one does not split it)."""
    return len(_WORD.findall(text))


def check_written(answer: object, what: str, rubric: Hints, min_words: int = 25, hint: Hints = "") -> Feedback:
    """A written answer: "correct" means answered (a str of at least ``min_words`` words), to be graded by the rubric.

    The checker cannot judge an interpretation; it records the text (the
    :func:`exercise` wrapper keeps it in :data:`ANSWERS`, where a grader copies
    it for the instructor) and shows the ``rubric`` (one string or a sequence
    of criteria) the instructor will grade it by, so the student can check
    their answer against it.
    """
    if _no_answer(answer) or (isinstance(answer, str) and not answer.strip()):
        return Feedback(False, f"No answer yet for {what}: write your answer as a string (in quotes) of at least "
                               f"{min_words} words.", hint, rubric=rubric, placeholder=True)  # fmt: skip
    if not isinstance(answer, str):
        return Feedback(False, f"Write your answer to {what} as text, a str in quotes; got {type(answer).__name__}.",
                        hint, rubric=rubric)  # fmt: skip
    words = count_words(answer)
    if words < min_words:
        return Feedback(False, f"Your answer to {what} has {words} word{'s' * (words != 1)}; write at least "
                               f"{min_words}: say what the result shows and why, with the numbers it rests on.",
                        hint, rubric=rubric)  # fmt: skip
    return Feedback(True, f"Your answer to {what} ({words} words) is recorded. The checker does not grade it: your "
                          "instructor will, by the rubric below; check your answer against it.",
                    rubric=rubric)  # fmt: skip


# --- Placing the reference's weights into the student's module -------------------------


class PlacementError(ValueError):
    """The reference's tensors cannot all be placed into the student's module."""


def _own_tensors(m: nn.Module) -> list[tuple[str, tuple]]:
    return [(k, tuple(v.shape)) for k, v in itertools.chain(m._parameters.items(), m._buffers.items())
            if v is not None]  # fmt: skip


def _units(module: nn.Module) -> list[tuple[str, nn.Module, tuple]]:
    """Modules that own tensors directly, in registration order, with a signature of their tensors."""
    out = []
    for path, m in module.named_modules():
        own = _own_tensors(m)
        if own:
            out.append((path, m, (type(m).__name__, tuple(own))))
    return out


def _describe(path: str, m: nn.Module) -> str:
    weight = getattr(m, "weight", None)
    shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else ""
    return f"{path or 'the module itself'} ({type(m).__name__}{shape})"


def _describe_extra(path: str, m: nn.Module) -> str:
    """A module of the student's that the reference lacks, by path; tensors registered on the module itself
    (an ``nn.Parameter`` attribute, say) by their names and shapes."""
    if path:
        return _describe(path, m)
    tensors = ", ".join(f"{k} {shape}" for k, shape in _own_tensors(m))
    return f"the tensor{'s' * (len(_own_tensors(m)) > 1)} {tensors} registered on it directly"


class Placement:
    """One way to copy the reference's tensors into the student's module; calling it does the copy.

    ``pairs`` are the (reference module, student module) pairs it copies between (what the gradient
    comparison matches parameters by); ``extra`` the student's modules with tensors that take none of
    the reference's, as ``(path, module)``.
    """

    def __init__(self, pairs: list[tuple[nn.Module, nn.Module]], extra: Sequence[tuple[str, nn.Module]] = (),
                 state: dict | None = None, target: nn.Module | None = None) -> None:  # fmt: skip
        self.pairs, self.extra, self._state, self._target = pairs, list(extra), state, target

    def __call__(self) -> None:
        if self._state is not None and self._target is not None:
            self._target.load_state_dict(copy.deepcopy(self._state))
        else:
            _copy_pairs(self.pairs)


def place_weights(source: nn.Module, target: nn.Module, limit: int = 24, extra_ok: bool = False) -> list[Placement]:
    """Ways to copy every tensor of ``source`` into ``target``; each call of one does the copy.

    By name where the state_dict keys match; else by matching modules of the
    same type and tensor shapes in registration order, where several modules
    of one signature could take each other's place (two BatchNorm2d(64), say)
    each order among them is a candidate (at most ``limit``). Raises
    :class:`PlacementError` naming what could not be placed: a tensor of the
    reference with no counterpart, or (unless ``extra_ok``) a module of the
    target's that takes none of the reference's tensors; with ``extra_ok``
    those are listed in each placement's ``extra``.
    """
    src_state, tgt_state = source.state_dict(), target.state_dict()
    if src_state.keys() == tgt_state.keys() and all(src_state[k].shape == tgt_state[k].shape for k in src_state):
        pairs = []
        for path, m in source.named_modules():
            if _own_tensors(m):
                with contextlib.suppress(AttributeError):
                    pairs.append((m, target.get_submodule(path)))
        return [Placement(pairs, state=src_state, target=target)]
    src, tgt = _units(source), _units(target)
    by_sig: dict[tuple, list] = {}
    for unit in tgt:
        by_sig.setdefault(unit[2], []).append(unit)
    groups: dict[tuple, list] = {}
    for unit in src:
        groups.setdefault(unit[2], []).append(unit)
    for sig, units in groups.items():
        have = by_sig.get(sig, [])
        if len(have) < len(units):
            missing = units[len(have)]
            raise PlacementError(f"the reference has {_describe(missing[0], missing[1])} with no counterpart in "
                                 "your module")  # fmt: skip
    extra = [u for sig, us in by_sig.items() for u in us[len(groups.get(sig, [])):]]
    if extra and not extra_ok:
        raise PlacementError(f"your module has {_describe(extra[0][0], extra[0][1])}, which the reference does not")
    orders = [list(itertools.permutations(by_sig[sig], len(groups[sig]))) for sig in groups]
    candidates = []
    for choice in itertools.islice(itertools.product(*orders), limit):
        pairs = [(s[1], t[1]) for sig, perm in zip(groups, choice) for s, t in zip(groups[sig], perm)]
        used = {id(t) for _, t in pairs}
        unused = [(path, m) for path, m, _ in tgt if id(m) not in used]
        candidates.append(Placement(pairs, unused))
    return candidates


@torch.no_grad()
def _copy_pairs(pairs: list[tuple[nn.Module, nn.Module]]) -> None:
    for s, t in pairs:
        if s is t:
            continue
        for k, v in itertools.chain(s._parameters.items(), s._buffers.items()):
            if v is not None:
                getattr(t, k).copy_(v)


# --- The book's own code, refused as an answer ----------------------------------------------------

_PACKAGE_DIR = os.path.realpath(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
_TRUSTED: contextvars.ContextVar[bool] = contextvars.ContextVar("resnet_lab_trust_book_code", default=False)
_ALLOWED: contextvars.ContextVar[tuple] = contextvars.ContextVar("resnet_lab_allowed_book_code", default=())


@contextlib.contextmanager
def book_code_allowed() -> Iterator[None]:
    """Within this block checkers accept the book's own code: for tests that a reference passes its own
    checker, and for an instructor checking an exercise. Students never need it."""
    token = _TRUSTED.set(True)
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def _is_book_name(module_name: object) -> bool:
    return isinstance(module_name, str) and (module_name == "resnet_lab" or module_name.startswith("resnet_lab."))


def _in_package(code: object) -> bool:
    filename = getattr(code, "co_filename", None)
    if not isinstance(filename, str) or filename.startswith("<"):
        return False
    try:
        return os.path.realpath(filename).startswith(_PACKAGE_DIR + os.sep)
    except (OSError, ValueError):
        return False


def _qualified(obj: object) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', getattr(obj, '__name__', '?'))}"


def _class_origin(cls: type, allow: Sequence[object] = ()) -> str | None:
    """Why ``cls`` is the book's code ("resnet_lab.models.PlainBlock, the book's own class", ...), or None."""
    if cls in allow:
        return None
    if _is_book_name(cls.__module__):
        return f"{_qualified(cls)}, the book's own class"
    for base in cls.__mro__[1:]:
        if base not in allow and _is_book_name(getattr(base, "__module__", None)):
            return f"{cls.__name__}, a subclass of the book's {_qualified(base)}"
    for name in ("__init__", "forward", "__call__"):
        fn = cls.__dict__.get(name)
        fn = getattr(fn, "__func__", fn)
        if isinstance(fn, types.FunctionType) and (_is_book_name(fn.__module__) or _in_package(fn.__code__)):
            return f"{cls.__name__}, whose {name} is the book's {_qualified(fn)}"
    return None


def book_code(answer: object, allow: Sequence[object] = (), instances: bool = True) -> str | None:
    """Why ``answer`` is the book's own code, in words, or None if it is not.

    The book's code is a class or function of ``resnet_lab`` (by its module, or a function whose code
    lives in the package), a subclass of such a class (anywhere in its MRO; torch's and Python's classes
    are fine), a class whose ``__init__`` or ``forward`` is the book's, a ``functools.partial`` or bound
    method of any of these, and (with ``instances``) an instance of such a class. ``allow`` lists book
    classes or functions an exercise accepts.
    """
    if isinstance(answer, functools.partial):
        inner = book_code(answer.func, allow, instances)
        return f"a functools.partial of {inner}" if inner else None
    if isinstance(answer, types.MethodType):
        inner = book_code(answer.__func__, allow, instances) or book_code(answer.__self__, allow, instances)
        return f"a bound method of {inner}" if inner else None
    if isinstance(answer, type):
        return _class_origin(answer, allow)
    if isinstance(answer, (types.FunctionType, types.BuiltinFunctionType)):
        if answer in allow:
            return None
        code = getattr(answer, "__code__", None)
        if _is_book_name(getattr(answer, "__module__", None)) or _in_package(code):
            return f"{_qualified(answer)}, the book's own function"
        return None
    if instances and not isinstance(answer, (str, bytes, int, float, complex, bool, torch.Tensor)):
        inner = _class_origin(type(answer), allow)
        return f"an instance of {inner}" if inner else None
    return None


def _refusal(answer: object, origin: str) -> Feedback:
    """Feedback for an answer that is the book's own code: what was given, what is expected, the fix."""
    inner = answer
    while isinstance(inner, functools.partial):
        inner = inner.func
    inner = getattr(inner, "__func__", inner)
    function = isinstance(inner, (types.FunctionType, types.BuiltinFunctionType))
    own = "your own function" if function else "your own class"
    return Feedback(False, f"You passed {origin}. This exercise asks for {own}, written in your notebook: read the "
                           "book's code if it helps, but write the answer yourself (no subclass or wrapper of the "
                           "book's) and pass that.", book_code=True)  # fmt: skip


# --- Behaviour: modules and functions -------------------------------------------------------


@dataclass(frozen=True)
class Mistake:
    """A known wrong version of the exercise and what to say when the student's code behaves like it.

    ``hint`` is one string, shown at level 1 in place of the exercise's first hint (it names the
    specific mistake); the exercise's second level stays available.
    """

    name: str
    build: Callable[..., object]
    hint: str


def _run(thing, x: torch.Tensor, train: bool) -> torch.Tensor:
    thing.train(train)
    with torch.no_grad():
        return thing(x)


def _outputs(module: nn.Module, inputs: list[torch.Tensor]) -> list:
    """Outputs in eval mode, then training mode (restoring state in between); an exception is an output too."""
    results = []
    state = copy.deepcopy(module.state_dict())
    for train in (False, True):
        for x in inputs:
            module.load_state_dict(state)
            try:
                results.append(_run(module, x, train))
            except Exception as exc:  # noqa: BLE001 - compared, not raised
                results.append(exc)
    module.load_state_dict(state)
    return results


def _same(a: list, b: list, atol: float) -> bool:
    for x, y in zip(a, b):
        if isinstance(x, Exception) or isinstance(y, Exception):
            if not (isinstance(x, Exception) and isinstance(y, Exception) and type(x) is type(y)
                    and str(x) == str(y)):
                return False
        elif not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor) and x.shape == y.shape
                  and torch.allclose(x, y, atol=atol, rtol=atol)):  # fmt: skip
            return False
    return True


def _build(student: object, args: tuple, what: str) -> nn.Module | Feedback:
    call = f"{what}{_short(args)}"
    if isinstance(student, nn.Module):
        name = type(student).__name__
        return Feedback(False, f"Pass the class itself ({name}, not {name}(...)): the checker builds it several "
                               "times, with different arguments.")  # fmt: skip
    if not callable(student):
        return Feedback(False, f"Expected an nn.Module class, got {type(student).__name__} {student!r}.",
                        placeholder=_no_answer(student))  # fmt: skip
    try:
        built = student(*args)
    except TypeError as exc:
        return Feedback(False, f"Building {call} failed: {first_error_line(exc)}. The checker calls it with these "
                               "positional arguments only; give every other argument a default.")  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - the student's code may raise anything
        return Feedback(False, f"Building {call} failed: {first_error_line(exc)}.",
                        placeholder=isinstance(exc, NotImplementedError))  # fmt: skip
    if not isinstance(built, nn.Module):
        return Feedback(False, f"{call} should give an nn.Module, gave {type(built).__name__}.")
    return built


def _arg_modules(args: tuple) -> list[nn.Module]:
    """The modules among the checker's arguments (and inside lists or tuples of them), with their submodules."""
    found: list[nn.Module] = []
    for a in args:
        for item in a if isinstance(a, (list, tuple)) else (a,):
            if isinstance(item, nn.Module):
                found.extend(item.modules())
    return found


def _delegation(built: nn.Module, args: tuple, allow: Sequence[object]) -> tuple[str, str] | None:
    """``(path, why)`` of the first module in ``built`` that is the book's code and was not passed in as an
    argument (the student's module delegates to the book's block), or None."""
    given = _arg_modules(args)
    given_ids, given_types = {id(m) for m in given}, {type(m) for m in given}
    for path, m in built.named_modules():
        if id(m) in given_ids or type(m) in given_types:
            continue
        origin = book_code(type(m), allow)
        if origin:
            return path, origin
    return None


def _with_hints(feedback: Feedback, hints: tuple[str, ...]) -> Feedback:
    if not feedback.hints:
        feedback.hints = hints
    return feedback


def check_module(student: object, reference: Callable[..., nn.Module], arg_sets: Sequence[tuple],
                 input_shape: Callable[[tuple], tuple], what: str, mistakes: Sequence[Mistake] = (),
                 hint: Hints = "", atol: float = 1e-5, seed: int = 0, allow: Sequence[object] = (),
                 gradients: bool = True) -> Feedback:  # fmt: skip
    """Does ``student(*args)`` behave as ``reference(*args)`` for every argument set?

    For each set the student's module is built, and refused if it is or
    contains the book's own module (one not passed in as an argument, not
    in ``allow`` nor in the exercise's ``allow``). The reference is built
    (with randomised BatchNorm), its weights are placed into the student's
    module (:func:`place_weights`), and both run on random inputs of
    ``input_shape(args)`` in evaluation and training mode; outputs must
    agree to ``atol``. Then (``gradients``) one backward pass of a fixed
    random projection of the output, in training mode: the gradients with
    respect to the input and to every placed parameter must agree, which
    names a detached path. A module with extra tensors that change neither
    output nor gradient (and get no gradient) is right, with a note. Where
    outputs differ, each of ``mistakes`` gets the same weights, and the
    first one the student's module agrees with is named.
    """
    levels = _levels(hint)
    allow = (*allow, *_ALLOWED.get())
    trusted = _TRUSTED.get()
    notes: list[str] = []
    for args in arg_sets:
        call = f"{what}{_short(args)}"
        built = _build(student, args, what)
        if isinstance(built, Feedback):
            return _with_hints(built, levels)
        found = None if trusted else _delegation(built, args, allow)
        if found:
            path, origin = found
            where = "is" if not path else f"contains, as .{path},"
            return Feedback(False, f"{call} {where} {origin}. This exercise asks for your own module: build it "
                                   "from torch's layers (nn.Conv2d, nn.BatchNorm2d, ...), not from the book's "
                                   "blocks.", levels, book_code=True)  # fmt: skip
        torch.manual_seed(seed)
        ref = reference(*args)
        randomize_batchnorm(ref, seed)
        g = torch.Generator().manual_seed(seed + 1)
        inputs = [torch.randn(input_shape(args), generator=g) for _ in range(2)]
        expected = _outputs(ref, inputs)
        try:
            candidates = place_weights(ref, built, extra_ok=True)
        except PlacementError as exc:
            bias = _bias_mistake(ref, built)
            if bias:
                return Feedback(False, f"{call} is built like the reference except for the convolutions' bias: "
                                       f"{bias}.", (BIAS_HINT, *levels[1:]), mistake=bias)  # fmt: skip
            # Compare as built: a module that wraps the very objects passed in (a residual wrapper) can
            # still be right; for any other, the placement message explains the difference.
            candidates, placement = [Placement([])], str(exc)
        else:
            # Extra modules are fine where they change nothing; where outputs differ they may be why.
            extra = candidates[0].extra if candidates else []
            placement = f"your module has {_describe_extra(*extra[0])}, which the reference does not" if extra else ""
        got = None
        for place in candidates:
            place()
            got = _outputs(built, inputs)
            if _same(got, expected, atol):
                break
        else:
            return _diagnose(built, got, ref, args, inputs, mistakes, what, levels, placement, atol)
        if any(isinstance(o, Exception) for o in expected):
            raise RuntimeError(f"the reference fails for {args}: fix the exercise")
        if gradients:
            verdict = _check_gradients(ref, built, place, inputs[0], seed, call, args, levels)
            if isinstance(verdict, Feedback):
                return verdict
            notes += [n for n in verdict if n not in notes]
    names = ", ".join(map(_short, arg_sets))
    checked = ", gradients included" if gradients else ""
    return Feedback(True, f"{what} matches the reference in training and evaluation mode for {names}{checked}.",
                    note=" ".join(notes))  # fmt: skip


BIAS_HINT = ("Each convolution here is followed by a BatchNorm, which subtracts the mean over the batch (a "
             "convolution's bias with it) and adds its own shift: the bias is redundant, so the reference's "
             "convolutions have none.")  # fmt: skip


def _bias_mistake(ref: nn.Module, built: nn.Module) -> str:
    """The named mistake "your convolutions have bias=True" where dropping their biases would make the student's
    module placeable and the reference's convolutions have none; else ""."""
    ref_convs = [m for m in ref.modules() if isinstance(m, nn.modules.conv._ConvNd)]
    if not ref_convs or any(m.bias is not None for m in ref_convs):
        return ""
    biased = [p for p, m in built.named_modules() if isinstance(m, nn.modules.conv._ConvNd) and m.bias is not None]
    if not biased:
        return ""
    try:
        stripped = copy.deepcopy(built)
        for m in stripped.modules():
            if isinstance(m, nn.modules.conv._ConvNd):
                m.register_parameter("bias", None)
        place_weights(ref, stripped, extra_ok=True)
    except Exception:  # noqa: BLE001 - not a bias mistake (or not copyable): the placement message stands
        return ""
    listed = ", ".join(biased[:3]) + (", ..." if len(biased) > 3 else "")
    return (f"your convolutions have bias=True ({listed}); the reference's have none (bias=False), as each is "
            "followed by a BatchNorm")


# --- Gradients ----------------------------------------------------------------------------------------------


@dataclass
class _Grads:
    """One backward pass: the error if it failed, the gradient w.r.t. the input and per parameter (by id), and
    for each module (by id) whether any input it received was connected to the graph."""

    error: BaseException | None = None
    connected: bool = True
    input: torch.Tensor | None = None
    params: dict[int, torch.Tensor | None] = field(default_factory=dict)
    fed: dict[int, bool] = field(default_factory=dict)


def _note_input(fed: dict[int, bool], module: nn.Module, args: tuple) -> None:
    tracked = any(isinstance(a, torch.Tensor) and a.requires_grad for a in args)
    fed[id(module)] = fed.get(id(module), False) or tracked


def _gradients(module: nn.Module, x: torch.Tensor, seed: int, params: Sequence[torch.Tensor]) -> _Grads:
    """Training mode, one forward and one backward pass of ``(output * fixed random projection).sum()``.

    Uses ``torch.autograd.grad`` (nothing accumulates in ``.grad``, so modules shared with the reference
    are safe) and restores the module's state (BatchNorm's running statistics) afterwards.
    """
    state = copy.deepcopy(module.state_dict())
    result = _Grads()
    hooks = [m.register_forward_pre_hook(functools.partial(_note_input, result.fed)) for m in module.modules()]
    try:
        module.train()
        leaf = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            out = module(leaf.clone())
            if not isinstance(out, torch.Tensor):
                raise TypeError(f"the output is {type(out).__name__}, not a tensor")
            projection = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed + 2)).to(out.dtype)
            loss = (out * projection).sum()
            if not loss.requires_grad:
                result.connected = False
                return result
            grads = torch.autograd.grad(loss, [leaf, *params], allow_unused=True)
        result.input = grads[0]
        result.params = {id(p): g for p, g in zip(params, grads[1:])}
    except Exception as exc:  # noqa: BLE001 - reported as feedback
        result.error = exc
    finally:
        for h in hooks:
            h.remove()
        module.load_state_dict(state)
    return result


def _zero(g: torch.Tensor | None) -> bool:
    """No gradient: None (not on the graph) or all zeros."""
    return g is None or g.numel() == 0 or not bool(g.detach().abs().max() > 0)


def _agree(a: torch.Tensor | None, b: torch.Tensor | None, rtol: float = 1e-3) -> bool:
    """Gradients agree: both (nearly) zero, or their difference is small relative to the reference's norm."""
    if _zero(a) or _zero(b):
        return _zero(a) and _zero(b)
    if a.shape != b.shape:  # type: ignore[union-attr]
        return False
    return float((a - b).norm()) <= rtol * float(b.norm()) + 1e-7  # type: ignore[operator,union-attr]


def _unique(params: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """``params`` without repeats (a module shared by the reference and the student's is listed once)."""
    return list({id(p): p for p in params}.values())


DETACHED_HINT = ("Gradients flow back along every path of the forward pass unless a path is cut from the graph: "
                 "look for .detach(), .data or torch.no_grad() in your forward. Training needs the gradient of "
                 "every path, the shortcut's above all.")  # fmt: skip
SHORTCUT_DETACHED = "the shortcut is detached from the graph: no gradient flows through it"
INPUT_DETACHED = "the input is detached from the graph: no gradient flows back to it"


def _check_gradients(ref: nn.Module, built: nn.Module, placement: Placement, x: torch.Tensor, seed: int, call: str,
                     args: tuple, levels: tuple[str, ...]) -> Feedback | list[str]:  # fmt: skip
    """Compare gradients after outputs agreed under ``placement``: a Feedback naming what differs, or the notes
    (an extra tensor that neither changes the output nor gets a gradient) for a right answer."""
    given = _arg_modules(args)
    given_params = _unique([p for m in given for p in m.parameters(recurse=False)])
    ref_params = _unique(list(ref.parameters()))
    stu_params = _unique([*built.parameters(), *given_params])
    r = _gradients(ref, x, seed, ref_params)
    if r.error is not None:
        raise RuntimeError(f"backpropagation through the reference failed ({first_error_line(r.error)}): fix the "
                           "exercise")  # fmt: skip
    s = _gradients(built, x, seed, stu_params)
    if s.error is not None:
        return Feedback(False, f"{call} gives the right outputs, but backpropagating through it failed: "
                               f"{first_error_line(s.error)}.", levels)  # fmt: skip

    def wrong(name: str, hint: str = DETACHED_HINT) -> Feedback:
        return Feedback(False, f"{call} gives the right outputs, but not the right gradients: {name}.",
                        (hint, *levels[1:]), mistake=name)  # fmt: skip

    if not s.connected and r.connected:
        return wrong("the output is cut from the graph: no gradient flows back through your module at all")
    if _zero(s.input) and not _zero(r.input):
        return wrong(INPUT_DETACHED)
    paths = {id(m): p for p, m in built.named_modules()}
    given_ids = {id(m) for m in given}

    def label(m: nn.Module) -> str:
        path, kind = paths.get(id(m)), type(m).__name__
        if id(m) in given_ids:
            return f"{path} (the module passed in, {kind})" if path else f"the module passed in ({kind})"
        return f"your {path} ({kind})" if path else f"your module ({kind})"

    # Placed pairs, and the modules passed in (shared by both) with their submodules, in the student's order.
    top = [item for a in args for item in (a if isinstance(a, (list, tuple)) else (a,)) if isinstance(item, nn.Module)]
    pairs = list(placement.pairs)
    pairs += [(m, m) for m in given if all(m is not t for _, t in pairs) and (_own_tensors(m) or m in top)]
    order = {id(m): i for i, m in enumerate(built.modules())}
    pairs.sort(key=lambda pair: order.get(id(pair[1]), -1))
    registered = {id(p) for p in built.parameters()}
    for rm, sm in pairs:
        if r.fed.get(id(rm)) and s.fed.get(id(sm)) is False:
            return wrong(f"the input of {label(sm)} is detached from the graph: no gradient flows back through it")
    for rm, sm in pairs:
        for k, rp in rm._parameters.items():
            sp = sm._parameters.get(k)
            if rp is None or sp is None:
                continue
            if id(sp) not in registered:
                return wrong(f"{label(sm)} is not registered in your module: its parameters are missing from "
                             ".parameters(), so an optimizer would never train them",
                             "Assign the module passed in to an attribute of your module in __init__, so that "
                             "nn.Module registers it as a submodule; a plain list or dict hides it from "
                             ".parameters().")  # fmt: skip
            rg, sg = r.params.get(id(rp)), s.params.get(id(sp))
            if _zero(sg) and not _zero(rg):
                return wrong(f"no gradient reaches {label(sm)}'s {k}: it is computed on a path cut from the graph")
            if not _agree(sg, rg):
                return wrong(f"the gradient of {label(sm)}'s {k} differs from the reference's",
                             "Every operation of the forward pass shapes the gradients: an operation whose output "
                             "matches but whose gradient does not (a .detach(), .data, an in-place trick) changes "
                             "how the module trains.")  # fmt: skip
    if not _agree(s.input, r.input):
        return wrong(SHORTCUT_DETACHED)
    notes = []
    for path, m in placement.extra:
        own = [p for p in m._parameters.values() if p is not None]
        desc = _describe_extra(path, m)
        if any(not _zero(s.params.get(id(p))) for p in own):
            return Feedback(False, f"{call} has {desc}, which the reference does not, and it receives a gradient: "
                                   "it would change how your module trains.",
                            ("Compare your __init__ with the exercise's description: every layer it creates "
                             "should be one the block needs.", *levels[1:]),
                            mistake=f"an extra {type(m).__name__} that the reference does not have")  # fmt: skip
        notes.append(f"your module has {desc}, which the reference does not; it changes neither the output nor "
                     "any gradient, so it can go.")  # fmt: skip
    return notes


def _diagnose(built, got, ref, args, inputs, mistakes, what, levels, placement, atol) -> Feedback:
    call = f"{what}{_short(args)}"
    for mistake in mistakes:
        try:
            wrong = mistake.build(*args)
            _copy_shared(ref, wrong)
            places = place_weights(wrong, built, extra_ok=True)
        except Exception:  # noqa: BLE001 - a variant that does not fit this student's module
            continue
        wrong_out = _outputs(wrong, inputs)
        for place in places:
            place()
            if _same(_outputs(built, inputs), wrong_out, atol):
                return Feedback(False, f"{call} behaves like a block with a known mistake: {mistake.name}.",
                                (mistake.hint, *levels[1:]), mistake=mistake.name)  # fmt: skip
    errors = [o for o in (got or []) if isinstance(o, Exception)]
    if errors:
        return Feedback(False, f"Running {call} on an input of shape {tuple(inputs[0].shape)} failed: "
                               f"{first_error_line(errors[0])}.", levels,
                        placeholder=isinstance(errors[0], NotImplementedError))  # fmt: skip
    if placement:
        return Feedback(False, f"{call} is not built like the reference: {placement}.", levels)
    bad = next((o for o in got if not isinstance(o, torch.Tensor)), None) if got else None
    if bad is not None:
        forward = getattr(type(built), "forward", None)
        untouched = _no_answer(bad) and forward is not None and _is_placeholder(forward)
        return Feedback(False, f"{call} should return a tensor; it returned {type(bad).__name__}.", levels,
                        placeholder=untouched)  # fmt: skip
    expected = _run(ref, inputs[0], False)
    if got and got[0].shape != expected.shape:
        return Feedback(False, f"{call} should output {tuple(expected.shape)} for input {tuple(inputs[0].shape)}; "
                               f"got {tuple(got[0].shape)}.", levels)  # fmt: skip
    return Feedback(False, f"{call} computes something different from the reference with the same weights.", levels)


@torch.no_grad()
def _copy_shared(source: nn.Module, target: nn.Module) -> None:
    """Copy tensors present in both under the same name and shape (variants share the reference's names)."""
    theirs = source.state_dict()
    for k, v in target.state_dict().items():
        if k in theirs and theirs[k].shape == v.shape:
            v.copy_(theirs[k])


def not_a_function(student: object, what: str, levels: tuple[str, ...], signature: str = "") -> Feedback | None:
    """Feedback where ``student`` is not callable (a placeholder where it is ``...`` or None); None otherwise.
    ``signature`` (``"(per_rank) -> list"``) says what the function takes and gives."""
    if callable(student):
        return None
    kind = f"a function {signature}" if signature else "a function"
    return Feedback(False, f"Expected {kind} for {what}, got {type(student).__name__} {student!r}.", levels,
                    placeholder=_no_answer(student))  # fmt: skip


def call_student(student: Callable, args: tuple, call: str, levels: tuple[str, ...]) -> tuple[object, Feedback | None]:
    """``(student(*args), None)``, or ``(None, feedback)`` where the student's function raises or returns None;
    ``call`` names the call in the message (``your shard(order of 10, world=4, rank=1)``)."""
    try:
        got = student(*args)
    except Exception as exc:  # noqa: BLE001 - the student's code
        return None, Feedback(False, f"{call} failed: {first_error_line(exc)}.", levels,
                              placeholder=isinstance(exc, NotImplementedError))  # fmt: skip
    if got is None:
        return None, Feedback(False, f"{call} returned None: did you forget to return?", levels,
                              placeholder=_is_placeholder(student))  # fmt: skip
    return got, None


def check_function(student: object, reference: Callable, cases: Sequence[tuple], what: str,
                   mistakes: Sequence[Mistake] = (), hint: Hints = "",
                   same: Callable[[object, object], bool] | None = None) -> Feedback:  # fmt: skip
    """Does ``student(*case)`` return what ``reference(*case)`` does, for every case?"""
    same = same or _equal
    levels = _levels(hint)
    if (refused := not_a_function(student, what, levels)) is not None:
        return refused
    for case in cases:
        expected = reference(*case)
        got, failed = call_student(student, case, f"{what}{_short(case)}", levels)
        if failed is not None:
            return failed
        try:
            ok = same(got, expected)
        except Exception:  # noqa: BLE001 - wrong type or shape
            ok = False
        if not ok:
            for mistake in mistakes:
                if all(_safe_same(same, student, mistake.build, c) for c in cases):
                    return Feedback(False, f"{what} behaves like a known mistake: {mistake.name}.",
                                    (mistake.hint, *levels[1:]), mistake=mistake.name)  # fmt: skip
            return Feedback(False, f"{what}{_short(case)} returned {_brief(got)}; expected {_brief(expected)}.", levels)
    return Feedback(True, f"{what} gives the reference's result in all {len(cases)} cases.")


def _safe_same(same, student, other, case) -> bool:
    try:
        return bool(same(student(*case), other(*case)))
    except Exception:  # noqa: BLE001
        return False


def _equal(a: object, b: object) -> bool:
    if isinstance(b, torch.Tensor):
        return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(a.float(), b.float(), atol=1e-6)
    if isinstance(b, float):
        return math.isclose(float(a), b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def _short(case: tuple) -> str:
    """An argument tuple as the student would write it, with tensors and modules named, not printed."""
    return "(" + ", ".join(map(_short_arg, case)) + ")"


def _short_arg(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"tensor{tuple(value.shape)}"
    if isinstance(value, nn.Sequential):
        return "Sequential(" + ", ".join(_short_arg(m) for m in value) + ")"
    if isinstance(value, nn.Module):
        return type(value).__name__
    return repr(value)


def _brief(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}" if value.numel() > 6 else repr(value.tolist())
    return _fmt(value)


# --- Placeholders ---------------------------------------------------------------------------------------------

_INERT = {"RESUME", "NOP", "LOAD_CONST", "RETURN_CONST", "RETURN_VALUE", "POP_TOP", "CACHE"}


def _is_placeholder(answer: object) -> bool:
    """The untouched placeholder of an exercise cell: ``...``, None, an empty string, a function whose body is
    ``...``/``pass``/a docstring, or a function or class (its ``__init__``) that raises NotImplementedError."""
    if _no_answer(answer) or (isinstance(answer, str) and not answer.strip()):
        return True
    fn = answer.__dict__.get("__init__") if isinstance(answer, type) else answer
    code = getattr(fn, "__code__", None)
    if not isinstance(code, types.CodeType):
        return False
    if "NotImplementedError" in code.co_names:
        return True
    if isinstance(answer, type):
        return False
    try:
        ops = {ins.opname for ins in dis.get_instructions(code)}
    except Exception:  # noqa: BLE001
        return False
    return ops <= _INERT and all(c is None or c is ... or isinstance(c, str) for c in code.co_consts)


# --- Registry, recording, hints and scorecard -----------------------------------------------------------

Key = tuple[str, str]

#: Every registered exercise: (chapter, name) -> (title, kind).
EXERCISES: dict[Key, tuple[str, str]] = {}
#: The arguments of each exercise's last call in this kernel: (chapter, name) -> (args, kwargs).
ANSWERS: dict[Key, tuple[tuple, dict]] = {}
#: How many times each exercise's checker was called in this kernel: (chapter, name) -> count.
ATTEMPTS: dict[Key, int] = {}
_RESULTS: dict[Key, bool] = {}
_WRONG: dict[Key, int] = {}
_CHECKERS: dict[Key, Callable[..., Feedback]] = {}
_ALLOW: dict[Key, tuple] = {}
_HINTS: dict[Key, tuple[str, ...]] = {}
_PROBED: dict[Key, tuple[str, ...]] = {}
_LAST_CALL: dict[Key, int] = {}
_calls = itertools.count(1)


_MISSING = object()


def _answer_of(checker: Callable, args: tuple, kwargs: dict) -> object:
    """The answer in a call: the first positional argument, or the checker's first parameter given by keyword."""
    if args:
        return args[0]
    try:
        first = next(iter(inspect.signature(checker).parameters), None)
    except (TypeError, ValueError):
        return _MISSING
    return kwargs.get(first, _MISSING) if first else _MISSING


def _evaluate(key: Key, args: tuple, kwargs: dict) -> Feedback:
    """Run exercise ``key``'s checker on an answer, refusing the book's code; never raises, records nothing."""
    checker, allow = _CHECKERS[key], _ALLOW.get(key, ())
    kind = EXERCISES[key][1]
    answer = _MISSING
    try:
        answer = _answer_of(checker, args, kwargs)
        origin = None
        if answer is not _MISSING and not _TRUSTED.get():
            origin = book_code(answer, allow, instances=kind == "code")
        if origin:
            feedback = _refusal(answer, origin)
        else:
            token = _ALLOWED.set(allow)
            try:
                feedback = checker(*args, **kwargs)
            finally:
                _ALLOWED.reset(token)
            if not isinstance(feedback, Feedback):
                feedback = Feedback(False, f"The checker returned {type(feedback).__name__}, not a verdict: report "
                                           "this to your instructor.")  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - the student sees feedback, never a traceback
        feedback = Feedback(False, f"The checker could not run your answer: {first_error_line(exc)}.")
    if not feedback.hints and key in _HINTS:
        feedback.hints = _HINTS[key]
    try:
        if answer is not _MISSING and _is_placeholder(answer):
            feedback.placeholder = True
    except Exception:  # noqa: BLE001 - an answer too odd to inspect is simply not a placeholder
        pass
    feedback.exercise = key
    return feedback


def exercise(chapter: str, title: str, kind: str, *, allow: Sequence[object] = (), hint: Hints = None):
    """Register a checker: its calls never raise, are counted and recorded, and their verdicts feed
    :func:`scorecard`.

    ``kind`` is one of :data:`KINDS`. The first positional argument (the answer) is refused when it is
    the book's own code (see :func:`book_code`), except the classes or functions in ``allow``, which the
    exercise's task legitimately uses (check_module honours them too). ``hint``, where given, is the
    exercise's hint levels for :func:`hint` and for feedback that carries none of its own.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")

    def wrap(checker):
        key = (chapter, checker.__name__)
        EXERCISES[key] = (title, kind)
        _CHECKERS[key] = checker
        _ALLOW[key] = tuple(allow)
        if hint is not None:
            _HINTS[key] = _levels(hint)
        _PROBED.pop(key, None)

        @functools.wraps(checker)
        def checked(*args, **kwargs) -> Feedback:
            ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
            ANSWERS[key] = (args, kwargs)
            _LAST_CALL[key] = next(_calls)
            feedback = _evaluate(key, args, kwargs)
            if not feedback.correct and not feedback.placeholder:
                _WRONG[key] = _WRONG.get(key, 0) + 1
            feedback.level = 2 if _WRONG.get(key, 0) >= 2 else 1
            feedback.attempt = ATTEMPTS[key]
            _RESULTS[key] = feedback.correct
            return feedback

        checked.exercise_key = key  # type: ignore[attr-defined]
        checked.allow = tuple(allow)  # type: ignore[attr-defined]
        return checked

    return wrap


def recheck(chapter: str, name: str) -> Feedback | None:
    """Check exercise ``(chapter, name)`` again on its last recorded answer, without counting an attempt or
    changing the scorecard (for a grader); None where the exercise was never answered or is unknown."""
    key = (chapter, name)
    if key not in ANSWERS or key not in _CHECKERS:
        return None
    args, kwargs = ANSWERS[key]
    return _evaluate(key, args, kwargs)


def reset(chapter: str | None = None) -> None:
    """Forget this kernel's answers, attempts and verdicts (of ``chapter``, or of all chapters): the state a
    fresh kernel starts from. The registry of exercises stays."""
    for table in (ANSWERS, ATTEMPTS, _RESULTS, _WRONG, _LAST_CALL):
        for key in [k for k in table if chapter is None or k[0] == chapter]:
            del table[key]


def _unregister(chapter: str, name: str) -> None:
    """Remove an exercise and everything recorded about it (tests register throwaway exercises)."""
    for table in (EXERCISES, ANSWERS, ATTEMPTS, _RESULTS, _WRONG, _CHECKERS, _ALLOW, _HINTS, _PROBED, _LAST_CALL):
        table.pop((chapter, name), None)  # type: ignore[attr-defined]


class HintText(str):
    """A hint returned by :func:`hint`: a str that a notebook shows as text, without quotes."""

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return (f"<div style='background:#e3f2fd;border-left:4px solid #1565c0;padding:0.5em 0.8em;margin:0.3em 0'>"
                f"{html.escape(str(self))}</div>")  # fmt: skip


def _resolve(checker_or_name: object, chapter: str | None) -> Key | str:
    """The exercise key for a decorated checker, a name or "chapter.name"; or a message saying why not."""
    key = getattr(checker_or_name, "exercise_key", None)
    if isinstance(key, tuple) and key in EXERCISES:
        return key
    if not isinstance(checker_or_name, str):
        return f"{checker_or_name!r} is not an exercise: pass the checker (ex.basic_block) or its name."
    name = checker_or_name.strip()
    if "." in name and chapter is None:
        chapter, name = name.split(".", 1)
    found = [k for k in EXERCISES if k[1] == name and (chapter is None or k[0] == chapter)]
    if not found:
        return f"There is no exercise named {checker_or_name!r}."
    # The same name in several chapters: the one this kernel tried last (the chapter being worked on).
    return max(found, key=lambda k: _LAST_CALL.get(k, 0))


def _hint_levels(key: Key) -> tuple[str, ...]:
    """An exercise's hint levels: registered with :func:`exercise`, else those its checker gives an empty
    answer (each required positional argument None), computed once."""
    if key in _HINTS:
        return _HINTS[key]
    if key not in _PROBED:
        checker = _CHECKERS[key]
        try:
            required = [p for p in inspect.signature(checker).parameters.values()
                        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]  # fmt: skip
            feedback = checker(*([None] * max(1, len(required))))
            _PROBED[key] = feedback.hints if isinstance(feedback, Feedback) else ()
        except Exception:  # noqa: BLE001 - a checker that cannot take an empty answer has no hint to give here
            _PROBED[key] = ()
    return _PROBED[key]


def hint(checker_or_name: object, level: int = 2, chapter: str | None = None) -> HintText:
    """The hint of an exercise at ``level`` (1: what to look at; 2: more), without trying an answer.

    ``checker_or_name`` is the checker (``ex.hint(ex.basic_block)``), its name (``ex.hint("basic_block")``)
    or ``"chapter.name"``. A level beyond the exercise's last gives the last. Never raises: an unknown
    exercise gives a message instead.
    """
    try:
        key = _resolve(checker_or_name, chapter)
        if isinstance(key, str):
            return HintText(key)
        levels = _hint_levels(key)
        if not levels:
            return HintText(f"No hint is written for {EXERCISES[key][0]!r}: reread the exercise's section.")
        index = min(max(int(level), 1), len(levels)) - 1
        return HintText(levels[index])
    except Exception as exc:  # noqa: BLE001 - a student's call never raises
        return HintText(f"No hint available: {first_error_line(exc)}.")


class Scorecard:
    """This kernel session's answers, per exercise: done, not yet, or not tried."""

    def __init__(self, chapter: str | None) -> None:
        self.rows = [(ch, title, kind, _RESULTS.get((ch, name))) for (ch, name), (title, kind) in EXERCISES.items()
                     if chapter is None or ch == chapter]  # fmt: skip
        self.chapter = chapter

    @property
    def done(self) -> int:
        return sum(1 for *_, ok in self.rows if ok)

    @staticmethod
    def _status(ok: bool | None) -> str:
        return {True: "done", False: "not yet", None: "not tried"}[ok]

    def __str__(self) -> str:
        head = f"Scorecard{' for ' + self.chapter if self.chapter else ''}: {self.done} of {len(self.rows)} done"
        return "\n".join([head, *(f"  [{'x' if ok else ' '}] {title} ({kind}): {self._status(ok)}"
                                  for _, title, kind, ok in self.rows)])  # fmt: skip

    __repr__ = __str__

    def _repr_html_(self) -> str:
        colour = {True: "#2e7d32", False: "#ef6c00", None: "#757575"}
        rows = "".join(
            f"<tr><td style='text-align:left'>{html.escape(title)}</td><td>{kind}</td>"
            f"<td style='color:{colour[ok]};font-weight:bold'>{self._status(ok)}</td></tr>"
            for _, title, kind, ok in self.rows
        )
        return (f"<p><b>Scorecard</b>: {self.done} of {len(self.rows)} exercises done in this session</p>"
                "<table><thead><tr><th style='text-align:left'>exercise</th><th>kind</th><th>status</th></tr>"
                f"</thead><tbody>{rows}</tbody></table>")  # fmt: skip


def scorecard(chapter: str | None = None) -> Scorecard:
    """The exercises of ``chapter`` (all chapters if None) with this session's verdicts."""
    return Scorecard(chapter)

"""The checker engine: instant, specific feedback that never crashes on the student's code.

Every checker returns a :class:`Feedback` (a coloured box in a notebook, one
line of text elsewhere; ``.correct`` for tests and graders) and records the
verdict for :func:`scorecard`. Kinds of checker:

* :func:`check_number`, :func:`check_shape`, :func:`check_choice`;
* :func:`check_module`: builds the student's module and the reference with
  the same arguments, copies the reference's weights into the student's
  (:func:`place_weights`), and compares outputs in training and evaluation
  mode for several argument sets; where they differ it tries known wrong
  variants and names the one the student's module behaves like;
* :func:`check_function`: the same for a plain function.
"""

from __future__ import annotations

import copy
import functools
import html
import itertools
import math
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

import torch
from torch import nn

__all__ = ["Feedback", "Mistake", "check_number", "check_shape", "check_choice", "check_module", "check_function",
           "place_weights", "PlacementError", "exercise", "scorecard", "EXERCISES",
           "randomize_batchnorm"]  # fmt: skip


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


@dataclass
class Feedback:
    """A checker's verdict: right or not, what was expected, what came back, a hint."""

    correct: bool
    message: str
    hint: str = ""

    def __str__(self) -> str:
        mark = "Correct!" if self.correct else "Not yet."
        return f"{mark} {self.message}" + (f" Hint: {self.hint}" if self.hint and not self.correct else "")

    __repr__ = __str__

    def __bool__(self) -> bool:
        return self.correct

    def _repr_html_(self) -> str:
        colour, border, mark = (
            ("#e8f5e9", "#2e7d32", "✔ Correct!") if self.correct else ("#fff3e0", "#ef6c00", "✘ Not yet.")
        )
        hint = f"<br><i>Hint:</i> {html.escape(self.hint)}" if self.hint and not self.correct else ""
        return (
            f"<div style='background:{colour};border-left:4px solid {border};padding:0.5em 0.8em;margin:0.3em 0'>"
            f"<b>{mark}</b> {html.escape(self.message)}{hint}</div>"
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


# --- Numbers, shapes, choices ------------------------------------------------------


def _significant_digits(value: float) -> int:
    digits = Decimal(repr(float(value))).normalize().as_tuple().digits
    return max(1, len(digits))


def _round_sig(value: float, digits: int) -> float:
    if value == 0:
        return 0.0
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


def check_number(answer: object, expected: float, what: str, hint: str = "", rel_tol: float | None = None) -> Feedback:
    """Is ``answer`` the number ``expected``?

    Integers must match exactly. A non-integer ``expected`` is matched to the
    answer's own precision: the answer is right when ``expected``, rounded to
    as many significant digits as the answer gives (at least two), equals it
    (2.6 and 2.59 are both right for 1.1**10 = 2.5937...). One unit off in
    the last digit is "close: give more digits". ``rel_tol`` replaces the
    rule with a relative tolerance.
    """
    if _no_answer(answer):
        return Feedback(False, f"No answer yet for {what}: replace the placeholder with a number.", hint)
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


def check_shape(answer: object, expected: Sequence[int], what: str, hint: str = "") -> Feedback:
    """Is ``answer`` the shape ``expected``? Accepts tuples, lists and ``torch.Size``."""
    expected = tuple(expected)
    if _no_answer(answer):
        return Feedback(False, f"No answer yet for {what}: give a tuple of {len(expected)} ints.", hint)
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


def check_choice(answer: object, expected: str, options: dict[str, str], what: str, hint: str = "") -> Feedback:
    """Multiple choice: ``answer`` is one key of ``options`` (case-insensitive)."""
    if _no_answer(answer):
        return Feedback(False, f"No answer yet for {what}: answer with one of {', '.join(options)}.", hint)
    key = str(answer).strip().upper()
    if key not in options:
        return Feedback(False, f"Answer with one of {', '.join(options)} for {what}; you gave {answer!r}.", hint)
    if key == expected:
        return Feedback(True, f"{key}: {options[key]}")
    return Feedback(False, f"{key} ({options[key]}) is not it.", hint)


# --- Placing the reference's weights into the student's module -------------------------


class PlacementError(ValueError):
    """The reference's tensors cannot all be placed into the student's module."""


def _units(module: nn.Module) -> list[tuple[str, nn.Module, tuple]]:
    """Modules that own tensors directly, in registration order, with a signature of their tensors."""
    out = []
    for path, m in module.named_modules():
        own = [(k, tuple(v.shape)) for k, v in itertools.chain(m._parameters.items(), m._buffers.items())
               if v is not None]  # fmt: skip
        if own:
            out.append((path, m, (type(m).__name__, tuple(own))))
    return out


def _describe(path: str, m: nn.Module) -> str:
    weight = getattr(m, "weight", None)
    shape = tuple(weight.shape) if isinstance(weight, torch.Tensor) else ""
    return f"{path or 'the module itself'} ({type(m).__name__}{shape})"


def place_weights(source: nn.Module, target: nn.Module, limit: int = 24) -> list[Callable[[], None]]:
    """Ways to copy every tensor of ``source`` into ``target``; each call of one does the copy.

    By name where the state_dict keys match; else by matching modules of the
    same type and tensor shapes in registration order, where several modules
    of one signature could take each other's place (two BatchNorm2d(64), say)
    each order among them is a candidate (at most ``limit``). Raises
    :class:`PlacementError` naming what could not be placed.
    """
    src_state, tgt_state = source.state_dict(), target.state_dict()
    if src_state.keys() == tgt_state.keys() and all(src_state[k].shape == tgt_state[k].shape for k in src_state):
        return [functools.partial(target.load_state_dict, copy.deepcopy(src_state))]
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
    if extra:
        raise PlacementError(f"your module has {_describe(extra[0][0], extra[0][1])}, which the reference does not")
    orders = [list(itertools.permutations(by_sig[sig])) for sig in groups]
    candidates = []
    for choice in itertools.islice(itertools.product(*orders), limit):
        pairs = [(s[1], t[1]) for sig, perm in zip(groups, choice) for s, t in zip(groups[sig], perm)]
        candidates.append(functools.partial(_copy_pairs, pairs))
    return candidates


@torch.no_grad()
def _copy_pairs(pairs: list[tuple[nn.Module, nn.Module]]) -> None:
    for s, t in pairs:
        for k, v in itertools.chain(s._parameters.items(), s._buffers.items()):
            if v is not None:
                getattr(t, k).copy_(v)


# --- Behaviour: modules and functions -------------------------------------------------------


@dataclass(frozen=True)
class Mistake:
    """A known wrong version of the exercise and what to say when the student's code behaves like it."""

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
        return Feedback(False, f"Expected an nn.Module class, got {type(student).__name__} {student!r}.")
    try:
        built = student(*args)
    except TypeError as exc:
        return Feedback(False, f"Building {call} failed: {first_error_line(exc)}. The checker calls it with these "
                               "positional arguments only; give every other argument a default.")  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - the student's code may raise anything
        return Feedback(False, f"Building {call} failed: {first_error_line(exc)}.")
    if not isinstance(built, nn.Module):
        return Feedback(False, f"{call} should give an nn.Module, gave {type(built).__name__}.")
    return built


def check_module(student: object, reference: Callable[..., nn.Module], arg_sets: Sequence[tuple],
                 input_shape: Callable[[tuple], tuple], what: str, mistakes: Sequence[Mistake] = (),
                 hint: str = "", atol: float = 1e-5, seed: int = 0) -> Feedback:  # fmt: skip
    """Does ``student(*args)`` behave as ``reference(*args)`` for every argument set?

    For each set the reference is built (with randomised BatchNorm), its
    weights are placed into the student's module (:func:`place_weights`),
    and both run on random inputs of ``input_shape(args)`` in evaluation and
    training mode; outputs must agree to ``atol``. Where they do not, each
    of ``mistakes`` gets the same weights, and the first one the student's
    module agrees with is named.
    """
    for args in arg_sets:
        built = _build(student, args, what)
        if isinstance(built, Feedback):
            built.hint = built.hint or hint
            return built
        torch.manual_seed(seed)
        ref = reference(*args)
        randomize_batchnorm(ref, seed)
        g = torch.Generator().manual_seed(seed + 1)
        inputs = [torch.randn(input_shape(args), generator=g) for _ in range(2)]
        expected = _outputs(ref, inputs)
        try:
            candidates = place_weights(ref, built)
        except PlacementError as exc:
            # Compare as built: a module that wraps the very objects passed in (a residual wrapper) can
            # still be right; for any other, the placement message explains the difference.
            candidates, placement = [lambda: None], str(exc)
        else:
            placement = ""
        got = None
        for place in candidates:
            place()
            got = _outputs(built, inputs)
            if _same(got, expected, atol):
                break
        else:
            return _diagnose(built, got, ref, args, inputs, mistakes, what, hint, placement, atol)
        if any(isinstance(o, Exception) for o in expected):
            raise RuntimeError(f"the reference fails for {args}: fix the exercise")
    names = ", ".join(map(_short, arg_sets))
    return Feedback(True, f"{what} matches the reference in training and evaluation mode for {names}.")


def _diagnose(built, got, ref, args, inputs, mistakes, what, hint, placement, atol) -> Feedback:
    call = f"{what}{_short(args)}"
    for mistake in mistakes:
        try:
            wrong = mistake.build(*args)
            _copy_shared(ref, wrong)
            places = place_weights(wrong, built)
        except Exception:  # noqa: BLE001 - a variant that does not fit this student's module
            continue
        wrong_out = _outputs(wrong, inputs)
        for place in places:
            place()
            if _same(_outputs(built, inputs), wrong_out, atol):
                return Feedback(False, f"{call} behaves like a block with a known mistake: {mistake.name}.",
                                mistake.hint)  # fmt: skip
    errors = [o for o in (got or []) if isinstance(o, Exception)]
    if errors:
        return Feedback(False, f"Running {call} on an input of shape {tuple(inputs[0].shape)} failed: "
                               f"{first_error_line(errors[0])}.", hint)  # fmt: skip
    if placement:
        return Feedback(False, f"{call} is not built like the reference: {placement}.", hint)
    bad = next((o for o in got if not isinstance(o, torch.Tensor)), None) if got else None
    if bad is not None:
        return Feedback(False, f"{call} should return a tensor; it returned {type(bad).__name__}.", hint)
    expected = _run(ref, inputs[0], False)
    if got and got[0].shape != expected.shape:
        return Feedback(False, f"{call} should output {tuple(expected.shape)} for input {tuple(inputs[0].shape)}; "
                               f"got {tuple(got[0].shape)}.", hint)  # fmt: skip
    return Feedback(False, f"{call} computes something different from the reference with the same weights.", hint)


@torch.no_grad()
def _copy_shared(source: nn.Module, target: nn.Module) -> None:
    """Copy tensors present in both under the same name and shape (variants share the reference's names)."""
    theirs = source.state_dict()
    for k, v in target.state_dict().items():
        if k in theirs and theirs[k].shape == v.shape:
            v.copy_(theirs[k])


def check_function(student: object, reference: Callable, cases: Sequence[tuple], what: str,
                   mistakes: Sequence[Mistake] = (), hint: str = "",
                   same: Callable[[object, object], bool] | None = None) -> Feedback:  # fmt: skip
    """Does ``student(*case)`` return what ``reference(*case)`` does, for every case?"""
    same = same or _equal
    if not callable(student):
        return Feedback(False, f"Expected a function for {what}, got {type(student).__name__} {student!r}.", hint)
    for case in cases:
        expected = reference(*case)
        try:
            got = student(*case)
        except Exception as exc:  # noqa: BLE001
            return Feedback(False, f"{what}{_short(case)} failed: {first_error_line(exc)}.", hint)
        if got is None:
            return Feedback(False, f"{what}{_short(case)} returned None: did you forget to return?", hint)
        try:
            ok = same(got, expected)
        except Exception:  # noqa: BLE001 - wrong type or shape
            ok = False
        if not ok:
            for mistake in mistakes:
                if all(_safe_same(same, student, mistake.build, c) for c in cases):
                    return Feedback(False, f"{what} behaves like a known mistake: {mistake.name}.", mistake.hint)
            return Feedback(False, f"{what}{_short(case)} returned {_brief(got)}; expected {_brief(expected)}.", hint)
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


# --- Registry and scorecard -------------------------------------------------------------

#: Every registered exercise: (chapter, name) -> (title, kind).
EXERCISES: dict[tuple[str, str], tuple[str, str]] = {}
_RESULTS: dict[tuple[str, str], bool] = {}


def exercise(chapter: str, title: str, kind: str):
    """Register a checker: its calls never raise and their verdicts feed :func:`scorecard`."""
    if kind not in ("code", "number", "choice", "shape"):
        raise ValueError(f"kind must be code, number, choice or shape, got {kind!r}")

    def wrap(checker):
        key = (chapter, checker.__name__)
        EXERCISES[key] = (title, kind)

        @functools.wraps(checker)
        def checked(*args, **kwargs) -> Feedback:
            try:
                feedback = checker(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the student sees feedback, never a traceback
                feedback = Feedback(False, f"The checker could not run your answer: {first_error_line(exc)}.")
            _RESULTS[key] = feedback.correct
            return feedback

        return checked

    return wrap


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

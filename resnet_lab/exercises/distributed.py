"""Exercises of the chapter "Training on many devices"."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence

import torch

from ..distributed import pad_order, padding, ring_allreduce_bytes
from . import own_run
from .engine import (
    Feedback,
    Mistake,
    call_student,
    check_function,
    check_written,
    exercise,
    first_error_line,
    not_a_function,
)
from .engine import hint as hint  # re-exported: ex.hint(ex.<exercise>) or ex.hint("<exercise>", level=2)

CHAPTER = "distributed"

# --- An averaging all-reduce by hand ------------------------------------------------------------------------


def _reference_average(per_rank: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """What every rank holds after an averaging all-reduce: the mean of all ranks' tensors, a copy each."""
    mean = torch.stack(list(per_rank)).mean(0)
    return [mean.clone() for _ in per_rank]


def _summed(per_rank: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    total = torch.stack(list(per_rank)).sum(0)
    return [total.clone() for _ in per_rank]


def _one_tensor(per_rank: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.stack(list(per_rank)).mean(0)


def _in_place(per_rank: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    mean = torch.stack(list(per_rank)).mean(0)
    for t in per_rank:
        t.copy_(mean)
    return list(per_rank)


AVERAGE_HINT = (
    "See the section \"Data parallelism by hand\": after the all-reduce every rank holds the same gradient, the "
    "one of the whole batch, made from every rank's own gradient.",
    "Add the ranks' tensors elementwise and divide by the number of ranks (torch.distributed.all_reduce only "
    "sums); then give each rank its own copy of that average, in a list as long as the input. Build new "
    "tensors and leave the ones passed in as they were.",
)

AVERAGE_SUMMED = Mistake(
    "every rank gets the sum, not the mean", _summed,
    "torch.distributed.all_reduce sums by default: divide by the world size, the number of ranks, so that the "
    "step is the one a single process would take on the combined batch, whatever the number of ranks.")  # fmt: skip
AVERAGE_ONE_TENSOR = Mistake(
    "it returns one tensor, not one per rank", _one_tensor,
    "After an all-reduce every rank holds its own copy of the result: return a list with one tensor per rank "
    "(all equal), as long as the list passed in.")  # fmt: skip
AVERAGE_IN_PLACE = Mistake(
    "it changes the tensors passed in", _in_place,
    "Leave the inputs as they were: an in-place operation (add_, div_, copy_, +=, /=) on a tensor of the list, "
    "or on a name bound to one of them, changes the caller's gradient. Start a total from a new tensor "
    "instead.")  # fmt: skip
AVERAGE_MISTAKES = (AVERAGE_SUMMED, AVERAGE_ONE_TENSOR, AVERAGE_IN_PLACE)


def _gradient_cases() -> list[list[torch.Tensor]]:
    """Per-rank gradients: 2, 3, 4 and 1 ranks, each case its own shape."""
    g = torch.Generator().manual_seed(0)
    return [[torch.randn(shape, generator=g) for _ in range(world)]
            for world, shape in ((2, (3, 4)), (3, (5,)), (4, (2, 3, 3)), (1, (6,)))]  # fmt: skip


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a.detach().double(), b.double(), rtol=1e-5, atol=1e-6)


def _shares_memory(a: torch.Tensor, b: torch.Tensor) -> bool:
    try:
        return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr() and a.numel() > 0
    except Exception:  # noqa: BLE001 - a tensor without storage (a subclass, say) shares nothing
        return False


def _named(mistake: Mistake, call: str, extra: str = "") -> Feedback:
    return Feedback(False, f"{call} behaves like a known mistake: {mistake.name}.{extra}",
                    (mistake.hint, *AVERAGE_HINT[1:]), mistake=mistake.name)  # fmt: skip


def _judge_average(call: str, got: object, given: list, tensors: list, original: list) -> Feedback | None:
    """Feedback on one case's result, None when it is right. ``given`` is the list passed in, ``tensors`` the
    tensors it held, ``original`` their values before the call."""
    world = len(original)
    mean, total = _one_tensor(original), torch.stack(original).sum(0)
    changed = (len(given) != world or any(a is not b for a, b in zip(given, tensors))
               or any(not _close(t, o) for t, o in zip(tensors, original)))  # fmt: skip
    also = " It also changed the tensors passed in." if changed else ""
    if isinstance(got, torch.Tensor):
        held = " (and that one holds the sum, not the mean)" if world > 1 and _close(got, total) else ""
        return _named(AVERAGE_ONE_TENSOR, call, f" It returned a tensor of shape {tuple(got.shape)}{held}; "
                                               f"expected a list of {world}.{also}")  # fmt: skip
    if not isinstance(got, (list, tuple)):
        return Feedback(False, f"{call} returned {type(got).__name__}; expected a list with one tensor per rank.",
                        AVERAGE_HINT)  # fmt: skip
    if len(got) != world:
        return Feedback(False, f"{call} returned {len(got)} item(s) for {world} rank(s); expected one tensor per "
                               "rank, as many as the list passed in.", AVERAGE_HINT)  # fmt: skip
    for r, t in enumerate(got):
        if not isinstance(t, torch.Tensor):
            return Feedback(False, f"{call}: rank {r}'s item is {type(t).__name__}; expected a tensor.", AVERAGE_HINT)
        if t.shape != mean.shape:
            return Feedback(False, f"{call}: rank {r}'s tensor has shape {tuple(t.shape)}; the gradients have shape "
                                   f"{tuple(mean.shape)}, and so does their average.", AVERAGE_HINT)  # fmt: skip
    if world > 1 and all(_close(t, total) for t in got):
        return _named(AVERAGE_SUMMED, call, also)
    wrong = [r for r, t in enumerate(got) if not _close(t, mean)]
    if wrong:
        r = wrong[0]
        return Feedback(False, f"{call}: rank {r}'s tensor is {_brief(got[r])}; expected the mean of the ranks' "
                               f"tensors, {_brief(mean)}.{also}", AVERAGE_HINT)  # fmt: skip
    if changed:
        return _named(AVERAGE_IN_PLACE, call, " Its results are right, but the inputs are not what they were.")
    if any(_shares_memory(t, s) for t in got for s in tensors):
        return Feedback(False, f"{call} returned a tensor passed in (or a view of one) as a rank's result: return "
                               "new tensors, so that changing a result cannot change a rank's gradient.",
                        AVERAGE_HINT)  # fmt: skip
    return None


def _brief(t: torch.Tensor) -> str:
    values = [round(v, 4) for v in t.detach().flatten().tolist()[:4]]
    more = ", ..." if t.numel() > 4 else ""
    return f"[{', '.join(map(str, values))}{more}]"


@exercise(CHAPTER, "An averaging all-reduce by hand", "code", hint=AVERAGE_HINT)
def average_gradients(student: object) -> Feedback:
    """A function ``(per_rank) -> list of tensors``: given each rank's gradient (tensors of one shape), what
    every rank holds after an averaging all-reduce: the mean of all of them, one new tensor per rank."""
    what = "your average"
    if (refused := not_a_function(student, what, AVERAGE_HINT, "(per_rank) -> list of tensors")) is not None:
        return refused
    cases = _gradient_cases()
    for original in cases:
        tensors = [t.clone() for t in original]
        given = list(tensors)
        call = f"{what}({len(original)} tensor{'s' * (len(original) > 1)} of shape {tuple(original[0].shape)})"
        got, failed = call_student(student, (given,), call, AVERAGE_HINT)
        if failed is not None:
            return failed
        try:
            verdict = _judge_average(call, got, given, tensors, original)
        except Exception as exc:  # noqa: BLE001 - an answer too odd to compare
            verdict = Feedback(False, f"{call} returned something that cannot be compared with a list of tensors "
                                      f"({first_error_line(exc)}).", AVERAGE_HINT)  # fmt: skip
        if verdict is not None:
            return verdict
    return Feedback(True, f"{what} gives every rank the mean of all ranks' tensors, as new tensors, and leaves the "
                          f"inputs unchanged, in all {len(cases)} cases (1 to 4 ranks).")  # fmt: skip


# --- The shard a rank gets ----------------------------------------------------------------------------------


def _reference_shard(order: torch.Tensor, world: int, rank: int) -> torch.Tensor:
    """DistributedSampler's contract: pad with the order's own first indices, then every world-th from rank."""
    return pad_order(order, world)[rank::world]


def _no_padding(order: torch.Tensor, world: int, rank: int) -> torch.Tensor:
    return order[rank::world]


def _drop_last(order: torch.Tensor, world: int, rank: int) -> torch.Tensor:
    return order[: len(order) - len(order) % world][rank::world]


def _blocks(order: torch.Tensor, world: int, rank: int) -> torch.Tensor:
    return pad_order(order, world).view(world, -1)[rank]


def _zero_padding(order: torch.Tensor, world: int, rank: int) -> torch.Tensor:
    return torch.cat([order, order.new_zeros(padding(len(order), world))])[rank::world]


SHARD_HINT = (
    "See the section \"Every image once per epoch\": every rank holds the same permutation; it is first made to "
    "split into equal shares, then each rank takes its share by a fixed rule.",
    "First pad: repeat the order's own first indices at its end until its length is a multiple of world (10 "
    "images over 4 ranks: 2 more, 12 in all). Then rank r takes positions r, r + world, r + 2 world, ... of the "
    "padded order: a slice with step world.",
)

SHARD_NO_PADDING = Mistake(
    "it does not pad, so the shards have unequal lengths", _no_padding,
    "Without padding the ranks get different numbers of indices, so they would take different numbers of "
    "steps: at its last step a rank with more would wait forever in the all-reduce for the ranks that have "
    "finished, and DDP hangs. DistributedSampler pads the order so that every rank gets as many.")  # fmt: skip
SHARD_DROP_LAST = Mistake(
    "it drops the last indices instead of padding", _drop_last,
    "That is DistributedSampler(drop_last=True): equal shares, but the images at the end of the order are not "
    "seen this epoch. The default, asked for here, pads with the order's first indices instead.")  # fmt: skip
SHARD_BLOCKS = Mistake(
    "it gives each rank a contiguous block instead of a strided share", _blocks,
    "The contract is strided: rank r takes every world-th index starting at r (rank::world), not a block of "
    "neighbouring positions. Both split the order, but only the strided one is what DistributedSampler "
    "does.")  # fmt: skip
SHARD_WRONG_PADDING = Mistake(
    "it pads with other indices than the order's first ones", _zero_padding,
    "Pad with the order's own first indices (its start, repeated at its end), as DistributedSampler does: "
    "zeros or other indices would train on images the permutation did not draw for this epoch.")  # fmt: skip
SHARD_MISTAKES = (SHARD_NO_PADDING, SHARD_DROP_LAST, SHARD_BLOCKS, SHARD_WRONG_PADDING)

_ORDER10 = (7, 2, 9, 4, 0, 8, 3, 6, 1, 5)
_ORDER12 = (3, 11, 6, 0, 9, 1, 10, 4, 8, 2, 7, 5)
_ORDER7 = (4, 6, 1, 0, 5, 3, 2)


def _shard_cases() -> list[tuple[torch.Tensor, int, int]]:
    """(order, world, rank): no padding; 10 images over 4 and 3 ranks (padded and not); one rank."""
    ten, twelve = torch.tensor(_ORDER10), torch.tensor(_ORDER12)
    return [(twelve, 4, 1), (ten, 4, 3), (ten, 4, 1), (ten, 3, 2), (ten, 3, 0), (ten, 4, 2),
            (torch.tensor(_ORDER7), 1, 0)]  # fmt: skip


def _index_values(got: object) -> tuple[list[int] | None, str]:
    """``got`` as a list of ints, and what is wrong with its type or form ("" if nothing); None if it is no
    sequence of whole numbers."""
    if isinstance(got, torch.Tensor):
        if got.dim() != 1:
            return None, f"a tensor of shape {tuple(got.shape)}; expected a 1-D tensor of indices"
        values = got.detach().cpu().tolist()
        if got.is_floating_point() or got.is_complex() or got.dtype == torch.bool:
            if not all(isinstance(v, (int, float)) and float(v).is_integer() for v in values):
                return None, f"a {got.dtype} tensor; expected indices, a 1-D tensor of integers"
            return [int(v) for v in values], f"a {got.dtype} tensor; indices are integers (torch.long)"
        return [int(v) for v in values], ""
    if isinstance(got, (list, tuple)) and all(isinstance(v, numbers.Integral) for v in got):
        return [int(v) for v in got], ""
    return None, f"{type(got).__name__}; expected a 1-D tensor of indices"


def _contiguous_in(values: list[int], seq: list[int]) -> bool:
    k = len(values)
    return k >= 2 and any(seq[i : i + k] == values for i in range(len(seq) - k + 1))


def _shard_call(case: tuple[torch.Tensor, int, int]) -> str:
    order, world, rank = case
    return f"your shard(order of {len(order)}, world={world}, rank={rank})"


def _shard_mistake(student_values: list[list[int]], cases: list, failing: int) -> tuple[Mistake, str] | None:
    """The known mistake the student's shards show, with what to add to the message; None if none."""
    for mistake in (SHARD_NO_PADDING, SHARD_DROP_LAST):
        if all(v == mistake.build(*c).tolist() for v, c in zip(student_values, cases)):
            extra = ""
            if mistake is SHARD_NO_PADDING:
                order, world, _ = next(c for c in cases if padding(len(c[0]), c[1]))
                lengths = [len(order[r::world]) for r in range(world)]
                extra = (f" With {len(order)} images over {world} ranks, the ranks would get "
                         f"{', '.join(map(str, lengths))} indices.")  # fmt: skip
            return mistake, extra
    order, world, rank = cases[failing]
    values, plain = student_values[failing], order.tolist()
    padded = pad_order(order, world).tolist()
    expected = padded[rank::world]
    if world > 1 and (_contiguous_in(values, padded) or _contiguous_in(values, plain)):
        return SHARD_BLOCKS, f" For rank {rank} of {world} it returned {values}; the strided share is {expected}."
    n = len(plain)
    positions = range(rank, len(padded), world)
    if len(values) == len(expected) and all(v == e for v, e, i in zip(values, expected, positions) if i < n):
        pads = [v for v, i in zip(values, positions) if i >= n]
        what = "zeros" if all(v == 0 for v in pads) else f"{pads}"
        first = [e for e, i in zip(expected, positions) if i >= n]
        return SHARD_WRONG_PADDING, (f" For rank {rank} of {world} (order of {n}) it padded with {what} where the "
                                     f"order's first indices give {first}.")
    return None


@exercise(CHAPTER, "The shard a rank gets", "code", hint=SHARD_HINT)
def rank_shard(student: object) -> Feedback:
    """A function ``(order, world, rank) -> indices``: the indices rank ``rank`` of ``world`` trains on in an
    epoch whose permutation is ``order`` (PyTorch's DistributedSampler contract)."""
    what = "your shard"
    if (refused := not_a_function(student, what, SHARD_HINT, "(order, world, rank) -> indices")) is not None:
        return refused
    cases = _shard_cases()
    values_of, forms = [], []
    for case in cases:
        order, world, rank = case
        call = _shard_call(case)
        got, failed = call_student(student, (order.clone(), world, rank), call, SHARD_HINT)
        if failed is not None:
            return failed
        values, problem = _index_values(got)
        if values is None:
            return Feedback(False, f"{call} returned {problem}.", SHARD_HINT)
        values_of.append(values)
        forms.append(problem)
    wrong = [i for i, (v, c) in enumerate(zip(values_of, cases)) if v != _reference_shard(*c).tolist()]
    if wrong:
        found = _shard_mistake(values_of, cases, wrong[0])
        call = _shard_call(cases[wrong[0]])
        if found:
            mistake, extra = found
            return Feedback(False, f"{what} behaves like a known mistake: {mistake.name}.{extra}",
                            (mistake.hint, *SHARD_HINT[1:]), mistake=mistake.name)  # fmt: skip
        expected = _reference_shard(*cases[wrong[0]]).tolist()
        return Feedback(False, f"{call} returned {values_of[wrong[0]]}; expected {expected}.", SHARD_HINT)
    bad_form = next((f for f in forms if f), "")
    if bad_form:
        return Feedback(False, f"{what} picks the right indices, but returned {bad_form}: a data set cannot be "
                               "indexed with floats.", SHARD_HINT)  # fmt: skip
    return Feedback(True, f"{what} gives each rank the reference's shard in all {len(cases)} cases: with padding, "
                          "without, and on one rank.")  # fmt: skip


# --- The bytes of an all-reduce -----------------------------------------------------------------------------

BYTES_HINT = (
    "See the section \"What it costs\": the ring cuts the gradient into as many chunks as there are ranks and "
    "passes chunks on to the next rank, in two phases.",
    "Each phase (reduce-scatter, then all-gather) takes one step fewer than there are ranks, and in each step a "
    "rank sends one chunk, a 1/N share of the gradient's values. Count both phases, and 4 bytes per fp32 "
    "value.",
)

BYTES_MISTAKES = (
    Mistake("it counts only the reduce-scatter half", lambda p, w: (w - 1) / w * p * 4,
            "The reduce-scatter leaves each rank with one reduced chunk only; the all-gather then sends as many "
            "chunks again so that every rank holds the whole result: count both phases."),
    Mistake("it sends the whole gradient to every other rank", lambda p, w: (w - 1) * p * 4,
            "That is the naive all-reduce, whose cost grows with the number of ranks. The ring sends one chunk "
            "(a 1/N share of the gradient) per step, so each rank sends less than twice the gradient in all."),
    Mistake("it counts values, not bytes", lambda p, w: 2 * (w - 1) / w * p,
            "The question asks for bytes: each fp32 value takes 4 of them."),
    Mistake("it gives twice the gradient, the limit for many ranks", lambda p, w: 2 * p * 4,
            "Twice the gradient is what the cost tends to with many ranks; with N ranks each phase has one step "
            "fewer than N, so the exact count is less: once the gradient at 2 ranks, 1.5 times at 4 (and nothing "
            "on one rank)."),
    Mistake("it adds up the bytes of every rank", lambda p, w: 2 * (w - 1) * p * 4,
            "The question asks for what each rank sends: every rank sends the same amount, at the same time, and "
            "that amount is what the answer counts."),
)


def _same_bytes(a: object, b: object) -> bool:
    return math.isclose(float(a), float(b), rel_tol=1e-3, abs_tol=1e-6)


#: (parameters, ranks): ResNet-20, ResNet-18 and ResNet-50 sizes, two to eight ranks, and one rank.
BYTES_CASES = [(269_722, 4), (11_689_512, 8), (25_557_032, 3), (1_000_000, 2), (269_722, 1)]


@exercise(CHAPTER, "The bytes of an all-reduce", "code", hint=BYTES_HINT)
def allreduce_bytes(student: object) -> Feedback:
    """A function ``(params, world) -> bytes``: the bytes each rank sends in one ring all-reduce of ``params``
    fp32 values among ``world`` ranks."""
    return check_function(student, ring_allreduce_bytes, BYTES_CASES, "your ring_bytes", BYTES_MISTAKES,
                          hint=BYTES_HINT, same=_same_bytes)  # fmt: skip


# --- Written -----------------------------------------------------------------------------------

#: What a written interpretation of the scaling runs is graded on, with the points for each.
RUBRIC_SCALING = (
    ("Quotes the run: both effective batches with their learning rates, their final test errors, the "
     "difference with its standard error, and the verdict's status.", 1),
    ("Explains the status from the verdict's rule: an equivalence within a margin needs the whole band of two "
     "standard errors inside the margin, so a small test set leaves it undecided (or can only find a large "
     "failure), and 'undecided' is not 'the rule holds'; says which way the band leans.", 1),
    ("Names what the run does not cover: one seed each (no seed-to-seed spread), a short schedule on a CIFAR-10 "
     "subset, and the differences from Goyal et al. (both runs warmed up from near zero; each rank's BatchNorm "
     "batch grows with k, where theirs stays at 32 per worker; CIFAR instead of ImageNet).", 1),
    ("Says what would decide: several seeds per batch size and a larger test set (the full 10,000 images), and "
     "possibly larger factors k, where Goyal et al. saw the rule break down.", 1),
)


@exercise(CHAPTER, "Interpret the run: does the linear scaling rule hold here?", "written")
def scaling(answer: object) -> Feedback:
    """A few sentences on the two scaling runs: what the printed errors and verdict show about the linear
    scaling rule with warm-up, what they cannot show, and what would decide."""
    return check_written(
        answer, "the question on the linear scaling rule", own_run.rubric_lines(RUBRIC_SCALING), min_words=50,
        hint=("Read the verdict under 'Read the result': its text gives both errors, the difference and its "
              "standard error; its rule says what 'shown', 'not shown' and 'undecided' mean; the list below it "
              "says what the test set can resolve.",
              "Cover what the rubric asks: the numbers and the status, why the rule gives that status, what one "
              "run of each on this data cannot cover, and what runs would decide."),
    )  # fmt: skip

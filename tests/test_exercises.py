"""Exercise checkers: right answers pass in any style; each classic mistake is caught and named."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from resnet_lab import exercises as E
from resnet_lab import models as M
from resnet_lab.exercises import engine
from resnet_lab.exercises import tracing as T

# --- Numbers, shapes, choices ------------------------------------------------------------------------


def test_number_checker_matches_to_the_answers_own_digits():
    exact = 1.1**10  # 2.5937424601
    for answer in (2.6, 2.59, 2.594, 2.5937, exact):
        assert engine.check_number(answer, exact, "x").correct, answer
    three = str(engine.check_number(3, exact, "x"))
    assert "Close" in three and "give more digits" in three
    assert "Close" in str(engine.check_number(2.5, exact, "x"))
    assert "too high" in str(engine.check_number(2.7, exact, "x")) and not engine.check_number(2.7, exact, "x").correct
    assert engine.check_number(1e-10, 0.1**10, "y").correct and engine.check_number(164, 163.84, "e").correct
    assert not engine.check_number(1e-9, 0.1**10, "y").correct


def test_number_checker_wants_integers_exactly_and_reports_bad_input():
    assert engine.check_number(42, 42, "x").correct and not engine.check_number(41, 42, "x").correct
    fb = engine.check_number(50, 42, "x", hint="think")
    assert not fb.correct and "too high" in str(fb) and "Hint: think" in str(fb)
    assert "Expected a number" in str(engine.check_number("forty", 42, "x"))
    assert "No answer yet" in str(engine.check_number(..., 42, "x"))
    assert "finite" in str(engine.check_number(math.inf, 42.5, "x"))
    assert engine.check_number(torch.tensor(42), 42, "x").correct
    assert engine.check_number(13.2, 13.6969, "ratio", rel_tol=0.05).correct


def test_shape_and_choice_checkers():
    assert engine.check_shape(torch.Size([256, 6, 6]), (256, 6, 6), "s").correct
    assert "dimension(s) [1, 2]" in str(engine.check_shape((256, 12, 12), (256, 6, 6), "s"))
    assert "has 3 dimensions; you gave 4" in str(engine.check_shape((1, 256, 6, 6), (256, 6, 6), "s"))
    assert "Expected a shape" in str(engine.check_shape(5, (1,), "s"))
    assert engine.check_choice("b", "B", {"A": "a", "B": "b"}, "q").correct
    assert "Answer with one of A, B" in str(engine.check_choice("Z", "B", {"A": "a", "B": "b"}, "q"))


def test_feedback_renders_html_and_escapes():
    assert "Correct!" in engine.Feedback(True, "ok")._repr_html_()
    assert "&lt;this&gt;" in engine.Feedback(False, "no", "try <this>")._repr_html_()


# --- The BasicBlock: correct blocks in other styles pass ------------------------------------------------


class OwnNames(nn.Module):
    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.c1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(planes)
        self.c2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(planes)
        self.short = nn.Identity()
        if stride != 1 or inplanes != planes:
            self.short = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))
        return torch.relu(out + self.short(x))


class SequentialStyle(nn.Module):
    """Shortcut registered before the body, body in an nn.Sequential, functional ReLU at the end."""

    def __init__(self, inplanes, planes, stride):
        super().__init__()
        self.skip = None
        if stride != 1 or inplanes != planes:
            self.skip = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))
        self.body = nn.Sequential(
            nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(),
            nn.Conv2d(planes, planes, 3, 1, 1, bias=False), nn.BatchNorm2d(planes),
        )  # fmt: skip

    def forward(self, x):
        identity = x if self.skip is None else self.skip(x)
        return F.relu(self.body(x) + identity)


@pytest.mark.parametrize("block", [OwnNames, SequentialStyle, T._reference_basic_block])
def test_correct_blocks_in_any_style_pass(block):
    with engine.book_code_allowed():  # the reference is the book's own code: refused as a student's answer
        fb = T.basic_block(block)
    assert fb.correct, str(fb)
    assert "training and evaluation mode" in fb.message


# --- Each classic mistake, caught and named ----------------------------------------------------------


class ReluBeforeAdd(OwnNames):
    def forward(self, x):
        return torch.relu(self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))) + self.short(x)


class NoReluAfterAdd(OwnNames):
    def forward(self, x):
        return self.b2(self.c2(torch.relu(self.b1(self.c1(x))))) + self.short(x)


class StrideOnSecond(OwnNames):
    def __init__(self, inplanes, planes, stride):
        super().__init__(inplanes, planes, stride)
        self.c1 = nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False)
        self.c2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)


class ProjectionWithoutBN(OwnNames):
    def __init__(self, inplanes, planes, stride):
        super().__init__(inplanes, planes, stride)
        if stride != 1 or inplanes != planes:
            self.short = nn.Conv2d(inplanes, planes, 1, stride, bias=False)


class IdentityWhereShapeChanges(OwnNames):
    def __init__(self, inplanes, planes, stride):
        super().__init__(inplanes, planes, stride)
        self.short = nn.Identity()


class ProjectionEverywhere(OwnNames):
    def __init__(self, inplanes, planes, stride):
        super().__init__(inplanes, planes, stride)
        self.short = nn.Sequential(nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))


class NoShortcut(OwnNames):
    def forward(self, x):
        return torch.relu(self.b2(self.c2(torch.relu(self.b1(self.c1(x))))))


@pytest.mark.parametrize(
    "block,named",
    [
        (ReluBeforeAdd, "the ReLU comes before the addition"),
        (NoReluAfterAdd, "there is no ReLU after the addition"),
        (StrideOnSecond, "the stride is on the second convolution"),
        (ProjectionWithoutBN, "the projection shortcut has no BatchNorm"),
        (IdentityWhereShapeChanges, "the shortcut stays the identity where the shape changes"),
        (ProjectionEverywhere, "every block has a projection shortcut"),
        (NoShortcut, "there is no shortcut at all"),
    ],
)
def test_each_basic_block_mistake_is_named(block, named):
    fb = T.basic_block(block)
    assert not fb.correct and named in fb.message and fb.hint, str(fb)


class PaddedBottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride):
        super().__init__()
        out = planes * 4
        self.conv1 = nn.Conv2d(inplanes, planes, 1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out, 1, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out)
        self.down = None
        if stride != 1 or inplanes != out:
            self.down = nn.Sequential(nn.Conv2d(inplanes, out, 1, stride, bias=False), nn.BatchNorm2d(out))

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = torch.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return torch.relu(out + (x if self.down is None else self.down(x)))


class GoodBottleneck(PaddedBottleneck):
    def __init__(self, inplanes, planes, stride):
        super().__init__(inplanes, planes, stride)
        self.conv1.padding = self.conv3.padding = (0, 0)


def test_bottleneck_with_padded_1x1_is_named_and_a_good_one_passes():
    fb = T.bottleneck(PaddedBottleneck)
    assert not fb.correct and "a 1x1 convolution has padding=1" in fb.message, str(fb)
    assert T.bottleneck(GoodBottleneck).correct
    GoodBottleneck.expansion = 1
    try:
        assert "expansion is 1" in str(T.bottleneck(GoodBottleneck))
    finally:
        GoodBottleneck.expansion = 4


# --- Broken code gets feedback, never a traceback ---------------------------------------------------


class Raises(nn.Module):
    def __init__(self, inplanes, planes, stride):
        super().__init__()
        raise NotImplementedError("build your block here")


class NeedsMore(nn.Module):
    def __init__(self, inplanes, planes, stride, groups):
        super().__init__()


class ReturnsTuple(OwnNames):
    def forward(self, x):
        return super().forward(x), x


class ForwardCrashes(OwnNames):
    def forward(self, x):
        return self.c2(x.flatten(1))


def test_broken_code_gets_feedback_not_a_traceback():
    assert "Building your block(16, 16, 1) failed: NotImplementedError: build your block here" in str(
        T.basic_block(Raises))  # fmt: skip
    assert "positional arguments only" in str(T.basic_block(NeedsMore))
    assert "should return a tensor; it returned tuple" in str(T.basic_block(ReturnsTuple))
    assert "failed: RuntimeError" in str(T.basic_block(ForwardCrashes))
    assert "Pass the class itself (OwnNames, not OwnNames(...))" in str(T.basic_block(OwnNames(16, 16, 1)))
    assert "Expected an nn.Module class, got int" in str(T.basic_block(42))
    assert "should give an nn.Module, gave int" in str(T.basic_block(lambda *a: 3))


def test_placement_names_what_it_cannot_place():
    class Extra(OwnNames):
        def __init__(self, inplanes, planes, stride):
            super().__init__(inplanes, planes, stride)
            self.extra = nn.Linear(3, 3)

    with pytest.raises(engine.PlacementError, match="your module has extra \\(Linear\\(3, 3\\)\\)"):
        engine.place_weights(T._reference_basic_block(16, 16, 1), Extra(16, 16, 1))
    with pytest.raises(engine.PlacementError, match=r"the reference has downsample.1 \(BatchNorm2d\(32,\)\) with"):
        engine.place_weights(T._reference_basic_block(16, 32, 2), ProjectionWithoutBN(16, 32, 2))
    # An unused extra module changes neither outputs nor gradients: accepted, with a note naming it.
    fb = T.basic_block(Extra)
    assert fb.correct and "extra (Linear(3, 3))" in fb.note


# --- Every chapter's checkers: the references pass, known wrong answers do not ---------------------


def test_chapter_code_exercises_accept_their_references():
    from resnet_lab.chapters.beyond import delete_block
    from resnet_lab.chapters.residual import gradient_norms
    from resnet_lab.chapters.transfer import freeze_backbone, replace_head
    from resnet_lab.exercises import beyond, cifar, degradation, fashion, keras, residual, transfer

    with engine.book_code_allowed():  # the references are the book's own code: refused as a student's answer
        assert degradation.plain_block(M.PlainBlock).correct
        assert degradation.option_a_shortcut(M.ShortcutA).correct
        assert residual.residual_wrapper(residual._Residual).correct
        assert residual.gradient_norms(gradient_norms).correct
        assert fashion.per_class_accuracy(fashion._reference_per_class_accuracy).correct
        assert fashion.training_step(fashion._reference_step).correct
        assert cifar.step_schedule(cifar._reference_step_schedule).correct
        assert beyond.preact_block(beyond._reference_preact_block).correct
        assert beyond.delete_block(delete_block).correct
        assert transfer.freeze_backbone(freeze_backbone).correct
        assert transfer.replace_head(replace_head).correct
    assert cifar.pad_and_crop(_crop).correct
    assert keras.kernel_to_keras(lambda w: w.permute(2, 3, 1, 0).numpy()).correct
    assert keras.momentum_to_keras(lambda m: 1 - m).correct


def _crop(x, pad, g):
    """Pad-and-crop image by image, the way a first solution would."""
    padded = F.pad(x, (pad, pad, pad, pad))
    n, _, h, w = x.shape
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=g)
    return torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(n)])


def test_chapter_code_exercises_name_known_mistakes():
    from resnet_lab.exercises import cifar, degradation, fashion, keras, residual

    assert "it returns f(x) without adding x" in str(residual.residual_wrapper(lambda f: _OnlyF(f)))
    assert "all the new zero channels are at the end" in str(degradation.option_a_shortcut(_PadAtEnd))
    assert "precision per predicted class" in str(fashion.per_class_accuracy(lambda c: c.diagonal() / c.sum(0)))
    with engine.book_code_allowed():  # the known mistake's own version lives in the book
        assert "gradients are never zeroed" in str(fashion.training_step(fashion._no_zero_grad))
    assert "one iteration late" in str(cifar.step_schedule(lambda i: 0.1 if i <= 32_000 else 0.01 if i <= 48_000
                                                          else 0.001))  # fmt: skip
    assert "cropped at the centre" in str(cifar.pad_and_crop(lambda x, pad, g: x.clone()))
    assert "same number" in str(keras.momentum_to_keras(lambda m: m))
    assert "swapped" in str(keras.kernel_to_keras(lambda w: w.permute(2, 3, 0, 1).numpy()))


class _OnlyF(nn.Module):
    def __init__(self, f):
        super().__init__()
        self.f = f

    def forward(self, x):
        return self.f(x)


class _PadAtEnd(nn.Module):
    def __init__(self, i, o, s):
        super().__init__()
        self.i, self.o, self.s = i, o, s

    def forward(self, x):
        return F.pad(x[:, :, :: self.s, :: self.s], (0, 0, 0, 0, 0, self.o - self.i))


def test_number_and_choice_exercises():
    from resnet_lab.exercises import cifar, fashion, residual, tracing, transfer

    assert residual.residual_gradient(2.6).correct and residual.residual_gradient(2.59).correct
    assert not residual.residual_gradient(2.0).correct
    assert residual.plain_gradient(1e-10).correct and not residual.plain_gradient(0.0).correct
    assert tracing.stage_output((256, 6, 6)).correct and tracing.bottleneck_params(75_008).correct
    assert not tracing.bottleneck_params(58_880).correct  # forgot the projection
    assert tracing.find_the_bug("d").correct
    assert fashion.steps_per_epoch(469).correct and not fashion.steps_per_epoch(468).correct
    assert cifar.epochs_of_paper(163.84).correct and cifar.epochs_of_paper(164).correct
    assert not cifar.epochs_of_paper(182).correct
    assert transfer.probe_parameters(52_326).correct


def test_every_chapter_has_two_code_exercises_and_the_book_twelve():
    per_chapter: dict[str, int] = {}
    for (chapter, _), (_, kind) in E.EXERCISES.items():
        per_chapter[chapter] = per_chapter.get(chapter, 0) + (kind == "code")
    assert set(per_chapter) == {"tracing", "degradation", "residual", "fashion", "cifar", "beyond", "transfer",
                                "keras", "distributed"}  # fmt: skip
    assert all(n >= 2 for n in per_chapter.values()) and sum(per_chapter.values()) >= 12


def test_scorecard_lists_this_sessions_answers():
    from resnet_lab.exercises import tracing

    tracing.stage_output((1, 2, 3))
    card = E.scorecard("tracing")
    row = next(r for r in card.rows if r[1] == "Output shape of D2L's layer3")
    assert row[3] is False and "not yet" in str(card)
    tracing.stage_output((256, 6, 6))
    assert next(r for r in E.scorecard("tracing").rows if r[1] == "Output shape of D2L's layer3")[3] is True
    assert "Scorecard" in E.scorecard("tracing")._repr_html_()


def test_a_checker_that_breaks_gives_feedback():
    @engine.exercise("test", "broken checker", "number")
    def broken(answer):
        raise KeyError("oops")

    fb = broken(1)
    assert not fb.correct and "could not run your answer: KeyError" in fb.message
    del E.EXERCISES[("test", "broken")]


# --- Training on many devices: the all-reduce, the shards, the bytes ---------------------------------------


def _mean_per_rank(per_rank):
    mean = sum(per_rank) / len(per_rank)
    return [mean.clone() for _ in per_rank]


def _adds_into_the_first(per_rank):
    """The classic slip: a total bound to rank 0's tensor, so += adds into the caller's gradient."""
    total = per_rank[0]
    for t in per_rank[1:]:
        total += t
    return [total / len(per_rank) for _ in per_rank]


def _copies_back(per_rank):
    mean = torch.stack(per_rank).mean(0)
    for t in per_rank:
        t.copy_(mean)  # what dist.all_reduce does to its argument
    return per_rank


def test_average_gradients_accepts_right_answers_and_leaves_the_inputs_alone():
    from resnet_lab.exercises import distributed as D

    with engine.book_code_allowed():
        assert D.average_gradients(D._reference_average).correct
    assert D.average_gradients(_mean_per_rank).correct
    assert D.average_gradients(lambda p: [torch.stack(p).mean(0)] * len(p)).correct  # one tensor shared: fine
    assert D.average_gradients(lambda p: tuple(_mean_per_rank(p))).correct
    given = [torch.ones(3), 3 * torch.ones(3)]
    assert torch.equal(_mean_per_rank(given)[1], 2 * torch.ones(3))


@pytest.mark.parametrize("answer,named", [
    (lambda p: [sum(p).clone() for _ in p], "every rank gets the sum, not the mean"),
    (lambda p: sum(p) / len(p), "it returns one tensor, not one per rank"),
    (_adds_into_the_first, "it changes the tensors passed in"),
    (_copies_back, "it changes the tensors passed in"),
])  # fmt: skip
def test_average_gradients_names_each_known_mistake(answer, named):
    from resnet_lab.exercises import distributed as D

    fb = D.average_gradients(answer)
    assert not fb.correct and fb.mistake == named and named in fb.message, str(fb)
    mistake = next(m for m in D.AVERAGE_MISTAKES if m.name == named)
    assert fb.hints[0] == mistake.hint and len(fb.hints) == 2


def test_average_gradients_gives_feedback_for_broken_answers():
    from resnet_lab.exercises import distributed as D

    def raises(per_rank):
        raise ValueError("no gradients here")

    def placeholder(per_rank): ...

    assert "failed: ValueError: no gradients here" in str(D.average_gradients(raises))
    fb = D.average_gradients(placeholder)
    assert not fb.correct and fb.placeholder and "returned None" in fb.message
    assert "Expected a function" in str(D.average_gradients(42)) and D.average_gradients(...).placeholder
    assert "returned str" in str(D.average_gradients(lambda p: "mean"))
    assert "returned 1 item(s) for 2 rank(s)" in str(D.average_gradients(lambda p: _mean_per_rank(p)[:1]))
    assert "item is int" in str(D.average_gradients(lambda p: [0] * len(p)))
    assert "has shape (1, 3, 4)" in str(D.average_gradients(lambda p: [t[None] for t in _mean_per_rank(p)]))
    assert "expected the mean" in str(D.average_gradients(lambda p: [t / 2 for t in _mean_per_rank(p)]))
    # One rank: its own tensor is the mean, but the result must be a new tensor.
    assert "returned a tensor passed in" in str(D.average_gradients(lambda p: list(p) if len(p) == 1
                                                                    else _mean_per_rank(p)))  # fmt: skip


def _padded_shard(order, world, rank):
    """Another right answer: pad in Python, index the tensor."""
    indices = order.tolist()
    while len(indices) % world:
        indices.append(indices[len(indices) - len(order)])
    return torch.tensor(indices[rank::world])


def _pad_with(fill):
    def shard(order, world, rank):
        pad = -len(order) % world
        return torch.cat([order, fill(order, pad)])[rank::world]

    return shard


def test_rank_shard_accepts_the_contract_in_any_style():
    from resnet_lab import distributed as dist_lib
    from resnet_lab.exercises import distributed as D

    with engine.book_code_allowed():
        assert D.rank_shard(D._reference_shard).correct
    assert D.rank_shard(_padded_shard).correct
    assert D.rank_shard(lambda o, w, r: _padded_shard(o, w, r).tolist()).correct  # a list of ints is fine
    # The reference is the library's contract: across ranks every image once, the padded ones twice.
    for n, world in ((10, 4), (10, 3), (12, 4), (7, 1)):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(n))
        shards = [D._reference_shard(order, world, r) for r in range(world)]
        assert len({len(s) for s in shards}) == 1
        assert sorted(torch.cat(shards).tolist()) == sorted(order.tolist() + order[: dist_lib.padding(n, world)]
                                                            .tolist())  # fmt: skip


@pytest.mark.parametrize("answer,named,said", [
    (lambda o, w, r: o[r::w], "it does not pad, so the shards have unequal lengths", "3, 3, 2, 2 indices"),
    (lambda o, w, r: o[: len(o) // w * w][r::w], "it drops the last indices instead of padding", ""),
    (lambda o, w, r: o.chunk(w)[r], "it gives each rank a contiguous block instead of a strided share", "strided"),
    (lambda o, w, r: o.tensor_split(w)[r], "it gives each rank a contiguous block instead of a strided share", ""),
    (lambda o, w, r: _padded_shard(o, 1, 0).view(w, -1)[r] if len(o) % w == 0
     else torch.cat([o, o[: -len(o) % w]]).view(w, -1)[r],
     "it gives each rank a contiguous block instead of a strided share", ""),
    (_pad_with(lambda o, pad: torch.zeros(pad, dtype=torch.long)), "it pads with other indices than the order's "
                                                                   "first ones", "padded with zeros"),
    (_pad_with(lambda o, pad: torch.zeros(pad)), "it pads with other indices than the order's first ones", "zeros"),
    (_pad_with(lambda o, pad: o[len(o) - pad :]), "it pads with other indices than the order's first ones", "[5]"),
])  # fmt: skip
def test_rank_shard_names_each_known_mistake(answer, named, said):
    from resnet_lab.exercises import distributed as D

    fb = D.rank_shard(answer)
    assert not fb.correct and fb.mistake == named and named in fb.message and said in fb.message, str(fb)
    assert fb.hints[0] == next(m for m in D.SHARD_MISTAKES if m.name == named).hint


def test_rank_shard_mistakes_are_what_their_hints_say():
    from resnet_lab.exercises import distributed as D

    no_padding = str(D.rank_shard(lambda o, w, r: o[r::w]))
    assert "different numbers of steps" in no_padding and "DDP hangs" in no_padding and "pads" in no_padding
    assert "rank::world" in str(D.rank_shard(lambda o, w, r: o.chunk(w)[r]))
    with engine.book_code_allowed():  # each mistake's own version, kept in the module, is caught as that mistake
        for mistake in D.SHARD_MISTAKES:
            assert D.rank_shard(mistake.build).mistake == mistake.name, mistake.name


def test_rank_shard_gives_feedback_for_broken_answers():
    from resnet_lab.exercises import distributed as D

    def raises(order, world, rank):
        raise IndexError("no such rank")

    def placeholder(order, world, rank): ...

    assert "failed: IndexError: no such rank" in str(D.rank_shard(raises))
    assert D.rank_shard(placeholder).placeholder and "returned None" in str(D.rank_shard(placeholder))
    assert "Expected a function" in str(D.rank_shard("shard"))
    assert "expected a 1-D tensor" in str(D.rank_shard(lambda o, w, r: _padded_shard(o, w, r)[None]))
    assert "expected a 1-D tensor" in str(D.rank_shard(lambda o, w, r: {"rank": r}))
    fb = D.rank_shard(lambda o, w, r: _padded_shard(o, w, r).float())
    assert not fb.correct and "indexed with floats" in fb.message
    assert "expected [11, 1, 2]" in str(D.rank_shard(lambda o, w, r: _padded_shard(o, w, r).sort().values))


def test_allreduce_bytes_accepts_the_ring_and_names_each_known_mistake():
    from resnet_lab.exercises import distributed as D

    with engine.book_code_allowed():
        assert D.allreduce_bytes(D.ring_allreduce_bytes).correct
    assert D.allreduce_bytes(lambda p, w: 2 * (w - 1) * (p / w) * 4).correct
    assert D.allreduce_bytes(lambda p, w: 2 * (w - 1) * math.ceil(p / w) * 4).correct  # whole chunks: close enough
    assert D.allreduce_bytes(lambda p, w: 8 * (w - 1) * p // w).correct
    for answer, named in (
        (lambda p, w: (w - 1) / w * p * 4, "it counts only the reduce-scatter half"),
        (lambda p, w: (w - 1) * p * 4, "it sends the whole gradient to every other rank"),
        (lambda p, w: 2 * (w - 1) / w * p, "it counts values, not bytes"),
        (lambda p, w: 8 * p, "it gives twice the gradient, the limit for many ranks"),
        (lambda p, w: 8 * (w - 1) * p, "it adds up the bytes of every rank"),
    ):
        fb = D.allreduce_bytes(answer)
        assert not fb.correct and fb.mistake == named and named in fb.message, str(fb)
    assert "failed: ZeroDivisionError" in str(D.allreduce_bytes(lambda p, w: p / 0))
    assert "returned 'many'" in str(D.allreduce_bytes(lambda p, w: "many"))
    def forgets_to_return(params, world):
        sent = 8 * (world - 1) * params / world  # noqa: F841

    fb = D.allreduce_bytes(forgets_to_return)
    assert "returned None: did you forget to return?" in fb.message and not fb.placeholder
    assert "Expected a function" in str(D.allreduce_bytes(...)) and D.allreduce_bytes(...).placeholder

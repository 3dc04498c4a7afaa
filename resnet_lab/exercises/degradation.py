"""Exercises of the chapter "The degradation experiment"."""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F
from torch import nn

from .. import models as M
from ..history import RunKey
from . import own_run
from .engine import Feedback, Mistake, check_choice, check_module, check_written, exercise
from .engine import hint as hint  # re-exported: ex.hint(ex.<exercise>) or ex.hint("<exercise>", level=2)

CHAPTER = "degradation"


class _AddsInputBack(M.PlainBlock):
    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return torch.relu(out + x) if out.shape == x.shape else torch.relu(out)


class _NoFinalRelu(M.PlainBlock):
    def forward(self, x):
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))


PLAIN_MISTAKES = (
    Mistake("it still adds its input back where the shapes match", _AddsInputBack,
            "Your block adds its input where the shapes match: a plain block has no shortcut at all, not even "
            "where one would fit."),
    Mistake("there is no ReLU at the end", _NoFinalRelu,
            "Keep every layer of the residual block, the final ReLU included; only the shortcut and its addition "
            "go."),
)


@exercise(CHAPTER, "The plain counterpart of a residual block", "code")
def plain_block(student: object) -> Feedback:
    """A plain block class ``(inplanes, planes, stride)``: a BasicBlock with its shortcut removed."""
    return check_module(
        student, M.PlainBlock, [(16, 16, 1), (16, 32, 2)], lambda args: (2, args[0], 8, 8), "your plain block",
        PLAIN_MISTAKES,
        hint=("Start from chapter 1's BasicBlock (\"The BasicBlock\" in \"Inside the blocks\") and take away only "
              "the shortcut and its addition.",
              "The main path stays as it was: 3x3 convolution with the stride, BN, ReLU, 3x3 convolution, BN, and "
              "the final ReLU, now applied to the main path alone. No projection either: with no addition, nothing "
              "has to match the input's shape."),
    )  # fmt: skip


class _PadAtEnd(M.ShortcutA):
    def forward(self, x):
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.out_planes - self.in_planes))


class _OddPixels(M.ShortcutA):
    def forward(self, x):
        x = x[:, :, 1 :: self.stride, 1 :: self.stride] if self.stride > 1 else x
        extra = self.out_planes - self.in_planes
        return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))


class _AveragePooled(M.ShortcutA):
    def forward(self, x):
        x = F.avg_pool2d(x, self.stride) if self.stride > 1 else x
        extra = self.out_planes - self.in_planes
        return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))


OPTION_A_MISTAKES = (
    Mistake("all the new zero channels are at the end", _PadAtEnd,
            "The new zero channels go on both sides of the old ones: half of them (rounded down) before, the rest "
            "after."),
    Mistake("it takes the odd pixels (starting at 1)", _OddPixels,
            "Subsample as a stride-2 convolution does: start at the first pixel (index 0), not the second."),
    Mistake("it averages 2x2 patches instead of taking one pixel", _AveragePooled,
            "Option A keeps the identity: keep one pixel of each stride x stride patch as it is, without "
            "averaging."),
)


@exercise(CHAPTER, "The option-A shortcut: subsample and zero-pad", "code")
def option_a_shortcut(student: object) -> Feedback:
    """A module class ``(in_planes, out_planes, stride)``: take every ``stride``-th pixel, add zero channels
    split evenly before and after (no parameters)."""
    if isinstance(student, type) and issubclass(student, nn.Module):
        try:
            params = sum(p.numel() for p in student(16, 32, 2).parameters())
        except Exception:  # noqa: BLE001 - reported by check_module below
            params = 0
        if params:
            return Feedback(False, f"Your shortcut has {params:,} parameters; option A has none.",
                            "Option A has no convolution: it only subsamples the tensor and adds channels of zeros.")
    return check_module(
        student, M.ShortcutA, [(16, 32, 2), (16, 16, 1), (32, 64, 2)], lambda args: (2, args[0], 8, 8),
        "your shortcut", OPTION_A_MISTAKES,
        hint=("Option A (chapter 1, \"Shortcut options A, B and C\") has no parameters: it changes the shape by "
              "subsampling the pixels and adding channels of zeros.",
              "Two steps: keep every stride-th pixel in height and width, starting at pixel 0, as a strided "
              "convolution does; then add as many zero channels as the output has more than the input, half of "
              "them (rounded down) before the old channels and the rest after. Example: 16 to 32 channels with "
              "stride 2 takes (2, 16, 8, 8) to (2, 16, 4, 4), then 8 zero channels in front and 8 behind."),
    )  # fmt: skip


EXPLAIN_CURVE_OPTIONS = {
    "A": "plain-56 overfits: it memorises the training set and fails on the test set",
    "B": "plain-56 is harder to optimise: even its training error stays higher than plain-20's",
    "C": "plain-56 has more parameters than ResNet-56, so it needs more data",
    "D": "plain-56 uses a different learning-rate schedule",
}


@exercise(CHAPTER, "Why the deep plain net ends higher", "choice")
def explain(answer: object) -> Feedback:
    """Why does plain-56 end above plain-20?"""
    return check_choice(
        answer, "B", EXPLAIN_CURVE_OPTIONS, "the explanation of the plain-56 curve",
        hint=("Overfitting would show as low training error with high test error. Which lines of the figure are "
              "training error? (\"Read the result\")",
              "Compare the thin lines (training error) of the shallow and the deep plain net, then the bold ones "
              "(test error). If the deeper net's training error is already the higher one, memorising the training "
              "set cannot be the cause."),
    )  # fmt: skip


# --- Your own run ---------------------------------------------------------------------------

PLAIN_GAP_HINT = (
    "Look at the final training errors of the plain nets in your run: the verdict's first claim, "
    "'plain nets degrade', lists the difference for every seed.",
    "For each seed, take the deepest plain net's final training error minus the shallowest's, in percentage "
    "points, then average over the seeds. The verdict's evidence gives the per-seed differences and their "
    "mean; the summary table's 'train error %' column gives the means, whose difference is the same number.",
)


@exercise(CHAPTER, "Your run: how much higher the deep plain net ends", "run", hint=PLAIN_GAP_HINT)
def plain_gap(answer: object, runs: object) -> Feedback:
    """In ``runs`` (``{RunKey("plain", depth): [History per seed], ...}`` as ``seed_runs`` makes them; one
    History per key is one seed): the mean over the seeds of the deepest plain net's final training error
    minus the shallowest plain net's, in percentage points. Computed from ``runs``, so every run has its own
    answer; within 0.1 points (the verdict prints it to three significant figures)."""
    lists = own_run.histories(runs, "your runs (the dict the chapter makes with seed_runs)", PLAIN_GAP_HINT)
    if isinstance(lists, Feedback):
        return lists
    plain = {k.depth: hs for k, hs in lists.items() if isinstance(k, RunKey) and k.kind == "plain"
             and k.depth is not None}  # fmt: skip
    if len(plain) < 2:
        return Feedback(False, f"Your runs hold plain nets at depth(s) {sorted(plain)}; the question compares the "
                               "deepest with the shallowest, so it needs two depths or more.", PLAIN_GAP_HINT)
    lo, hi = min(plain), max(plain)
    if len(plain[lo]) != len(plain[hi]):
        return Feedback(False, f"plain-{hi} has {len(plain[hi])} seed(s) and plain-{lo} {len(plain[lo])}: pass the "
                               "runs of every seed, paired.", PLAIN_GAP_HINT)  # fmt: skip
    gaps = [100 * (a.final.train_error - b.final.train_error) for a, b in zip(plain[hi], plain[lo])]
    return own_run.check_run_number(
        answer, statistics.fmean(gaps),
        f"plain-{hi} minus plain-{lo} final training error (mean over {len(gaps)} seed{'s' * (len(gaps) > 1)})",
        tol=0.1, order=f"plain-{hi} minus plain-{lo}", hint=PLAIN_GAP_HINT,
    )  # fmt: skip


#: What a written interpretation of the verdict's second claim is graded on, with the points for each.
RUBRIC_DEEPER_RESIDUAL = (
    ("States the status your verdict gave the claim 'the deeper residual net is better' and quotes its evidence: "
     "the per-seed differences (shallowest minus deepest residual net's training error), their mean and sd.", 1),
    ("Applies the rule to those numbers: shown only if every seed's difference is positive and the mean exceeds "
     "the sd, not shown if every one is negative and minus the mean exceeds the sd, else undecided.", 1),
    ("Does not overread the run: a few epochs on a small subset is not the paper's 164 epochs on its full data set, "
     "this is the claim most sensitive to scale, and the run cannot say why the deeper net ended where it did.", 1),
    ("Names a run that would decide it: the paper's scale (164 epochs on the full data, as the paper profile runs) "
     "with two or more seeds, since with one seed, as the paper profile runs, the verdict decides none of the "
     "claims.", 1),
)


@exercise(CHAPTER, "Interpret the verdict: is the deeper residual net better?", "written")
def deeper_residual(answer: object) -> Feedback:
    """A few sentences on the verdict's second claim in your run: its status, the evidence and rule that decided
    it, whether it contradicts the paper, and what run would decide it."""
    return check_written(
        answer, "the question on the verdict's second claim",
        own_run.rubric_lines(RUBRIC_DEEPER_RESIDUAL), min_words=50,
        hint=("Read the verdict's second claim: its status, its rule and its evidence line; then the 'Things to "
              "look for' list under the published table.",
              "Cover what the rubric asks: the numbers, the rule applied to them, what this run's scale can and "
              "cannot say compared with the paper's, and a run that would decide."),
    )  # fmt: skip

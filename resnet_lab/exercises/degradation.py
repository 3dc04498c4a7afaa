"""Exercises of the chapter "The degradation experiment"."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import models as M
from .engine import Feedback, Mistake, check_choice, check_module, exercise

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
            "A plain block has no shortcut at all: out = relu(bn2(conv2(relu(bn1(conv1(x))))))."),
    Mistake("there is no ReLU at the end", _NoFinalRelu,
            "Keep the layers of the residual block, ReLU after each BN included; only the addition goes."),
)


@exercise(CHAPTER, "The plain counterpart of a residual block", "code")
def plain_block(student: object) -> Feedback:
    """A plain block class ``(inplanes, planes, stride)``: a BasicBlock with its shortcut removed."""
    return check_module(
        student, M.PlainBlock, [(16, 16, 1), (16, 32, 2)], lambda args: (2, args[0], 8, 8), "your plain block",
        PLAIN_MISTAKES,
        hint="The same two 3x3 convolutions, BNs and ReLUs as the BasicBlock, in the same order; nothing is added.",
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
            "Split the new channels evenly: extra // 2 zero channels before the old ones, the rest after."),
    Mistake("it takes the odd pixels (starting at 1)", _OddPixels,
            "Subsample as a stride-2 convolution would: x[:, :, ::2, ::2] starts at pixel 0."),
    Mistake("it averages 2x2 patches instead of taking one pixel", _AveragePooled,
            "Option A keeps the identity: take every second pixel, x[:, :, ::stride, ::stride], no averaging."),
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
                            "No convolution: slice the tensor and pad it with zeros (torch.nn.functional.pad).")
    return check_module(
        student, M.ShortcutA, [(16, 32, 2), (16, 16, 1), (32, 64, 2)], lambda args: (2, args[0], 8, 8),
        "your shortcut", OPTION_A_MISTAKES,
        hint="x[:, :, ::stride, ::stride], then F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2)) with "
        "extra = out_planes - in_planes.",
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
        hint="Overfitting would show low training error and high test error. Look at the thin lines.",
    )  # fmt: skip

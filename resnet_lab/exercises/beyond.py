"""Exercises of the chapter "Beyond the original ResNet"."""

from __future__ import annotations

import copy

import torch
from torch import nn

from .. import models as M
from ..chapters.beyond import delete_block as reference_delete_block
from .engine import Feedback, Mistake, check_choice, check_module, exercise

CHAPTER = "beyond"


def reference_preact_block(inplanes: int, planes: int, stride: int) -> nn.Module:
    """The exercise's PreActBlock: where the shape changes, BN-ReLU comes before the split and a 1x1
    projection (no BN) takes its output, as in He et al.'s released code (``resnet-pre-act.lua``)."""
    changes = stride != 1 or inplanes != planes
    return M.PreActBlock(inplanes, planes, stride, M.conv1x1(inplanes, planes, stride) if changes else None)


class _ReluAfterAdd(M.PreActBlock):
    def forward(self, x):
        return torch.relu(super().forward(x))


class _PostActOrder(M.PreActBlock):
    """Conv before BN (the 2015 order) with the pre-activation's parameter shapes: BN on the input side."""

    def forward(self, x):
        pre = self.bn1(x)
        identity = x if self.downsample is None else self.downsample(pre)
        out = self.relu(self.conv1(pre))
        return self.conv2(self.relu(self.bn2(out))) + identity


class _ShortcutFromInput(M.PreActBlock):
    """The projection takes the block's input x instead of the pre-activated relu(bn1(x))."""

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.conv1(self.relu(self.bn1(x)))
        return self.conv2(self.relu(self.bn2(out))) + identity


def _preact(cls):
    def build(inplanes, planes, stride):
        changes = stride != 1 or inplanes != planes
        return cls(inplanes, planes, stride, M.conv1x1(inplanes, planes, stride) if changes else None)

    return build


PREACT_MISTAKES = (
    Mistake("a ReLU follows the addition", _preact(_ReluAfterAdd),
            "In a pre-activation block nothing follows the addition: return out + shortcut."),
    Mistake("the projection takes the block's input x, not the pre-activated relu(bn1(x))",
            _preact(_ShortcutFromInput),
            "Where the shape changes, He et al.'s code applies BN-ReLU before the split: pre = relu(bn1(x)); "
            "the projection and conv1 both take pre."),
    Mistake("the ReLU is missing between bn1 and conv1", _preact(_PostActOrder),
            "Each half is BN, ReLU, conv: self.conv1(relu(self.bn1(x))), then self.conv2(relu(self.bn2(out)))."),
)


@exercise(CHAPTER, "A pre-activation block", "code")
def preact_block(student: object) -> Feedback:
    """A class ``(inplanes, planes, stride)``: pre = relu(bn1(x)), conv3x3 (stride), BN, ReLU, conv3x3, plus x;
    where the shape changes, plus a 1x1 projection without BN of pre instead; nothing after the addition."""
    return check_module(
        student, reference_preact_block, [(16, 16, 1), (16, 32, 2)], lambda args: (2, args[0], 8, 8),
        "your pre-activation block", PREACT_MISTAKES,
        hint="bn1 = BatchNorm2d(inplanes); pre = relu(bn1(x)); out = conv2(relu(bn2(conv1(pre)))); "
        "return out + x, or out + projection(pre) where the shape changes.",
    )  # fmt: skip


@exercise(CHAPTER, "Delete a block of a trained network", "code")
def delete_block(student: object) -> Feedback:
    """A function ``(model, stage, index) -> model``: a copy of ``model`` with block ``index`` of
    ``layer{stage}`` replaced by what its shortcut passes on (the identity), the original unchanged."""
    hint = ("new = copy.deepcopy(model); getattr(new, f'layer{stage}')[index] = nn.Identity(); return new. "
            "Only blocks that keep the shape can go.")
    if not callable(student):
        return Feedback(False, f"Expected a function (model, stage, index), got {type(student).__name__}.", hint)
    torch.manual_seed(0)
    model = M.cifar_resnet(14, in_channels=1, num_classes=4).eval()
    before = copy.deepcopy(model.state_dict())
    x = torch.randn(3, 1, 12, 12)
    for stage, index in ((1, 1), (2, 1), (3, 1), (1, 0)):
        try:
            got = student(model, stage, index)
        except Exception as exc:  # noqa: BLE001
            return Feedback(False, f"your function failed for stage {stage}, block {index}: "
                                   f"{type(exc).__name__}: {exc}.", hint)  # fmt: skip
        if got is model or any(isinstance(b, nn.Identity) for stage_ in model.stages() for b in stage_):
            return Feedback(False, "your function changed the original network: the lesion study needs it "
                                   "intact, to delete the next block from it.", "Work on copy.deepcopy(model).")
        if not isinstance(got, nn.Module):
            return Feedback(False, f"your function should return the new network; it returned {type(got).__name__}.",
                            hint)  # fmt: skip
        expected = reference_delete_block(model, stage, index).eval()
        with torch.no_grad():
            same = torch.allclose(got.eval()(x), expected(x), atol=1e-6)
        if not same:
            return Feedback(False, f"after deleting block {index} of layer{stage}, your network computes something "
                                   "else than the original with that block skipped.", hint)  # fmt: skip
    if any(not torch.equal(v, model.state_dict()[k]) for k, v in before.items()):
        return Feedback(False, "your function changed the original network's weights.", "Work on a deep copy.")
    return Feedback(True, "blocks of all three stages deleted, outputs as expected, the original untouched.")


LESION_OPTIONS = {
    "A": "its test error barely moves",
    "B": "its test error rises towards chance",
    "C": "it cannot run any more: the shapes no longer match",
}


@exercise(CHAPTER, "Delete a block of a trained plain net", "choice")
def plain_lesion(answer: object) -> Feedback:
    """Delete one shape-preserving block from the middle of a trained plain network. What happens?"""
    return check_choice(
        answer, "B", LESION_OPTIONS, "the plain net after deleting one block",
        hint="In a plain net every layer's output is the next layer's only input: nothing else carries "
        "the signal past the gap.",
    )  # fmt: skip


ZERO_INIT_OPTIONS = {
    "A": "the identity (for non-negative inputs)",
    "B": "zero",
    "C": "a random projection",
}


@exercise(CHAPTER, "A block with zero-initialised residual branch", "choice")
def zero_init(answer: object) -> Feedback:
    """With ``zero_init_residual=True``, what does each shape-preserving BasicBlock compute at initialisation?"""
    return check_choice(
        answer, "A", ZERO_INIT_OPTIONS, "a zero-initialised block",
        hint="F(x) = 0, so the block returns relu(0 + x).",
    )  # fmt: skip

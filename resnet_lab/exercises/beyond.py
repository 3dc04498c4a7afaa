"""Exercises of the chapter "Beyond the original ResNet"."""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import nn

from .. import models as M
from ..chapters.beyond import BARELY_CHANGES
from ..chapters.beyond import delete_block as _reference_delete_block
from ..history import RunKey
from . import own_run
from .engine import Feedback, Mistake, check_choice, check_module, check_written, exercise
from .engine import hint as hint  # re-exported: ex.hint(ex.<exercise>) or ex.hint("<exercise>", level=2)

CHAPTER = "beyond"


def _reference_preact_block(inplanes: int, planes: int, stride: int) -> nn.Module:
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
            "Your block applies a ReLU after the addition; in a pre-activation block nothing follows it: the sum "
            "is the output."),
    Mistake("the projection takes the block's input x, not the pre-activated relu(bn1(x))",
            _preact(_ShortcutFromInput),
            "Where the shape changes, He et al.'s code applies the first BN and ReLU before the split: the "
            "projection takes the pre-activated input, as the first convolution does, not the block's input."),
    Mistake("the ReLU is missing between bn1 and conv1", _preact(_PostActOrder),
            "Each half of the main path is BN, ReLU, convolution: a ReLU belongs between the first BN and the "
            "first convolution."),
)


@exercise(CHAPTER, "A pre-activation block", "code")
def preact_block(student: object) -> Feedback:
    """A class ``(inplanes, planes, stride)``: pre = relu(bn1(x)), conv3x3 (stride), BN, ReLU, conv3x3, plus x;
    where the shape changes, plus a 1x1 projection without BN of pre instead; nothing after the addition."""
    return check_module(
        student, _reference_preact_block, [(16, 16, 1), (16, 32, 2)], lambda args: (2, args[0], 8, 8),
        "your pre-activation block", PREACT_MISTAKES,
        hint=("See \"The pre-activation block\" (Build): BN and ReLU move in front of each convolution, and "
              "nothing follows the addition.",
              "The first BN sees the block's input, so it has inplanes channels. Main path: BN, ReLU, 3x3 "
              "convolution with the stride, BN, ReLU, 3x3 convolution. Add the input itself; where the shape "
              "changes, add instead a 1x1 convolution with the stride and no BN, applied to the pre-activated "
              "input (after the first BN and ReLU), the same tensor the main path starts from."),
    )  # fmt: skip


@exercise(CHAPTER, "Delete a block of a trained network", "code")
def delete_block(student: object) -> Feedback:
    """A function ``(model, stage, index) -> model``: a copy of ``model`` with block ``index`` of
    ``layer{stage}`` replaced by what its shortcut passes on (the identity), the original unchanged."""
    hint = ("See \"Deleting blocks from the trained networks\" (Run): a deleted block passes on what its "
            "shortcut would, its input unchanged; and the original network has to stay intact for the next "
            "deletion.",
            "Work on a deep copy, so that the weights are copied too; in it, replace the block with a module that "
            "returns its input unchanged. Only blocks that keep the shape can go.")
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
                                   "intact, to delete the next block from it.",
                            "Work on a deep copy of the network, never on the one passed in.")
        if not isinstance(got, nn.Module):
            return Feedback(False, f"your function should return the new network; it returned {type(got).__name__}.",
                            hint)  # fmt: skip
        expected = _reference_delete_block(model, stage, index).eval()
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
        hint=("See \"Deleting blocks from the trained networks\" (Run): a deleted block passes its input on as it "
              "is. What did the layers after it receive in training, and is any of that left in a plain net?",
              "In a plain net every layer's output is the next layer's only input, and the layers after the gap "
              "were trained on what the deleted block produced."),
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
        hint=("See \"Zero-initialised residual branches\" (Build): which weight starts at zero, and what does the "
              "residual branch then output?",
              "With the last BN's scale at zero, the branch outputs zero for every input. What is left of the "
              "block's ReLU of the branch plus the input?"),
    )  # fmt: skip


# --- Your own run ---------------------------------------------------------------------------

LESIONS_HINT = (
    "See \"Deleting blocks from the trained networks\" (Run): the left panel of the lesion figure (\"one block "
    "deleted\") gives your residual net's test error with each block deleted alone, and the verdict's first "
    "sentence its intact error; compare each rise with the chapter's margin for 'barely changes'.",
    "For each single deletion, the rise is its test error minus the intact net's, in points; count the "
    "deletions whose rise is larger than the margin, beyond.BARELY_CHANGES (2 points). Count the rise alone: "
    "the verdict's own count also subtracts two standard errors, so it can be smaller.",
)


def _residual_key(study: Mapping) -> object:
    keys = [k for k in study if isinstance(k, RunKey) and k.kind == "ResNet"]
    return keys[0] if len(keys) == 1 else None


@exercise(CHAPTER, "Your run: deletions that change the residual net's error", "run", hint=LESIONS_HINT)
def lesions_over_margin(answer: object, study: object, key: object = None) -> Feedback:
    """In your lesion ``study`` (``{key: lesion_study(...) result}``), the number of single deletions of the
    residual net (``key``, default: the one key of kind "ResNet") whose test error rises by more than
    :data:`BARELY_CHANGES` points over the intact net's. Computed from ``study``; a rise exactly at the margin
    may be counted either way."""
    hint = LESIONS_HINT
    if not isinstance(study, Mapping) or not study:
        return own_run.no_run("your lesion study (the `study` dict of the chapter)", study, hint)
    key = _residual_key(study) if key is None else key
    if key is None or key not in study:
        return Feedback(False, f"Which net? Your study holds {', '.join(map(str, study))}; pass the residual net's "
                               "key as the third argument.", hint)  # fmt: skip
    result = study[key]
    if not isinstance(result, Mapping) or "single" not in result or "intact" not in result:
        return Feedback(False, f"study[{key!s}] should be what lesion_study returns (with 'intact' and 'single').",
                        hint)  # fmt: skip
    # Rounded to 1e-6 points: the errors are float32 means, so a rise of exactly 2 points on 1,000 images
    # comes out as 1.9999996 and would otherwise never count as "at the margin".
    rises = [round(100 * (e - result["intact"]), 6) for e in result["single"]]
    above = sum(r > BARELY_CHANGES + 1e-9 for r in rises)
    at_margin = sum(abs(r - BARELY_CHANGES) <= 1e-9 for r in rises)
    what = f"the single deletions that raise {key}'s test error by more than {BARELY_CHANGES:g} points"
    if answer is None or answer is ...:
        return Feedback(False, f"No answer yet for {what}: replace the placeholder with a count.", hint)
    if isinstance(answer, bool) or not isinstance(answer, (int, float)) or not float(answer).is_integer():
        return Feedback(False, f"Answer with a whole number, the count of deletions; you gave {answer!r}.", hint)
    count = int(answer)
    if above <= count <= above + at_margin:
        return Feedback(True, f"In your run, {count} of {key}'s {len(rises)} single deletions raise its test error "
                              f"by more than {BARELY_CHANGES:g} points.")  # fmt: skip
    if not 0 <= count <= len(rises):
        return Feedback(False, f"Your study has {len(rises)} single deletions; you gave {count}.", hint)
    direction = "too many" if count > above + at_margin else "too few"
    return Feedback(False, f"{count} is {direction} for {what} in your run.", hint)


#: What a written interpretation of the lesion verdict is graded on, with the points for each.
RUBRIC_LESIONS = (
    ("Quotes the status of Veit et al.'s claim in your run and its evidence: how many deletions lie above the "
     "margin, the worst block and its rise; and the rule (every rise + 2 SE below the margin to show it, any "
     "rise - 2 SE above it to refute it).", 1),
    ("Reads the other claim too: whether one deleted block raises the plain net's error more than the residual "
     "net's, block by block.", 1),
    ("Says how this run differs from Veit et al.'s experiment: far fewer blocks (so fewer, shorter paths, each a "
     "larger share), another data set and far less training; and that the run cannot tell which difference "
     "matters.", 1),
    ("Says what would test their claim: a net as deep as theirs (110 layers), fully trained on their data set "
     "(CIFAR-10), e.g. the `paper` profile (the `gpu` profile's ResNet-56 for 10 epochs is neither); and that 2 "
     "points is the book's reading of 'barely changes', not theirs.", 1),
)


@exercise(CHAPTER, "Interpret the verdict: do deletions barely change a ResNet?", "written")
def lesions_and_veit(answer: object) -> Feedback:
    """A few sentences on the lesion verdict in your run: the status of Veit et al.'s claim and why, the
    comparison with the plain net, how this run differs from theirs, and what run would test their claim."""
    return check_written(
        answer, "the question on the lesion verdict", own_run.rubric_lines(RUBRIC_LESIONS), min_words=50,
        hint=("See \"Deleting blocks from the trained networks\" (Run): read the lesion verdict (both claims, their "
              "rules and evidence, and its first sentences), then that section's paragraph on Veit et al.'s net, "
              "above the lesion figure.",
              "Cover what the rubric asks: the numbers and the rule of Veit et al.'s claim, the plain net's side, "
              "what differs from their experiment, and a run that would test the claim."),
    )  # fmt: skip

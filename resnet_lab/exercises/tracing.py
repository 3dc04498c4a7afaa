"""Exercises of the chapter "Inside the blocks: tracing shapes"."""

from __future__ import annotations

import torch
from torch import nn

from .. import models as M
from . import own_run
from .engine import Feedback, Mistake, check_choice, check_module, check_number, check_shape, check_written, exercise
from .engine import hint as hint  # re-exported: ex.hint(ex.<exercise>) or ex.hint("<exercise>", level=2)

CHAPTER = "tracing"


# --- Exercise: a BasicBlock, and the usual ways to get it wrong -------------------------------------


def _projection(inplanes: int, planes: int, stride: int, norm: bool = True) -> nn.Module:
    conv = M.conv1x1(inplanes, planes, stride)
    return nn.Sequential(conv, nn.BatchNorm2d(planes)) if norm else nn.Sequential(conv)


def _reference_basic_block(inplanes: int, planes: int, stride: int) -> nn.Module:
    """The exercise's BasicBlock: a 1x1 projection with BN where the shape changes (option B)."""
    changes = stride != 1 or inplanes != planes
    return M.BasicBlock(inplanes, planes, stride, _projection(inplanes, planes, stride) if changes else None)


class _Block(M.BasicBlock):
    """A BasicBlock whose forward the wrong variants below rewrite (same parameter names)."""

    def branch(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.downsample is None else self.downsample(x)


class _ReluBeforeAdd(_Block):
    def forward(self, x):
        return torch.relu(self.branch(x)) + self.shortcut(x)


class _NoReluAfterAdd(_Block):
    def forward(self, x):
        return self.branch(x) + self.shortcut(x)


class _NoShortcut(_Block):
    def forward(self, x):
        return torch.relu(self.branch(x))


def _stride_on_second(inplanes, planes, stride):
    block = _Block(inplanes, planes, 1, _projection(inplanes, planes, stride) if stride != 1 or inplanes != planes
                   else None)  # fmt: skip
    block.conv2 = M.conv3x3(planes, planes, stride)
    return block


def _with_shortcut(cls, kind: str):
    def build(inplanes, planes, stride):
        changes = stride != 1 or inplanes != planes
        if kind == "reference":
            down = _projection(inplanes, planes, stride) if changes else None
        elif kind == "no-bn":
            down = _projection(inplanes, planes, stride, norm=False) if changes else None
        elif kind == "identity":
            down = None
        else:  # "every block"
            down = _projection(inplanes, planes, stride)
        return cls(inplanes, planes, stride, down)

    return build


BASIC_BLOCK_MISTAKES = (
    Mistake("the ReLU comes before the addition", _with_shortcut(_ReluBeforeAdd, "reference"),
            "Your ReLU acts on the main path before the addition. Add the shortcut to the second BatchNorm's "
            "output first; the ReLU acts on the sum."),
    Mistake("there is no ReLU after the addition", _with_shortcut(_NoReluAfterAdd, "reference"),
            "Your block returns the sum as it is: its last step is a ReLU applied to the sum of the two paths."),
    Mistake("the stride is on the second convolution instead of the first", _stride_on_second,
            "The first 3x3 convolution carries the stride; the second always keeps the size of its input."),
    Mistake("the projection shortcut has no BatchNorm", _with_shortcut(_Block, "no-bn"),
            "Where the shortcut projects, a BatchNorm follows its 1x1 convolution, as one follows each convolution "
            "of the main path (torchvision's downsample is the two together)."),
    Mistake("the shortcut stays the identity where the shape changes", _with_shortcut(_Block, "identity"),
            "Where the stride or the number of channels changes, the input and the main path's output differ in "
            "shape: there the shortcut has to bring the input to the output's shape (option B: a projection)."),
    Mistake("every block has a projection shortcut", _with_shortcut(_Block, "every block"),
            "Project only where the shape changes (option B); elsewhere the shortcut passes the input on unchanged."),
    Mistake("there is no shortcut at all (a plain block)", _with_shortcut(_NoShortcut, "reference"),
            "A residual block adds its input (or its projection) to the main path's output, before the last ReLU."),
)


@exercise(CHAPTER, "BasicBlock with a projection shortcut", "code")
def basic_block(student: object) -> Feedback:
    """A BasicBlock class ``(inplanes, planes, stride)`` with a 1x1 projection + BN where the shape changes."""
    return check_module(
        student, _reference_basic_block, [(16, 16, 1), (16, 32, 2), (16, 32, 1)],
        lambda args: (2, args[0], 8, 8), "your block", BASIC_BLOCK_MISTAKES,
        hint=("Read the trace in \"The BasicBlock\" (Build): two 3x3 convolutions on the main path, a shortcut "
              "beside them, one addition. Then \"Shortcut options A, B and C\": which convolution halves the map "
              "where the shape changes, and how does the shortcut follow?",
              "Main path: convolution, BN, ReLU, convolution, BN; then add the shortcut and apply a ReLU to the sum. "
              "Only the first convolution has the stride. The shortcut is the input itself where stride and "
              "channels stay; otherwise a 1x1 convolution with the block's stride, followed by a BN. Check (16, 32, "
              "2) on a 16x8x8 input: both paths must give 32x4x4."),
    )  # fmt: skip


# --- Exercise: a Bottleneck with expansion = 4 -------------------------------------------------------


def _reference_bottleneck(inplanes: int, planes: int, stride: int) -> nn.Module:
    out = planes * 4
    changes = stride != 1 or inplanes != out
    return M.Bottleneck(inplanes, planes, stride, _projection(inplanes, out, stride) if changes else None)


def _padded_bottleneck(inplanes, planes, stride):
    block = _reference_bottleneck(inplanes, planes, stride)
    block.conv1.padding = block.conv3.padding = (1, 1)
    return block


def _v1_bottleneck(inplanes, planes, stride):
    out = planes * 4
    changes = stride != 1 or inplanes != out
    return M.BottleneckV1(inplanes, planes, stride, _projection(inplanes, out, stride) if changes else None)


class _BottleneckReluBeforeAdd(M.Bottleneck):
    def forward(self, x):
        out = self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))))
        out = torch.relu(self.bn3(self.conv3(out)))
        return out + (x if self.downsample is None else self.downsample(x))


def _bottleneck_relu_before_add(inplanes, planes, stride):
    out = planes * 4
    changes = stride != 1 or inplanes != out
    return _BottleneckReluBeforeAdd(inplanes, planes, stride, _projection(inplanes, out, stride) if changes else None)


BOTTLENECK_MISTAKES = (
    Mistake("a 1x1 convolution has padding=1", _padded_bottleneck,
            "A 1x1 convolution needs no padding: padding of 1 grows the map by 2 pixels, and the addition fails."),
    Mistake("the stride is on the first 1x1 convolution (the paper's v1), not on the 3x3", _v1_bottleneck,
            "This exercise asks for torchvision's placement: the first 1x1 convolution keeps the size, the 3x3 "
            "convolution carries the stride."),
    Mistake("the ReLU comes before the addition", _bottleneck_relu_before_add,
            "The third BatchNorm's output goes into the addition as it is; the ReLU comes after the sum."),
)


@exercise(CHAPTER, "Bottleneck with expansion = 4", "code")
def bottleneck(student: object) -> Feedback:
    """A Bottleneck class ``(inplanes, planes, stride)``: 1x1 to planes, 3x3 (stride), 1x1 to 4 x planes, projection
    + BN where the shape changes, and a class attribute ``expansion = 4``."""
    if isinstance(student, type) and getattr(student, "expansion", None) != 4:
        return Feedback(False, f"{student.__name__}.expansion is {getattr(student, 'expansion', 'missing')!r}; "
                               "set the class attribute expansion = 4 (the builder reads it to size the next "
                               "block).")  # fmt: skip
    return check_module(
        student, _reference_bottleneck, [(64, 16, 1), (64, 32, 2), (32, 16, 1)],
        lambda args: (2, args[0], 8, 8), "your bottleneck", BOTTLENECK_MISTAKES,
        hint=("See \"The Bottleneck\" (Build): a 1x1 convolution that narrows, a 3x3 that does the spatial work, "
              "a 1x1 that widens by the expansion. Which of the three carries the stride in torchvision? \"The "
              "paper's ResNet-50 and torchvision's\" (Run) prints it.",
              "Channels go from inplanes to planes, planes, then 4 x planes; the 3x3 has the stride and the 1x1s no "
              "padding. A BN follows each convolution; a ReLU follows the first two and the sum. The shortcut "
              "projects (1x1 + BN) where the input's channels differ from 4 x planes or the stride is not 1: for "
              "(64, 16, 1) it is the identity, for (32, 16, 1) it is not."),
    )  # fmt: skip


# --- Number, shape and choice ----------------------------------------------------------------------


@exercise(CHAPTER, "Output shape of D2L's layer3", "shape")
def stage_output(answer: object) -> Feedback:
    """D2L's ResNet-18 on 1x96x96: the output shape (C, H, W) of the third stage (``layer3``)."""
    return check_shape(
        answer, (256, 6, 6), "layer3's output (C, H, W) on a 1x96x96 input",
        hint=("Start with the stem: which of its layers have stride 2? Then follow the stages as in "
              "\"Whole networks, traced stage by stage\" (Run).",
              "Each stride-2 layer halves height and width; the first stage keeps the size, each later stage "
              "halves it once and doubles the channels, from 64. A smaller input as an example: on 1x64x64 the "
              "stem gives 64x16x16, layer1 64x16x16, layer2 128x8x8."),
    )  # fmt: skip


@exercise(CHAPTER, "Parameters of ResNet-50's first Bottleneck", "number")
def bottleneck_params(answer: object) -> Feedback:
    """Parameters of ResNet-50's first Bottleneck in ``layer1`` (64 -> 256 channels, with its projection)."""
    return check_number(
        answer, M.count_parameters(M.resnet50().layer1[0]), "the parameters of resnet50.layer1[0]",
        hint=("A convolution without bias has in x out x k x k weights; a BatchNorm has a scale and a shift per "
              "channel. See the trace in \"The Bottleneck\" (Build), of the next block of the same stage.",
              "List the block's layers: three convolutions on the main path (1x1, 3x3, 1x1), the 1x1 projection on "
              "the shortcut, and a BatchNorm after each of the four. Between which channel counts is each? A "
              "smaller example: a 3x3 convolution from 16 to 32 channels has 16 x 32 x 9 = 4,608 weights."),
    )  # fmt: skip


FIND_THE_BUG_OPTIONS = {
    "A": "the 1x1 convolutions are padded, so the map grows by 2 pixels per block",
    "B": "the shortcut is added before the second BatchNorm",
    "C": "the head pools with a fixed 4x4 window, which is only right for 32x32 inputs",
    "D": "the network has 6 blocks per stage, so it is a 38-layer net, not ResNet-20",
}


def mystery_network() -> nn.Module:
    """A network posted online as "ResNet-20 for CIFAR-10". Trace it and find its bug."""
    model = M.ResNet(M.BasicBlock, [6, 6, 6], (16, 32, 64), stem="cifar", shortcut="A", num_classes=10)
    model.arch = "mystery 'ResNet-20'"
    return model


@exercise(CHAPTER, "Find the bug in a posted 'ResNet-20'", "choice")
def find_the_bug(answer: object) -> Feedback:
    """The mystery network: which bug does it have?"""
    return check_choice(
        answer, "D", FIND_THE_BUG_OPTIONS, "the mystery network's bug",
        hint=("Trace it stage by stage, as in \"Bug clinic\" (Run), and compare with what a ResNet-20 has.",
              "A CIFAR ResNet of depth 6n + 2 has n blocks in each of its three stages: n = 3 for ResNet-20. Count "
              "the blocks in each stage of the mystery network, and its layers with weights."),
    )  # fmt: skip


# --- Written -----------------------------------------------------------------------------------

#: What a written interpretation of the ResNet-50 cost is graded on, with the points for each.
RUBRIC_RESNET50_COST = (
    ("Names where the difference comes from: the stride of a downsampling Bottleneck sits on the 3x3 in "
     "torchvision and on the first 1x1 in the paper, so torchvision's 1x1 reduction runs on the map before it is "
     "halved, at four times the pixels.", 1),
    ("Notes that both have the same parameters (25,557,032): the placement changes the work, not the weights.", 1),
    ("Judges the match with Table 1 carefully: 3.858 G is consistent with an approximate 3.8 x 10^9 but does not "
     "round to it, and the 34-layer net (3.664 G against 3.6) shows the table's figures are approximate.", 1),
    ("Says how to report a cost: name the network variant and the input size, and whether the count is of MACs "
     "(one multiplication and one addition each) or of FLOPs.", 1),
)


@exercise(CHAPTER, "Interpret the trace: what does ResNet-50 cost?", "written")
def resnet50_cost(answer: object) -> Feedback:
    """A few sentences: where the difference between 4.089 G and 3.858 G MACs comes from, whether the tracer
    confirms the paper's 3.8 x 10^9, and how you would report ResNet-50's cost."""
    return check_written(
        answer, "the question on the cost of the 50-layer ResNet", own_run.rubric_lines(RUBRIC_RESNET50_COST),
        min_words=40,
        hint=("Read \"The paper's ResNet-50 and torchvision's\" (Run): its two traces and the paragraph after "
              "them; ResNet-34's figure is in the table of \"Checked against torchvision's published figures\".",
              "Cover what the rubric asks: which convolution carries the stride in each, what that does to the "
              "work and to the parameters, how close 3.858 is to Table 1, and what a reported cost should say."),
    )  # fmt: skip

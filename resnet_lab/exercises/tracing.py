"""Exercises of the chapter "Inside the blocks: tracing shapes"."""

from __future__ import annotations

import torch
from torch import nn

from .. import models as M
from .engine import Feedback, Mistake, check_choice, check_module, check_number, check_shape, exercise

CHAPTER = "tracing"


# --- Exercise: a BasicBlock, and the usual ways to get it wrong -------------------------------------


def _projection(inplanes: int, planes: int, stride: int, norm: bool = True) -> nn.Module:
    conv = M.conv1x1(inplanes, planes, stride)
    return nn.Sequential(conv, nn.BatchNorm2d(planes)) if norm else nn.Sequential(conv)


def reference_basic_block(inplanes: int, planes: int, stride: int) -> nn.Module:
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
            "Add the shortcut to bn2's output first, then apply the ReLU: out = relu(bn2(conv2(...)) + shortcut(x))."),
    Mistake("there is no ReLU after the addition", _with_shortcut(_NoReluAfterAdd, "reference"),
            "The block ends with a ReLU applied to the sum F(x) + shortcut(x)."),
    Mistake("the stride is on the second convolution instead of the first", _stride_on_second,
            "The first 3x3 convolution carries the stride; the second always has stride 1."),
    Mistake("the projection shortcut has no BatchNorm", _with_shortcut(_Block, "no-bn"),
            "Follow the 1x1 projection by a BatchNorm2d, as torchvision does: nn.Sequential(conv1x1, BatchNorm2d)."),
    Mistake("the shortcut stays the identity where the shape changes", _with_shortcut(_Block, "identity"),
            "Where stride != 1 or the channels change, x and F(x) differ in shape: project x with a 1x1 "
            "convolution of the same stride, then BN."),
    Mistake("every block has a projection shortcut", _with_shortcut(_Block, "every block"),
            "Project only where the shape changes (option B); elsewhere the shortcut is the identity, x itself."),
    Mistake("there is no shortcut at all (a plain block)", _with_shortcut(_NoShortcut, "reference"),
            "A residual block adds its input back: out = relu(F(x) + shortcut(x))."),
)


@exercise(CHAPTER, "BasicBlock with a projection shortcut", "code")
def basic_block(student: object) -> Feedback:
    """A BasicBlock class ``(inplanes, planes, stride)`` with a 1x1 projection + BN where the shape changes."""
    return check_module(
        student, reference_basic_block, [(16, 16, 1), (16, 32, 2), (16, 32, 1)],
        lambda args: (2, args[0], 8, 8), "your block", BASIC_BLOCK_MISTAKES,
        hint="Two 3x3 convolutions (the first with the stride), BN after each, ReLU after the first and after "
        "the sum; the shortcut is x itself, or a 1x1 convolution with the same stride plus BN where shapes change.",
    )  # fmt: skip


# --- Exercise: a Bottleneck with expansion = 4 -------------------------------------------------------


def reference_bottleneck(inplanes: int, planes: int, stride: int) -> nn.Module:
    out = planes * 4
    changes = stride != 1 or inplanes != out
    return M.Bottleneck(inplanes, planes, stride, _projection(inplanes, out, stride) if changes else None)


def _padded_bottleneck(inplanes, planes, stride):
    block = reference_bottleneck(inplanes, planes, stride)
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
            "A 1x1 convolution needs no padding: padding=1 grows the map by 2 pixels and the addition fails."),
    Mistake("the stride is on the first 1x1 convolution (the paper's v1), not on the 3x3", _v1_bottleneck,
            "This exercise asks for torchvision's placement: conv1 (1x1) stride 1, conv2 (3x3) with the stride."),
    Mistake("the ReLU comes before the addition", _bottleneck_relu_before_add,
            "bn3's output is added to the shortcut first; the ReLU comes after the sum."),
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
        student, reference_bottleneck, [(64, 16, 1), (64, 32, 2), (32, 16, 1)],
        lambda args: (2, args[0], 8, 8), "your bottleneck", BOTTLENECK_MISTAKES,
        hint="conv1 1x1 inplanes->planes, conv2 3x3 planes->planes with the stride, conv3 1x1 planes->4*planes, "
        "BN after each, ReLU after the first two and after the sum; project x (1x1 + BN) where shapes differ.",
    )  # fmt: skip


# --- Number, shape and choice ----------------------------------------------------------------------


@exercise(CHAPTER, "Output shape of D2L's layer3", "shape")
def stage_output(answer: object) -> Feedback:
    """D2L's ResNet-18 on 1x96x96: the output shape (C, H, W) of the third stage (``layer3``)."""
    return check_shape(
        answer, (256, 6, 6), "layer3's output (C, H, W) on a 1x96x96 input",
        hint="The stem divides the size by 4 (stride-2 conv, stride-2 pool): 96 -> 24. "
        "layer1 keeps it, layer2 and layer3 each halve it; layer3 has 256 channels.",
    )  # fmt: skip


@exercise(CHAPTER, "Parameters of ResNet-50's first Bottleneck", "number")
def bottleneck_params(answer: object) -> Feedback:
    """Parameters of ResNet-50's first Bottleneck in ``layer1`` (64 -> 256 channels, with its projection)."""
    return check_number(
        answer, M.count_parameters(M.resnet50().layer1[0]), "the parameters of resnet50.layer1[0]",
        hint="Count each convolution as in x out x k x k (no bias), each BatchNorm as 2 x channels: "
        "1x1 64->64, 3x3 64->64, 1x1 64->256, and the projection shortcut 1x1 64->256 with its BN.",
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
        hint="Trace it with depth='blocks' and count the blocks in each stage; then count weighted layers.",
    )  # fmt: skip

"""Exercise checkers: right answers pass, wrong and broken ones get specific feedback."""

from __future__ import annotations

import torch
from torch import nn

from resnet_lab import exercises as E
from resnet_lab import models as M


def test_number_checker():
    assert E.check_number(42, 42, "x").correct
    fb = E.check_number(50, 42, "x", hint="think")
    assert not fb.correct and "too high" in str(fb) and "Hint: think" in str(fb)
    assert "Expected a number" in str(E.check_number("forty", 42, "x"))
    assert "No answer yet" in str(E.check_number(..., 42, "x"))
    assert E.check_number(torch.tensor(42), 42, "x").correct


def test_shape_checker():
    assert E.check_shape(torch.Size([256, 6, 6]), (256, 6, 6), "s").correct
    assert "dimension(s) [1, 2]" in str(E.check_shape((256, 12, 12), (256, 6, 6), "s"))
    assert "has 3 dimensions; you gave 4" in str(E.check_shape((1, 256, 6, 6), (256, 6, 6), "s"))
    assert "Expected a shape" in str(E.check_shape(5, (1,), "s"))


def test_chapter_answers():
    assert E.shapes_stage_output((256, 6, 6)).correct
    # The true stage output, traced, is what the checker expects.
    model = M.d2l_resnet18().eval()
    with torch.no_grad():
        h = model.maxpool(model.relu(model.bn1(model.conv1(torch.zeros(1, 1, 96, 96)))))
        h = model.layer3(model.layer2(model.layer1(h)))
    assert E.shapes_stage_output(h.shape[1:]).correct
    assert E.shapes_bottleneck_params(75_008).correct
    assert not E.shapes_bottleneck_params(58_880).correct  # forgot the projection
    assert E.shapes_find_the_bug("d").correct
    assert "Answer with one of A, B, C, D" in str(E.shapes_find_the_bug("E"))


class GoodBlock(nn.Module):
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


class PlainBlock(GoodBlock):
    def forward(self, x):
        return torch.relu(self.b2(self.c2(torch.relu(self.b1(self.c1(x))))))


class PaddedBlock(GoodBlock):
    def __init__(self, inplanes, planes, stride):
        super().__init__(inplanes, planes, stride)
        self.c2 = nn.Conv2d(planes, planes, 3, 1, 2, bias=False)  # grows the map


class NoStrideBlock(GoodBlock):
    def __init__(self, inplanes, planes, stride):
        super().__init__(inplanes, planes, 1)  # ignores the stride


class CrashingBlock(nn.Module):
    def __init__(self, inplanes, planes, stride):
        super().__init__()
        raise NotImplementedError("TODO")


def test_block_checker_accepts_a_correct_block():
    fb = E.shapes_basic_block(GoodBlock)
    assert fb.correct, str(fb)


def test_block_checker_explains_each_kind_of_mistake():
    assert "does not add its input back" in str(E.shapes_basic_block(PlainBlock))
    assert "failed: RuntimeError: The size of tensor a (10)" in str(E.shapes_basic_block(PaddedBlock))
    assert "should output (2, 64, 8, 8) for input (2, 32, 16, 16); got (2, 64, 16, 16)" in str(
        E.shapes_basic_block(NoStrideBlock)
    )
    assert "Building your block(32, 64, 2) failed: NotImplementedError: TODO" in str(
        E.shapes_basic_block(CrashingBlock)
    )
    assert "Hint:" in str(E.shapes_basic_block(PlainBlock))
    assert not E.shapes_basic_block(nn.Linear).correct
    assert not E.shapes_basic_block(42).correct


def test_feedback_renders_html():
    assert "Correct!" in E.Feedback(True, "ok")._repr_html_()
    assert "Hint" in E.Feedback(False, "no", "try <this>")._repr_html_()
    assert "&lt;this&gt;" in E.Feedback(False, "no", "try <this>")._repr_html_()

"""The shape tracer against hand counts and torchvision's published figures."""

import pytest
import torch
import torchvision
from torch import nn

from resnet_lab import models as M
from resnet_lab.trace import trace


def test_resnet18_macs_match_torchvisions_published_gflops():
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    published = weights.meta["_ops"] * 1e9  # 1.814 G
    t = trace(torchvision.models.resnet18(), (3, 224, 224))
    assert abs(t.total_macs - published) / published < 0.01


def test_resnet50_macs_match_torchvisions_published_gflops():
    published = torchvision.models.ResNet50_Weights.IMAGENET1K_V1.meta["_ops"] * 1e9  # 4.089 G
    t = trace(M.resnet50(), (1, 3, 224, 224))
    assert abs(t.total_macs - published) / published < 0.01


def test_resnet18_total_macs_match_torchvisions_module_for_module():
    ours = trace(M.resnet18(), (1, 3, 224, 224), depth="stages")
    theirs = trace(torchvision.models.resnet18(), (1, 3, 224, 224), depth="stages")
    assert [(r.path, r.output_shape, r.macs) for r in ours.rows] == [(r.path, r.output_shape, r.macs)
                                                                     for r in theirs.rows]  # fmt: skip


@pytest.mark.parametrize("ctor", [M.resnet20, M.d2l_resnet18, M.resnet50])
def test_parameter_total_equals_numel_sum(ctor):
    model = ctor()
    t = trace(model, (1, model.in_channels, 64, 64), depth="layers")
    assert t.total_params == sum(p.numel() for p in model.parameters())
    # Top-level rows partition the model's parameters and MACs.
    top = [r for r in t.rows if r.depth == 1]
    assert sum(r.params for r in top) == t.total_params
    assert sum(r.macs for r in top) == t.total_macs


def test_conv_and_linear_macs_by_hand():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(8 * 5 * 5, 4))
    t = trace(model, (1, 3, 5, 5), depth="layers")
    assert t.row("0").macs == 8 * 5 * 5 * 3 * 3 * 3
    assert t.row("2").macs == 200 * 4
    assert t.total_macs == 8 * 5 * 5 * 27 + 800
    assert t.row("0").output_shape == (1, 8, 5, 5)


def test_depths_select_stages_blocks_or_every_layer():
    model = M.resnet20()
    stages = trace(model, (3, 32, 32), depth="stages")
    blocks = trace(model, (3, 32, 32), depth="blocks")
    layers = trace(model, (3, 32, 32), depth="layers")
    assert [r.path for r in stages.rows] == [
        "conv1",
        "bn1",
        "relu",
        "maxpool",
        "layer1",
        "layer2",
        "layer3",
        "avgpool",
        "fc",
    ]
    assert {r.path for r in blocks.rows} >= {"layer1.0", "layer3.2"}
    assert "layer1.0.conv1" not in {r.path for r in blocks.rows}
    assert "layer2.0.downsample" in {r.path for r in layers.rows}
    assert stages.row("layer3").output_shape == (1, 64, 8, 8)
    assert stages.total_macs == blocks.total_macs == layers.total_macs


def test_rows_follow_call_order_and_list_every_call():
    rows = trace(M.BasicBlock(8, 8), (1, 8, 6, 6), depth="layers").rows
    assert [(r.name, r.type, r.call) for r in rows] == [
        ("conv1", "Conv2d", 1), ("bn1", "BatchNorm2d", 1), ("relu", "ReLU", 1), ("conv2", "Conv2d", 1),
        ("bn2", "BatchNorm2d", 1), ("+", "add", 1), ("relu", "ReLU", 2),
    ]  # fmt: skip
    assert rows[-1].label == "ReLU (call 2)"


def test_each_addition_is_a_row_with_both_operand_shapes():
    t = trace(M.resnet20(), (1, 3, 32, 32), depth="layers")
    adds = t.additions()
    assert len(adds) == 9  # one per BasicBlock
    first_of_stage2 = t.row("layer2.0.+")
    assert first_of_stage2.operands == ((1, 32, 16, 16), (1, 32, 16, 16))
    assert first_of_stage2.output_shape == (1, 32, 16, 16) and first_of_stage2.depth == 3
    assert "1x32x16x16 + 1x32x16x16" in t.to_text()
    # An addition sits one level below its block: hidden at depth "blocks", shown at "layers".
    assert not [r for r in trace(M.resnet20(), (1, 3, 32, 32), depth="blocks").rows if r.is_addition]


def test_failing_addition_shows_both_shapes():
    class PaddedBottleneck(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(4, 4, 1, padding=1)

        def forward(self, x):
            return self.conv(x) + x

    t = trace(PaddedBottleneck(), (1, 4, 6, 6), depth="layers", raise_errors=False)
    add = t.rows[-1]
    assert add.is_addition and add.operands == ((1, 4, 8, 8), (1, 4, 6, 6)) and add.output_shape is None
    assert "must match" in t.error


def test_text_rendering_lists_shapes_and_totals():
    text = trace(M.resnet20(), (1, 3, 32, 32), depth="stages").to_text()
    assert "layer2" in text and "1x32x16x16" in text
    assert "269,722" in text
    assert text.splitlines()[0].startswith("CIFAR ResNet-20 (option A) on input 1x3x32x32")


def test_html_rendering_is_a_table():
    html = trace(M.resnet20(), (3, 32, 32))._repr_html_()
    assert html.count("<tr>") > 10 and "269,722" in html


def test_model_mode_is_restored_and_no_hooks_left():
    model = M.resnet20().train()
    trace(model, (3, 32, 32))
    assert model.training
    assert all(not m._forward_hooks for m in model.modules())


def test_failed_forward_pass_returns_partial_trace_when_asked():
    class FixedPoolHead(nn.Module):
        """The circulating bug: avg_pool2d(out, 4) assumes a 32x32 input."""

        def __init__(self):
            super().__init__()
            self.body = nn.Conv2d(1, 4, 3, padding=1)
            self.fc = nn.Linear(4, 10)

        def forward(self, x):
            out = torch.nn.functional.avg_pool2d(self.body(x), 4)
            return self.fc(out.flatten(1))

    t = trace(FixedPoolHead(), (1, 28, 28), raise_errors=False)
    assert t.error and "mat1 and mat2" in t.error
    assert t.row("body").output_shape == (1, 4, 28, 28)
    assert "FAILED" in t.to_text()
    with pytest.raises(RuntimeError):
        trace(FixedPoolHead(), (1, 28, 28))


def test_bad_depth_argument():
    with pytest.raises(ValueError, match="depth must be"):
        trace(M.resnet20(), (3, 32, 32), depth="everything")

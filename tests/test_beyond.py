"""Lesions, loss landscapes and zero-init measurements of the chapter "Beyond the original ResNet"."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from resnet_lab import models as M
from resnet_lab.chapters import beyond as B


def _batches(n=16, channels=1, size=12, classes=4):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(n, channels, size, size, generator=g), torch.arange(n) % classes)]


def test_deletable_blocks_are_the_shape_preserving_ones():
    model = M.cifar_resnet(20)
    assert B.deletable_blocks(model) == [(1, 0), (1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2)]
    assert len(B.deletable_blocks(M.cifar_resnet(20, plain=True))) == 7


def test_deleting_a_block_gives_a_working_copy_and_leaves_the_original_alone():
    model = M.cifar_resnet(14, in_channels=1, num_classes=4).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lesioned = B.delete_block(model, 2, 1)
    assert isinstance(lesioned.layer2[1], nn.Identity) and isinstance(model.layer2[1], M.BasicBlock)
    x = torch.randn(2, 1, 12, 12)
    with torch.no_grad():
        assert lesioned(x).shape == (2, 4)
        expected = model.fc(model.avgpool(model.layer3(model.layer2[0](model.layer1(
            model.relu(model.bn1(model.conv1(x))))))).flatten(1))  # fmt: skip
        torch.testing.assert_close(lesioned(x), expected)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ValueError, match="changes the shape"):
        B.delete_block(model, 2, 0)


def test_lesion_study_deletes_one_at_a_time_then_cumulatively():
    model = M.cifar_resnet(14, in_channels=1, num_classes=4)
    study = B.lesion_study(model, _batches())
    n = len(B.deletable_blocks(model))
    assert len(study["single"]) == len(study["cumulative"]) == n == 4  # (1, 0), (1, 1), (2, 1), (3, 1)
    assert 0 <= study["intact"] <= 1 and study["blocks"][0] == (1, 0)
    assert sorted(study["order"]) == sorted(study["blocks"])
    assert [study["single"][study["blocks"].index(b)] for b in study["order"]] == sorted(study["single"])


def test_zero_init_blocks_are_the_identity_at_initialisation():
    assert max(B.identity_gap(M.cifar_resnet(20, zero_init_residual=True), (3, 16, 16))) == 0.0
    assert min(B.identity_gap(M.cifar_resnet(20), (3, 16, 16))) > 0.1


def test_loss_surface_at_the_origin_is_the_models_loss():
    torch.manual_seed(0)
    model = M.cifar_resnet(8, in_channels=1, num_classes=4)
    batches = _batches()
    coords, losses = B.loss_surface(model, batches, points=3, span=0.5)
    assert coords.tolist() == [-0.5, 0.0, 0.5] and losses.shape == (3, 3)
    assert losses[1, 1].item() == pytest.approx(B.batch_loss(model, batches), rel=1e-6)
    assert not torch.allclose(losses[0, 0], losses[1, 1])


def test_loss_along_line_ends_at_both_models():
    torch.manual_seed(0)
    start, end = M.cifar_resnet(8, in_channels=1, num_classes=4), M.cifar_resnet(8, in_channels=1, num_classes=4)
    batches = _batches()
    alphas, losses = B.loss_along_line(end, start, batches, points=5, extend=0.0)
    assert alphas == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert losses[-1] == pytest.approx(B.batch_loss(end, batches), rel=1e-6)
    mixed = M.cifar_resnet(8, in_channels=1, num_classes=4)
    mixed.load_state_dict(end.state_dict())  # the end's BN statistics, the start's weights
    with torch.no_grad():
        for p, q in zip(mixed.parameters(), start.parameters()):
            p.copy_(q)
    assert losses[0] == pytest.approx(B.batch_loss(mixed, batches), rel=1e-5)


def test_filter_normalised_direction_has_the_weights_filter_norms():
    model = M.cifar_resnet(8, in_channels=1, num_classes=4)
    direction = B.filter_normalized_direction(model, seed=0)
    for p, d in zip(model.parameters(), direction):
        if p.dim() > 1:
            torch.testing.assert_close(d.flatten(1).norm(dim=1), p.detach().flatten(1).norm(dim=1), rtol=1e-4,
                                       atol=1e-6)  # fmt: skip
        else:
            assert not d.any()

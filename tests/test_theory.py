"""Residual-learning measurements: gradient norms, the identity task, shattered gradients."""

from __future__ import annotations

import math

import pytest
import torch

from resnet_lab import models as M
from resnet_lab.chapters.residual import (
    ScalarNet,
    autocorrelation,
    cifar_gradient_norms,
    gradient_norms,
    learn_identity,
    shattered_gradients,
    shattering,
)


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 1, 16, 16, generator=g), torch.arange(16) % 10


def test_gradient_norms_one_per_main_path_convolution():
    x, y = _batch()
    norms = gradient_norms(M.cifar_resnet(20, "B", in_channels=1), x, y)
    assert len(norms) == 19  # 1 stem + 18 block convs; projections excluded
    assert all(n > 0 for n in norms)


def test_plain_stacks_spread_gradients_more_than_residual_and_preact_ones():
    x, y = _batch()

    def spread(norms):
        return max(norms) / min(norms)

    plain, post, pre = (spread(cifar_gradient_norms(56, kind, x, y)) for kind in ("plain", "residual", "preact"))
    assert post < plain and pre < plain
    with pytest.raises(ValueError, match="kind must be"):
        cifar_gradient_norms(20, "dense", x, y)


def test_residual_block_learns_the_identity_faster():
    curves = learn_identity(width=16, layers=2, steps=100)
    assert curves["residual"][-1] < curves["plain"][-1] / 10


def test_scalar_net_update_is_what_its_docstring_says():
    torch.manual_seed(0)
    net = ScalarNet(3, width=5, residual=True).eval()
    x = torch.randn(4, 1)
    with torch.no_grad():
        h = torch.relu(net.inp(x))
        for lin, bn in zip(net.hidden, net.norms):
            h = h + torch.relu(bn(lin(h)))
        torch.testing.assert_close(net(x), net.out(h))


def test_per_input_gradients_do_not_depend_on_the_other_inputs():
    # With BN's statistics fixed, the gradient at a point is the same whether or not its neighbours are there.
    xs, g = shattered_gradients(10, False, points=64, width=32, seed=3)
    net = ScalarNet(10, 32, False)
    torch.manual_seed(3)
    net = ScalarNet(10, 32, False)
    for bn in net.norms:
        bn.momentum = None
    with torch.no_grad():
        net.train()(xs.unsqueeze(1))
    net.eval()
    one = xs[10:11].unsqueeze(1).requires_grad_(True)
    (alone,) = torch.autograd.grad(net(one).sum(), one)
    assert alone.item() == pytest.approx(g[10].item(), rel=1e-5)


def test_deep_plain_gradients_are_shattered_and_residual_ones_are_not_at_lag_one():
    shallow, plain, residual = (shattering(d, r, seeds=3, points=128, width=64) for d, r in
                                ((2, False), (30, False), (30, True)))  # fmt: skip
    assert plain[1][0] < 0.3 < residual[1][0] and plain[1][0] < shallow[1][0]
    assert all(sd >= 0 for _, sd in plain.values())


def test_autocorrelation_of_a_smooth_and_a_noisy_signal():
    smooth = torch.sin(torch.linspace(0, 2 * math.pi, 200))
    noise = torch.randn(200, generator=torch.Generator().manual_seed(0))
    assert autocorrelation(smooth, 3)[0].item() == pytest.approx(1.0, abs=0.02)
    assert autocorrelation(smooth, 3)[1] > 0.95 and abs(autocorrelation(noise, 3)[1]) < 0.2

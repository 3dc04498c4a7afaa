"""Residual-learning measurements and the degradation experiment's bookkeeping."""

from __future__ import annotations

import math

import pytest
import torch

from resnet_lab import exercises as E
from resnet_lab import models as M
from resnet_lab.experiments import DegradationResult, degradation_table, degradation_verdict, run_degradation
from resnet_lab.profiles import PROFILES
from resnet_lab.theory import autocorrelation, cifar_gradient_norms, gradient_norms, learn_identity, shattered_gradients
from resnet_lab.train import EpochRecord, History
from tests.conftest import needs_fashion


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 1, 16, 16, generator=g), torch.arange(16) % 10


def test_gradient_norms_one_per_main_path_convolution():
    x, y = _batch()
    norms = gradient_norms(M.cifar_resnet(20, "B", in_channels=1), x, y)
    assert len(norms) == 19  # 1 stem + 18 block convs; projections excluded
    assert all(n > 0 for n in norms)


def test_residual_gradients_spread_less_than_plain_at_depth():
    x, y = _batch()

    def spread(norms):
        return max(norms) / min(norms)

    plain = cifar_gradient_norms(56, True, x, y)
    residual = cifar_gradient_norms(56, False, x, y)
    assert spread(residual) < spread(plain)


def test_residual_block_learns_the_identity_faster():
    curves = learn_identity(width=16, layers=2, steps=100)
    assert curves["residual"][-1] < curves["plain"][-1] / 10


def test_deep_plain_gradients_are_shattered_and_residual_ones_are_not():
    lag1 = {}
    for name, depth, residual in (("shallow", 2, False), ("plain", 30, False), ("residual", 30, True)):
        _, g = shattered_gradients(depth, residual, points=128, width=64)
        lag1[name] = autocorrelation(g, 5)[1].item()
    assert lag1["plain"] < lag1["residual"] and lag1["plain"] < lag1["shallow"]


def test_autocorrelation_of_a_smooth_and_a_noisy_signal():
    smooth = torch.sin(torch.linspace(0, 2 * math.pi, 200))
    noise = torch.randn(200, generator=torch.Generator().manual_seed(0))
    assert autocorrelation(smooth, 3)[0].item() == pytest.approx(1.0, abs=0.02)
    assert autocorrelation(smooth, 3)[1] > 0.95 and abs(autocorrelation(noise, 3)[1]) < 0.2


def _fake(train_errors: dict[str, float]) -> DegradationResult:
    result = DegradationResult("synthetic", 100, 50, (8, 56))
    for key, err in train_errors.items():
        h = History()
        h.records.append(EpochRecord(1, 10, 0.1, 1.0, err, 1.0, err + 0.01, 100.0, 1.0))
        result.histories[key] = h
    return result


def test_verdict_reports_degradation_from_the_numbers():
    shown, text = degradation_verdict(_fake({"plain-8": 0.10, "residual-8": 0.09, "plain-56": 0.20,
                                             "residual-56": 0.12}))  # fmt: skip
    assert shown and "plain-56 ended with 20.0% training error against 10.0% for plain-8" in text
    assert "12.0% for ResNet-56" in text


def test_verdict_says_so_when_the_effect_is_missing():
    shown, text = degradation_verdict(_fake({"plain-8": 0.10, "residual-8": 0.09, "plain-56": 0.11,
                                             "residual-56": 0.10}))  # fmt: skip
    assert not shown and "does not show the effect" in text and "not 3+ points worse" in text


def test_table_cites_the_papers_figures_as_theirs():
    table = degradation_table(_fake({"plain-8": 0.1, "residual-8": 0.1, "plain-56": 0.2, "residual-56": 0.1}))
    assert "6.97" in table and "He et al. (2015), Table 6" in table and "not this run's" in table


@needs_fashion
def test_smoke_degradation_run_end_to_end():
    result = run_degradation(PROFILES["smoke"], device="cpu", progress=False)
    assert set(result.histories) == {"plain-8", "residual-8", "plain-14", "residual-14"}
    assert (
        result.train_images == 256
        and result.history("plain", 14).info["params"] == result.history("residual", 14).info["params"]
    )
    assert isinstance(degradation_verdict(result)[1], str)


def test_new_chapter_checkers():
    assert E.theory_residual_gradient(2.5937).correct and not E.theory_residual_gradient(2.0).correct
    assert E.theory_plain_gradient(1e-10).correct and not E.theory_plain_gradient(0.0).correct
    assert E.theory_shattered("b").correct and not E.theory_shattered("C").correct
    assert E.degradation_plain_params(853_018).correct
    assert E.degradation_which_deeper("Y").correct and not E.degradation_which_deeper("X").correct
    assert E.degradation_explain("B").correct and "Overfitting" in str(E.degradation_explain("A"))

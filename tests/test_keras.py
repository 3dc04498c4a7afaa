"""The same ResNet in Keras: equal outputs after copying weights, and each difference made visible."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from resnet_lab import models as M
from resnet_lab.chapters import keras as K
from resnet_lab.exercises.engine import randomize_batchnorm
from resnet_lab.recipes import LAPTOP


@pytest.fixture(scope="module")
def ours():
    torch.manual_seed(0)
    model = M.resnet20().eval()
    randomize_batchnorm(model, 0)  # non-trivial BN statistics, so a BN mismatch would show
    return model


def _outputs(ours, keras_model, x):
    with torch.no_grad():
        a = ours(x).numpy()
    b = np.asarray(keras_model(K.keras_input(x), training=False).detach().cpu())
    return a, b


def test_copied_weights_give_the_same_outputs(ours):
    model = K.keras_resnet(20)
    K.copy_weights(ours, model)
    a, b = _outputs(ours, model, torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1)))
    assert np.abs(a - b).max() < 1e-4


def test_parameter_counts_differ_by_the_moving_statistics(ours):
    trainable, total = K.parameter_counts(K.keras_resnet(20))
    bn_channels = sum(m.num_features for m in ours.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert trainable == M.count_parameters(ours) == 269_722 and total - trainable == 2 * bn_channels == 1_376


@pytest.mark.parametrize("change", [{"explicit_padding": False}, {"epsilon": 1e-3}])
def test_keras_defaults_change_the_outputs(ours, change):
    model = K.keras_resnet(20, **change)
    K.copy_weights(ours, model)
    a, b = _outputs(ours, model, torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1)))
    assert np.abs(a - b).max() > 1e-2


def test_layout_helpers():
    w = torch.randn(8, 4, 3, 2)
    assert K.torch_kernel_to_keras(w).shape == (3, 2, 4, 8) and K.torch_momentum_to_keras(0.1) == pytest.approx(0.9)
    assert K.keras_input(torch.zeros(2, 3, 5, 7)).shape == (2, 5, 7, 3)
    assert len(K.DIFFERENCES) >= 6


def test_keras_fit_trains_and_reports_per_epoch():
    g = np.random.default_rng(0)
    y = np.arange(64) % 4
    x = (y[:, None, None, None] * 0.5 + 0.1 * g.standard_normal((64, 12, 12, 1))).astype("float32")
    model = K.keras_resnet(8, in_channels=1, num_classes=4, size=12, weight_decay=LAPTOP.weight_decay, flip=True)
    history = K.keras_fit(model, LAPTOP.replace(batch_size=32), x, y, x[:32], y[:32], epochs=2, num_classes=4)
    assert len(history["loss"]) == 2 and history["loss"][1] < history["loss"][0]
    assert set(history) >= {"accuracy", "val_loss", "val_accuracy"}

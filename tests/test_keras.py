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


def test_momentum_rules_part_when_the_rate_changes():
    # By hand, gradient 1 at both steps, momentum 0.9, from w = 0:
    # PyTorch: b = 1, w = -0.1; b = 0.9 + 1 = 1.9, w = -0.1 - 0.01 * 1.9 = -0.119.
    # Keras: v = -0.1, w = -0.1; v = -0.09 - 0.01 = -0.1, w = -0.2.
    changing = ([1.0, 1.0], [0.1, 0.01])
    assert K.momentum_rule("pytorch", *changing, 0.9) == pytest.approx([-0.1, -0.119])
    assert K.momentum_rule("keras", *changing, 0.9) == pytest.approx([-0.1, -0.2])
    constant = ([1.0, 1.0], [0.1, 0.1])  # both: -0.1, then -0.1 - 0.19 = -0.29
    assert K.momentum_rule("pytorch", *constant, 0.9) == pytest.approx(K.momentum_rule("keras", *constant, 0.9))
    assert K.momentum_rule("keras", *constant, 0.9)[-1] == pytest.approx(-0.29)
    steady = ([1.0, 2.0, 3.0], [0.05] * 3)
    assert K.momentum_rule("pytorch", *steady, 0.9, nesterov=True) == pytest.approx(
        K.momentum_rule("keras", *steady, 0.9, nesterov=True))
    with pytest.raises(ValueError, match="one rate per gradient"):
        K.momentum_rule("keras", [1.0], [0.1, 0.1], 0.9)


@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("framework", ["pytorch", "keras"])
def test_the_real_optimisers_follow_the_written_rules(framework, nesterov):
    grads, rates = [1.0, -2.0, 0.5], [0.1, 0.03, 0.01]
    expected = K.momentum_rule(framework, grads, rates, 0.9, nesterov=nesterov, w0=0.3)
    assert K.optimizer_steps(framework, grads, rates, 0.9, nesterov=nesterov, w0=0.3) == pytest.approx(expected,
                                                                                                        abs=1e-6)
    other = "keras" if framework == "pytorch" else "pytorch"
    assert abs(K.momentum_rule(other, grads, rates, 0.9, nesterov=nesterov, w0=0.3)[-1] - expected[-1]) > 1e-2


def test_batchnorm_moving_variance_biased_in_keras_unbiased_in_pytorch():
    x = np.array([[0.0], [2.0]])  # biased variance 1, unbiased 2
    running, moving = K.batchnorm_variance_step(x)
    assert running == pytest.approx([0.9 + 0.1 * 2]) and moving == pytest.approx([0.9 + 0.1 * 1])
    batch = np.random.default_rng(0).normal(3.0, 2.0, (16, 5))
    running, moving = K.batchnorm_variance_step(batch)
    assert running == pytest.approx(K.moving_variance(batch, unbiased=True), rel=1e-5)
    assert moving == pytest.approx(K.moving_variance(batch, unbiased=False), rel=1e-5)
    # the increments differ by n / (n - 1)
    assert (running - 0.9) / (moving - 0.9) == pytest.approx(np.full(5, 16 / 15), rel=1e-4)


def test_l2_of_half_the_decay_is_pytorch_weight_decay_and_keras_decay_is_decoupled():
    # By hand, wd 0.1, rate 0.1, momentum 0.9, w = 1, data gradient 0:
    # coupled: g = 0.1, w = 0.99; g = 0.099, b = 0.09 + 0.099 = 0.189, w = 0.99 - 0.0189 = 0.9711.
    # decoupled: w = 1 - 0.1 * 0.1 * 1 = 0.99; w = 0.99 * 0.99 = 0.9801 (momentum sees no gradient).
    steps = K.weight_decay_steps(0.1, 0.1, 0.9, 2)
    torch_w, l2_w, decoupled_w = steps.values()
    assert torch_w == pytest.approx([0.99, 0.9711], abs=1e-6) and l2_w == pytest.approx(torch_w, abs=1e-6)
    assert decoupled_w == pytest.approx([0.99, 0.9801], abs=1e-6)


def test_the_default_initialisations_differ_as_the_table_says():
    torch.manual_seed(0)
    conv = M.resnet20().layer3[0].conv2.weight  # 64 x 64 x 3 x 3: He-normal, fan_out = 64 * 9
    assert conv.std().item() == pytest.approx((2 / (64 * 9)) ** 0.5, rel=0.05)
    kernel = np.asarray(K.keras_resnet(20).get_layer("layer3_0_conv2").kernel.numpy())
    bound = (6 / (2 * 64 * 9)) ** 0.5  # Glorot-uniform: fan_in = fan_out = 64 * 9
    assert np.abs(kernel).max() <= bound and kernel.std() == pytest.approx(bound / 3**0.5, rel=0.05)
    assert "initialisation" in {row[0] for row in K.DIFFERENCES}


def test_the_differences_table_has_the_training_rules():
    assert {"weight decay", "SGD momentum", "BatchNorm moving variance"} <= {row[0] for row in K.DIFFERENCES}
    assert all(len(row) == 4 for row in K.DIFFERENCES)

"""The book's CIFAR ResNet in Keras 3, and the bridge between the two frameworks.

Keras 3 runs on PyTorch when ``KERAS_BACKEND=torch`` is set before its first
import; :func:`keras` does that (and refuses a Keras already running on
another backend). :func:`keras_resnet` builds the CIFAR ResNet of
:func:`resnet_lab.models.cifar_resnet` with ``keras.layers``, the way Keras
tutorials write it; :func:`copy_weights` copies our weights into it, which
bridges every difference in :data:`DIFFERENCES` that decides the outputs.
Two differences are rules inside training that Keras offers no setting for:
how SGD's momentum meets a changing learning rate (:func:`momentum_rule`,
run by the real optimisers in :func:`optimizer_steps`) and which batch
variance BatchNorm averages (:func:`moving_variance`,
:func:`batchnorm_variance_step`); :func:`weight_decay_steps` shows why the
book's Keras model uses an L2 penalty for PyTorch's weight decay. Chapter
"The same ResNet in Keras" demonstrates each difference and trains both
(:func:`networks` is the PyTorch side of that run, :func:`plan` the work of both).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from .. import models as M
from .. import sizes as S
from ..history import RunKey
from ..recipes import Recipe
from ..sizes import PlannedRun, input_shape
from ..train import lr_at

__all__ = [
    "Sizes", "SIZES", "networks", "plan", "keras", "keras_resnet", "copy_weights", "keras_input", "DIFFERENCES",
    "torch_kernel_to_keras", "torch_momentum_to_keras", "keras_fit", "parameter_counts", "momentum_rule",
    "optimizer_steps", "moving_variance", "batchnorm_variance_step", "weight_decay_steps"
]  # fmt: skip

@dataclass(frozen=True, kw_only=True)
class Sizes:
    """A brief run of both frameworks on ``train`` Fashion-MNIST images for ``epochs``."""

    train: int = S.images()
    test: int = S.images()
    epochs: int = S.epochs()


SIZES = {
    "smoke": Sizes(train=256, test=128, epochs=1),
    "cpu": Sizes(train=5_000, test=1_000, epochs=6),
    "gpu": Sizes(train=10_000, test=2_000, epochs=5),
    "paper": Sizes(train=60_000, test=10_000, epochs=15),
}


def networks(sizes: Sizes) -> dict[RunKey, nn.Module]:
    """The PyTorch side of the comparison: ResNet-20 on one channel
    (Keras builds the same with :func:`keras_resnet`)."""
    return {RunKey("PyTorch ResNet-20"): M.resnet20(in_channels=1)}


def plan(sizes: Sizes) -> list[PlannedRun]:
    """:func:`networks` and ResNet-20 in Keras (the same MACs), each ``epochs`` times on the training
    images, tested every epoch."""
    shape, train, test = input_shape("fashion_mnist"), sizes.train * sizes.epochs, sizes.test * sizes.epochs
    runs = [PlannedRun(str(key), net, shape, train, test) for key, net in networks(sizes).items()]
    return runs + [PlannedRun("Keras ResNet-20", M.resnet20(in_channels=1), shape, train, test, runner="other")]


#: What differs between a PyTorch and a Keras ResNet, and what to do about it.
DIFFERENCES = [
    ("tensor layout", "NCHW (channels first)", "NHWC (channels last)", "transpose inputs: x.permute(0, 2, 3, 1)"),
    ("convolution kernel", "(out, in, kh, kw)", "(kh, kw, in, out)", "weight.permute(2, 3, 1, 0)"),
    ("dense kernel", "(out, in), y = x W^T + b", "(in, out), y = x W + b", "weight.T"),
    ("BatchNorm epsilon", "1e-5", "1e-3", "BatchNormalization(epsilon=1e-5)"),
    ("BatchNorm momentum", "0.1: weight of the new batch", "0.99: weight of the old average",
     "Keras momentum = 1 - PyTorch momentum (0.9)"),
    ("padding of a stride-2 3x3 conv", "padding=1: one row/column each side",
     "'same': 0 before, 1 after (for even sizes)", "ZeroPadding2D(1) + padding='valid'"),
    ("parameter count", "parameters only", "counts BN's moving mean and variance too",
     "compare trainable parameters"),
    ("initialisation", "cifar_resnet: convolutions He-normal (fan_out); fc nn.Linear's uniform, bound 1/sqrt(fan_in)",
     "Conv2D and Dense: Glorot-uniform kernels, zero biases",
     "not bridged: copied weights need none; a run from random weights starts differently "
     "(VarianceScaling(2.0, 'fan_out', 'untruncated_normal') would match the convolutions)"),
    ("weight decay", "SGD(weight_decay=wd): wd * w added to the gradient",
     "optimizer weight_decay: decoupled", "kernel_regularizer=L2(wd / 2)"),
    ("SGD momentum", "buffer of gradients: b = m b + g; w -= lr b",
     "velocity holds the rate: v = m v - lr g; w += v",
     "none in keras.optimizers.SGD: equal at a constant rate, not when the rate changes per step"),
    ("BatchNorm moving variance", "averages the unbiased batch variance (divides by n - 1)",
     "averages the biased batch variance (divides by n)",
     "none in BatchNormalization: a factor n / (n - 1), n = values per channel in a batch"),
]  # fmt: skip


def keras():
    """Import Keras 3 on the PyTorch backend (set ``KERAS_BACKEND=torch`` first, as Colab also needs)."""
    import sys

    if "keras" in sys.modules:
        import keras as k

        if k.backend.backend() != "torch":
            raise RuntimeError(f"Keras is already running on {k.backend.backend()!r}; restart the kernel and set "
                               "os.environ['KERAS_BACKEND'] = 'torch' before the first 'import keras'.")  # fmt: skip
        return k
    os.environ["KERAS_BACKEND"] = "torch"
    import keras as k

    return k


def _shortcut_a_layer():
    k = keras()

    class ShortcutA(k.layers.Layer):
        """Option A in Keras: every ``stride``-th pixel, zero channels split before and after."""

        def __init__(self, out_planes: int, stride: int, **kwargs) -> None:
            super().__init__(**kwargs)
            self.out_planes, self.stride = out_planes, stride

        def call(self, x):
            x = x[:, :: self.stride, :: self.stride, :]
            extra = self.out_planes - x.shape[-1]
            return k.ops.pad(x, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]])

        def compute_output_shape(self, shape):
            h = None if shape[1] is None else -(-shape[1] // self.stride)
            w = None if shape[2] is None else -(-shape[2] // self.stride)
            return (shape[0], h, w, self.out_planes)

        def get_config(self):
            return {**super().get_config(), "out_planes": self.out_planes, "stride": self.stride}

    return ShortcutA


def keras_resnet(depth: int = 20, in_channels: int = 3, num_classes: int = 10, size: int = 32, *,
                 epsilon: float = 1e-5, momentum: float = 0.9, explicit_padding: bool = True,
                 weight_decay: float = 0.0, flip: bool = False):  # fmt: skip
    """The CIFAR ResNet-``depth`` (option A) as a Keras functional model on NHWC inputs.

    The defaults match PyTorch's: BN epsilon 1e-5 and momentum 0.9 (= 0.1 in
    PyTorch's sense), explicit zero padding before each 3x3 convolution.
    ``explicit_padding=False`` uses Keras' ``padding="same"`` instead.
    ``weight_decay`` adds an L2 penalty of ``weight_decay / 2`` to every kernel,
    which equals PyTorch SGD's weight decay; ``flip`` adds random horizontal
    flips during training.
    """
    k = keras()
    L = k.layers
    if (depth - 2) % 6 or depth < 8:
        raise ValueError(f"depth must be 6n + 2, got {depth}")
    n = (depth - 2) // 6
    reg = k.regularizers.L2(weight_decay / 2) if weight_decay else None
    shortcut_a = _shortcut_a_layer()

    def conv3x3(x, filters: int, stride: int, name: str):
        if explicit_padding:
            x = L.ZeroPadding2D(1, name=f"{name}_pad")(x)
        return L.Conv2D(filters, 3, strides=stride, padding="valid" if explicit_padding else "same", use_bias=False,
                        kernel_regularizer=reg, name=name)(x)  # fmt: skip

    def bn(x, name: str):
        return L.BatchNormalization(epsilon=epsilon, momentum=momentum, name=name)(x)

    inputs = k.Input((size, size, in_channels))
    x = L.RandomFlip("horizontal", name="flip")(inputs) if flip else inputs
    x = L.ReLU(name="relu")(bn(conv3x3(x, 16, 1, "conv1"), "bn1"))
    planes_in = 16
    for stage, planes in enumerate((16, 32, 64), start=1):
        for b in range(n):
            stride = 2 if stage > 1 and b == 0 else 1
            p = f"layer{stage}_{b}"
            out = L.ReLU(name=f"{p}_relu1")(bn(conv3x3(x, planes, stride, f"{p}_conv1"), f"{p}_bn1"))
            out = bn(conv3x3(out, planes, 1, f"{p}_conv2"), f"{p}_bn2")
            short = x if stride == 1 and planes_in == planes else shortcut_a(planes, stride, name=f"{p}_short")(x)
            x = L.ReLU(name=f"{p}_relu2")(L.Add(name=f"{p}_add")([out, short]))
            planes_in = planes
    x = L.GlobalAveragePooling2D(name="avgpool")(x)
    outputs = L.Dense(num_classes, kernel_regularizer=reg, name="fc")(x)
    return k.Model(inputs, outputs, name=f"keras_resnet{depth}")


def torch_kernel_to_keras(weight: torch.Tensor) -> np.ndarray:
    """A PyTorch convolution weight (out, in, kh, kw) as a Keras kernel (kh, kw, in, out)."""
    return weight.detach().permute(2, 3, 1, 0).cpu().numpy()


def torch_momentum_to_keras(momentum: float) -> float:
    """PyTorch BN momentum (weight of the new batch) -> Keras momentum (weight of the old average)."""
    return 1.0 - momentum


def copy_weights(ours: M.ResNet, model) -> None:
    """Copy every weight and BN statistic of our CIFAR ResNet into :func:`keras_resnet`'s model."""
    for path, module in ours.named_modules():
        name = path.replace(".", "_")
        if isinstance(module, torch.nn.Conv2d):
            model.get_layer(name).set_weights([torch_kernel_to_keras(module.weight)])
        elif isinstance(module, torch.nn.BatchNorm2d):
            model.get_layer(name).set_weights([t.detach().cpu().numpy() for t in (
                module.weight, module.bias, module.running_mean, module.running_var)])  # fmt: skip
        elif isinstance(module, torch.nn.Linear):
            model.get_layer(name).set_weights([module.weight.detach().T.cpu().numpy(),
                                               module.bias.detach().cpu().numpy()])  # fmt: skip


def keras_input(x: torch.Tensor) -> np.ndarray:
    """A batch in PyTorch's NCHW layout as the NHWC array Keras takes."""
    return x.detach().permute(0, 2, 3, 1).cpu().numpy()


def parameter_counts(model) -> tuple[int, int]:
    """(trainable, total) parameters of a Keras model; the difference is BN's moving statistics."""
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return trainable, model.count_params()


def keras_fit(model, recipe: Recipe, x: np.ndarray, y: np.ndarray, x_test: np.ndarray, y_test: np.ndarray,
              epochs: int, num_classes: int = 10, seed: int = 0) -> dict[str, list[float]]:  # fmt: skip
    """``model.fit`` with ``recipe``'s SGD settings and learning-rate schedule (set per step, as ``fit``
    does); returns Keras' history dict (loss, accuracy, val_loss, val_accuracy per epoch)."""
    k = keras()
    k.utils.set_random_seed(seed)
    steps_per_epoch = math.ceil(len(x) / recipe.batch_size)
    total = epochs * steps_per_epoch
    warmup = round(recipe.warmup_epochs * steps_per_epoch)

    class Schedule(k.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            return lr_at(int(step), total, recipe.lr, recipe.schedule, warmup)

        def get_config(self):
            return {}

    model.compile(
        optimizer=k.optimizers.SGD(learning_rate=Schedule(), momentum=recipe.momentum, nesterov=recipe.nesterov),
        loss=k.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=recipe.label_smoothing),
        metrics=["accuracy"],
    )
    one_hot = np.eye(num_classes, dtype="float32")
    history = model.fit(x, one_hot[y], batch_size=recipe.batch_size, epochs=epochs, shuffle=True, verbose=0,
                        validation_data=(x_test, one_hot[y_test]))  # fmt: skip
    return history.history


Framework = Literal["pytorch", "keras"]


def momentum_rule(rule: Framework, grads: Sequence[float], rates: Sequence[float], momentum: float, *,
                  nesterov: bool = False, w0: float = 0.0) -> list[float]:  # fmt: skip
    """A scalar weight after each SGD step with the given gradients and per-step rates, by the momentum
    rule of ``rule``, written out (what :func:`optimizer_steps` checks against the real optimisers).

    PyTorch keeps a buffer of gradients and applies the current rate to it: ``b = m b + g``,
    ``w -= lr b`` (Nesterov: ``w -= lr (g + m b)``). Keras folds the rate into its velocity:
    ``v = m v - lr g``, ``w += v`` (Nesterov: ``w += m v - lr g``). Then ``v = -lr b`` as long as the
    rate is constant, so the two agree; when the rate changes, Keras' velocity still carries the
    past rates and the weights part.
    """
    if rule not in ("pytorch", "keras"):
        raise ValueError(f"rule must be 'pytorch' or 'keras', got {rule!r}")
    if len(grads) != len(rates):
        raise ValueError(f"need one rate per gradient, got {len(grads)} gradients and {len(rates)} rates")
    w, buf, out = float(w0), 0.0, []
    for g, lr in zip(grads, rates):
        if rule == "pytorch":
            buf = momentum * buf + g
            w -= lr * (g + momentum * buf if nesterov else buf)
        else:
            buf = momentum * buf - lr * g
            w += momentum * buf - lr * g if nesterov else buf
        out.append(w)
    return out


def optimizer_steps(framework: Framework, grads: Sequence[float], rates: Sequence[float], momentum: float, *,
                    nesterov: bool = False, w0: float = 0.0) -> list[float]:  # fmt: skip
    """The same as :func:`momentum_rule`, run by the framework's own SGD: ``torch.optim.SGD`` or
    ``keras.optimizers.SGD``, the rate set before each step (as a per-step schedule does)."""
    if len(grads) != len(rates):
        raise ValueError(f"need one rate per gradient, got {len(grads)} gradients and {len(rates)} rates")
    out = []
    if framework == "pytorch":
        w = nn.Parameter(torch.tensor(float(w0), dtype=torch.float64))
        opt = torch.optim.SGD([w], lr=rates[0] if rates else 0.1, momentum=momentum, nesterov=nesterov)
        for g, lr in zip(grads, rates):
            opt.param_groups[0]["lr"] = lr
            w.grad = torch.tensor(float(g), dtype=torch.float64)
            opt.step()
            out.append(w.item())
    elif framework == "keras":
        k = keras()
        w = k.Variable(float(w0), dtype="float64")
        opt = k.optimizers.SGD(rates[0] if rates else 0.1, momentum=momentum, nesterov=nesterov)
        for g, lr in zip(grads, rates):
            opt.learning_rate = lr
            opt.apply_gradients([(k.ops.convert_to_tensor(float(g), dtype="float64"), w)])
            out.append(float(k.ops.convert_to_numpy(w.value)))
    else:
        raise ValueError(f"framework must be 'pytorch' or 'keras', got {framework!r}")
    return out


def moving_variance(x: np.ndarray, keras_momentum: float = 0.9, *, unbiased: bool,
                    start: float = 1.0) -> np.ndarray:  # fmt: skip
    """The moving variance per feature after one training step of BatchNorm on the batch ``x``
    (N, features), from ``start``: ``keras_momentum * start + (1 - keras_momentum) * var``, with the
    batch variance unbiased (divided by N - 1, PyTorch's ``running_var``) or biased (by N, Keras)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"x must be a batch (N, features) with N >= 2, got shape {x.shape}")
    return keras_momentum * start + (1 - keras_momentum) * x.var(axis=0, ddof=1 if unbiased else 0)


def batchnorm_variance_step(x: np.ndarray, torch_momentum: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """(PyTorch ``running_var``, Keras ``moving_variance``) after one training step of each framework's
    BatchNorm on the same batch ``x`` (N, features), the two momenta set to average alike."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"x must be a batch (N, features) with N >= 2, got shape {x.shape}")
    bn = nn.BatchNorm1d(x.shape[1], momentum=torch_momentum).train()
    with torch.no_grad():
        bn(torch.from_numpy(x))
    k = keras()
    kbn = k.layers.BatchNormalization(momentum=torch_momentum_to_keras(torch_momentum), epsilon=1e-5)
    kbn(x, training=True)
    return bn.running_var.numpy().copy(), np.asarray(k.ops.convert_to_numpy(kbn.moving_variance.value))


def weight_decay_steps(weight_decay: float, rate: float, momentum: float, steps: int) -> dict[str, list[float]]:
    """A single weight, starting at 1 with a loss whose gradient is 0, so only weight decay moves it,
    after each of ``steps`` SGD steps three ways: PyTorch ``SGD(weight_decay=wd)``, Keras with
    ``kernel_regularizer=L2(wd / 2)`` (the book's bridge) and Keras with the optimizer's
    ``weight_decay=wd`` (decoupled: it shrinks the weight apart from the momentum)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    lin = nn.Linear(1, 1, bias=False)
    nn.init.ones_(lin.weight)
    opt = torch.optim.SGD(lin.parameters(), lr=rate, momentum=momentum, weight_decay=weight_decay)
    zeros = torch.zeros(1, 1)
    out: dict[str, list[float]] = {"PyTorch SGD(weight_decay=wd)": []}
    for _ in range(steps):
        opt.zero_grad()
        (lin(zeros) ** 2).mean().backward()  # gradient 0: the input is 0
        opt.step()
        out["PyTorch SGD(weight_decay=wd)"].append(lin.weight.item())
    k = keras()
    for name, l2, decoupled in (("Keras kernel_regularizer=L2(wd / 2)", weight_decay / 2, None),
                                ("Keras SGD(weight_decay=wd)", None, weight_decay)):  # fmt: skip
        layer = k.layers.Dense(1, use_bias=False, kernel_initializer="ones",
                               kernel_regularizer=k.regularizers.L2(l2) if l2 else None)  # fmt: skip
        model = k.Sequential([k.Input((1,)), layer])
        model.compile(optimizer=k.optimizers.SGD(rate, momentum=momentum, weight_decay=decoupled), loss="mse")
        x = np.zeros((1, 1), dtype="float32")
        out[name] = []
        for _ in range(steps):
            model.train_on_batch(x, x)
            out[name].append(float(np.asarray(k.ops.convert_to_numpy(layer.kernel.value)).ravel()[0]))
    return out

"""Residual networks in the vocabulary of He et al. (2015) and torchvision.

One private builder, :class:`ResNet`, behind thin public constructors:

* ImageNet models ``resnet18/34/50/101/152``: the same ``state_dict`` keys and
  parameter counts as ``torchvision.models``, so torchvision weights load with
  ``strict=True``.
* The CIFAR family of the paper's section 4.2, ``resnet20/32/44/56/110``
  (depth = 6n + 2), with shortcut option "A", "B" or "C", and ``plain=True``
  for the same network with every shortcut removed.
* ``d2l_resnet18``: the ResNet-18 that *Dive into Deep Learning* trains on
  Fashion-MNIST (biased convolutions, a projection shortcut without BN).
* ``cifar_resnet18``: ResNet-18 with a 3x3 stem and no max-pool, the usual
  CIFAR adaptation.

The book's chapter "Inside the blocks: tracing shapes" walks through every
class here; "The degradation experiment" uses the plain counterparts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "ResNet",
    "ShortcutA",
    "CIFAR_DEPTHS",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "cifar_resnet",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "plain_cifar",
    "cifar_model",
    "d2l_resnet18",
    "cifar_resnet18",
    "count_parameters",
    "weighted_layers",
]

Shortcut = Literal["A", "B", "C"]
Stem = Literal["imagenet", "cifar", "d2l"]

#: Depths of the paper's CIFAR-10 experiments (Table 6); any 6n + 2 works.
CIFAR_DEPTHS = (20, 32, 44, 56, 110)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    """3x3 convolution with padding 1: keeps the spatial size at stride 1."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=bias)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    """1x1 convolution. Never padded: padding=1 here grows the map by 2 pixels."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, padding=0, bias=bias)


class ShortcutA(nn.Module):
    """Option A shortcut: parameter-free identity with subsampling and zero-padding.

    He et al. 2015, section 4.2: "the shortcut still performs identity mapping,
    with extra zero entries padded for increasing dimensions". Spatially it
    takes every second pixel (stride 2); the new channels are zeros, split
    evenly before and after the old ones.
    """

    def __init__(self, in_planes: int, out_planes: int, stride: int) -> None:
        super().__init__()
        if out_planes < in_planes:
            raise ValueError(f"ShortcutA cannot shrink channels: {in_planes} -> {out_planes}")
        self.in_planes, self.out_planes, self.stride = in_planes, out_planes, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        extra = self.out_planes - self.in_planes
        return F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))

    def extra_repr(self) -> str:
        return f"{self.in_planes}->{self.out_planes}, stride={self.stride}"


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut: out = relu(F(x) + identity).

    ``downsample`` maps ``x`` to the shape of ``F(x)`` where they differ
    (projection for options B/C, :class:`ShortcutA` for option A). With
    ``residual=False`` the block is "plain": the shortcut is dropped entirely.
    """

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        residual: bool = True,
        bias: bool = False,
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride, bias=bias)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, bias=bias)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.residual:
            if self.downsample is not None:
                identity = self.downsample(x)
            out = out + identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, as in torchvision's "ResNet V1.5"), 1x1 expand by 4.

    Putting the stride on the 3x3 rather than the first 1x1 follows torchvision
    (and NVIDIA's "ResNet v1.5"); it is what makes torchvision weights fit.
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        residual: bool = True,
        bias: bool = False,
    ) -> None:
        super().__init__()
        width = planes
        self.conv1 = conv1x1(inplanes, width, bias=bias)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride, bias=bias)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion, bias=bias)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        self.residual = residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.residual:
            if self.downsample is not None:
                identity = self.downsample(x)
            out = out + identity
        return self.relu(out)


Block = type[BasicBlock] | type[Bottleneck]


class ResNet(nn.Module):
    """The one builder behind every constructor in this module.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        layers: blocks per stage, e.g. ``[2, 2, 2, 2]`` for ResNet-18.
        widths: ``planes`` of each stage, e.g. ``[64, 128, 256, 512]``.
        stem: ``"imagenet"`` (7x7/2 conv + 3x3/2 max-pool), ``"cifar"`` (3x3
            conv, no pool) or ``"d2l"`` (as imagenet, with a biased conv).
        shortcut: ``"A"`` zero-pad, ``"B"`` project only where the shape
            changes, ``"C"`` project in every block (He et al. 2015, 4.1).
        plain: drop every shortcut (the paper's "plain" baselines).
        in_channels, num_classes: input channels and output classes.
        bias: biased convolutions (D2L's choice; the paper uses none before BN).
        projection_norm: follow a projection shortcut by BatchNorm (torchvision
            does; D2L does not).
        zero_init_residual: start every block's last BN at zero, so each block
            begins as the identity (Goyal et al. 2017).
    """

    def __init__(
        self,
        block: Block,
        layers: Sequence[int],
        widths: Sequence[int] = (64, 128, 256, 512),
        *,
        stem: Stem = "imagenet",
        shortcut: Shortcut = "B",
        plain: bool = False,
        in_channels: int = 3,
        num_classes: int = 1000,
        bias: bool = False,
        projection_norm: bool = True,
        zero_init_residual: bool = False,
    ) -> None:
        super().__init__()
        if len(layers) != len(widths):
            raise ValueError(
                f"layers and widths must have one entry per stage; got {len(layers)} "
                f"layers {list(layers)} and {len(widths)} widths {list(widths)}"
            )
        if shortcut not in ("A", "B", "C"):
            raise ValueError(f"shortcut must be 'A', 'B' or 'C', got {shortcut!r}")
        if stem not in ("imagenet", "cifar", "d2l"):
            raise ValueError(f"stem must be 'imagenet', 'cifar' or 'd2l', got {stem!r}")
        for name, value in (("in_channels", in_channels), ("num_classes", num_classes)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.arch = "ResNet"
        self.in_channels = in_channels
        self.num_classes = num_classes
        self.shortcut = shortcut
        self.plain = plain
        self._bias = bias
        self._projection_norm = projection_norm

        self.inplanes = widths[0]
        if stem == "cifar":
            self.conv1 = conv3x3(in_channels, self.inplanes, bias=bias)
        else:
            self.conv1 = nn.Conv2d(
                in_channels, self.inplanes, kernel_size=7, stride=2, padding=3, bias=stem == "d2l" or bias
            )
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if stem == "cifar" else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        self.num_stages = len(layers)
        for i, (blocks, planes) in enumerate(zip(layers, widths)):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", self._make_layer(block, planes, blocks, stride))
        # Adaptive pooling: any input that survives the strides works. A fixed
        # avg_pool2d(out, 4) is only right for 32x32 CIFAR inputs.
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[-1] * block.expansion, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            for m in self.modules():
                if isinstance(m, Bottleneck):
                    nn.init.constant_(m.bn3.weight, 0)
                elif isinstance(m, BasicBlock):
                    nn.init.constant_(m.bn2.weight, 0)

    def _shortcut(self, planes_out: int, stride: int) -> nn.Module | None:
        changes_shape = stride != 1 or self.inplanes != planes_out
        if self.plain or (not changes_shape and self.shortcut != "C"):
            return None
        if self.shortcut == "A":
            return ShortcutA(self.inplanes, planes_out, stride) if changes_shape else None
        conv = conv1x1(self.inplanes, planes_out, stride, bias=self._bias)
        if not self._projection_norm:
            return conv
        return nn.Sequential(conv, nn.BatchNorm2d(planes_out))

    def _make_layer(self, block: Block, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for b in range(blocks):
            s = stride if b == 0 else 1
            downsample = self._shortcut(planes * block.expansion, s)
            layers.append(block(self.inplanes, planes, s, downsample, residual=not self.plain, bias=self._bias))
            self.inplanes = planes * block.expansion
        return nn.Sequential(*layers)

    def stages(self) -> list[nn.Sequential]:
        """The residual stages, ``layer1`` ... ``layerN``."""
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear ValueError unless ``x`` is a batch (N, C, H, W) with our C."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"expected a torch.Tensor of shape (N, {self.in_channels}, H, W), got {type(x).__name__}")
        if x.dim() != 4 or x.shape[1] != self.in_channels:
            hint = " Add a batch dimension with x.unsqueeze(0)." if x.dim() == 3 else ""
            raise ValueError(
                f"expected input of shape (N, {self.in_channels}, H, W), got {tuple(x.shape)}.{hint}"
                f" This model was built with in_channels={self.in_channels}."
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in self.stages():
            x = stage(x)
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)


# --- ImageNet models: torchvision's stage table -------------------------------

_IMAGENET_STAGES: dict[int, tuple[Block, list[int]]] = {
    18: (BasicBlock, [2, 2, 2, 2]),
    34: (BasicBlock, [3, 4, 6, 3]),
    50: (Bottleneck, [3, 4, 6, 3]),
    101: (Bottleneck, [3, 4, 23, 3]),
    152: (Bottleneck, [3, 8, 36, 3]),
}


def _imagenet_resnet(depth: int, **kwargs) -> ResNet:
    block, layers = _IMAGENET_STAGES[depth]
    return _named(ResNet(block, layers, **kwargs), f"ResNet-{depth}")


def _named(model: ResNet, arch: str) -> ResNet:
    """Attach a human-readable architecture name (shown by the tracer)."""
    model.arch = arch
    return model


def resnet18(**kwargs) -> ResNet:
    """ResNet-18 (11,689,512 parameters), key-for-key torchvision's."""
    return _imagenet_resnet(18, **kwargs)


def resnet34(**kwargs) -> ResNet:
    """ResNet-34 (21,797,672 parameters), key-for-key torchvision's."""
    return _imagenet_resnet(34, **kwargs)


def resnet50(**kwargs) -> ResNet:
    """ResNet-50 (25,557,032 parameters), key-for-key torchvision's."""
    return _imagenet_resnet(50, **kwargs)


def resnet101(**kwargs) -> ResNet:
    """ResNet-101 (44,549,160 parameters), key-for-key torchvision's."""
    return _imagenet_resnet(101, **kwargs)


def resnet152(**kwargs) -> ResNet:
    """ResNet-152 (60,192,808 parameters), key-for-key torchvision's."""
    return _imagenet_resnet(152, **kwargs)


# --- CIFAR family: He et al. 2015, section 4.2 --------------------------------


def cifar_resnet(
    depth: int,
    shortcut: Shortcut = "A",
    *,
    plain: bool = False,
    in_channels: int = 3,
    num_classes: int = 10,
    **kwargs,
) -> ResNet:
    """The paper's CIFAR network: depth = 6n + 2, n blocks per stage, 16/32/64 filters.

    Layers counted as the paper does: 1 stem conv + 3 stages x n blocks x 2
    convs + 1 fully connected = 6n + 2. ResNet-20 therefore has n = 3; a
    "ResNet-20" with 6 blocks per stage is really a 38-layer net.
    """
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6 != 0:
        valid = ", ".join(str(6 * n + 2) for n in range(1, 10))
        raise ValueError(
            f"CIFAR ResNet depth must be 6n + 2 (n >= 1), e.g. {valid}, ...; got {depth!r}. "
            f"The paper uses {', '.join(map(str, CIFAR_DEPTHS))}."
        )
    n = (depth - 2) // 6
    kind = "plain" if plain else f"ResNet-{depth}"
    arch = f"CIFAR plain-{depth}" if plain else f"CIFAR {kind} (option {shortcut})"
    return _named(
        ResNet(
            BasicBlock,
            [n, n, n],
            (16, 32, 64),
            stem="cifar",
            shortcut=shortcut,
            plain=plain,
            in_channels=in_channels,
            num_classes=num_classes,
            **kwargs,
        ),
        arch,
    )


def resnet20(**kwargs) -> ResNet:
    """CIFAR ResNet-20: 269,722 parameters with option A (the paper's 0.27M)."""
    return cifar_resnet(20, **kwargs)


def resnet32(**kwargs) -> ResNet:
    """CIFAR ResNet-32: 464,154 parameters with option A (0.46M)."""
    return cifar_resnet(32, **kwargs)


def resnet44(**kwargs) -> ResNet:
    """CIFAR ResNet-44: 658,586 parameters with option A (0.66M)."""
    return cifar_resnet(44, **kwargs)


def resnet56(**kwargs) -> ResNet:
    """CIFAR ResNet-56: 853,018 parameters with option A (0.85M)."""
    return cifar_resnet(56, **kwargs)


def resnet110(**kwargs) -> ResNet:
    """CIFAR ResNet-110: 1,727,962 parameters with option A (1.7M)."""
    return cifar_resnet(110, **kwargs)


def cifar_model(name: str, **kwargs) -> ResNet:
    """A CIFAR-family model by name: ``"resnet20"``, ``"resnet14"``, ``"plain56"``."""
    for prefix, plain in (("resnet", False), ("plain", True)):
        if name.startswith(prefix) and name[len(prefix) :].isdigit():
            return cifar_resnet(int(name[len(prefix) :]), plain=plain, **kwargs)
    raise ValueError(f"model name must look like 'resnet20' or 'plain20' (depth 6n + 2), got {name!r}")


def plain_cifar(depth: int, **kwargs) -> ResNet:
    """The plain counterpart of CIFAR ResNet-``depth``: no shortcuts at all.

    Same layers, same parameter count as option A (whose shortcuts are free).
    """
    return cifar_resnet(depth, "A", plain=True, **kwargs)


# --- Other ResNet-18 variants used in the book ---------------------------------


def d2l_resnet18(in_channels: int = 1, num_classes: int = 10) -> ResNet:
    """D2L's ResNet-18 (section 8.6) for Fashion-MNIST.

    7x7/2 conv (64, biased) + BN + ReLU + 3x3/2 max-pool, four stages of two
    residual blocks (64, 128, 256, 512), global average pool, linear layer.
    Like D2L's ``Residual``, convolutions carry a bias and the 1x1 projection
    has no BatchNorm, so the parameter count equals ``d2l.ResNet18``'s.
    """
    return _named(
        ResNet(
            BasicBlock,
            [2, 2, 2, 2],
            stem="d2l",
            shortcut="B",
            in_channels=in_channels,
            num_classes=num_classes,
            bias=True,
            projection_norm=False,
        ),
        "D2L ResNet-18",
    )


def cifar_resnet18(in_channels: int = 3, num_classes: int = 10) -> ResNet:
    """ResNet-18 adapted to 32x32 inputs: 3x3 stem, no max-pool (11,173,962 parameters)."""
    model = ResNet(BasicBlock, [2, 2, 2, 2], stem="cifar", in_channels=in_channels, num_classes=num_classes)
    return _named(model, "CIFAR ResNet-18")


# --- Small helpers --------------------------------------------------------------


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def weighted_layers(model: nn.Module) -> int:
    """Layers as the paper counts depth: convolutions and linear layers on the
    main path, not the projection shortcuts."""
    count = 0
    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)) and ".downsample" not in name:
            count += 1
    return count

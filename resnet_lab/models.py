"""Residual networks in the vocabulary of He et al. (2015) and torchvision.

One private builder, :class:`ResNet`, behind thin public constructors:

* ImageNet models ``resnet18/34/50/101/152``: the same ``state_dict`` keys and
  parameter counts as ``torchvision.models``, so torchvision weights load with
  ``strict=True``. ``resnet50_v1`` puts the Bottleneck's stride where the
  paper put it (chapter "Inside the blocks" traces both).
* The CIFAR family of the paper's section 4.2: ``cifar_resnet(depth)`` with
  depth = 6n + 2, shortcut option "A", "B" or "C"; ``plain=True`` for the
  same network built from :class:`PlainBlock` (no shortcuts, the paper's
  "plain" baselines) and ``preact=True`` for :class:`PreActBlock` (He et al.
  2016). Thin constructors ``resnet20/32/44/56/110``.
* The pre-activation bottleneck nets of He et al. (2016) as their released
  code builds them (``resnet-pre-act.lua`` in KaimingHe/resnet-1k-layers):
  ``cifar_preact_bottleneck(depth)`` with depth = 9n + 2,
  ``preact_resnet164`` and ``preact_resnet1001``.
* ``d2l_resnet18``: the ResNet-18 of *Dive into Deep Learning* (biased
  convolutions, a projection shortcut without BN); ``cifar_resnet18``:
  ResNet-18 with a 3x3 stem and no max-pool, the usual CIFAR adaptation.

Stage table (torchvision's): ``layers`` blocks per stage, ``widths`` planes
per stage; the first block of every stage after the first halves the map.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "BottleneckV1",
    "PlainBlock",
    "PreActBlock",
    "PreActBottleneck",
    "ResNet",
    "ShortcutA",
    "CIFAR_DEPTHS",
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet50_v1",
    "resnet101",
    "resnet152",
    "cifar_resnet",
    "resnet20",
    "resnet32",
    "resnet44",
    "resnet56",
    "resnet110",
    "cifar_preact_bottleneck",
    "preact_resnet164",
    "preact_resnet1001",
    "d2l_resnet18",
    "cifar_resnet18",
    "count_parameters",
    "weighted_layers",
    "evaluating",
]

Shortcut = Literal["A", "B", "C"]
Stem = Literal["imagenet", "cifar", "d2l"]

#: Depths of the paper's CIFAR-10 experiments (Table 6, without 1202); any 6n + 2 works.
CIFAR_DEPTHS = (20, 32, 44, 56, 110)


def conv3x3(in_planes: int, out_planes: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    """3x3 convolution with padding 1: keeps the spatial size at stride 1."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=bias)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1, bias: bool = False) -> nn.Conv2d:
    """1x1 convolution. Never padded: padding=1 here grows the map by 2 pixels."""
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, padding=0, bias=bias)


class ShortcutA(nn.Module):
    """Option A shortcut: parameter-free identity with subsampling and zero-padding.

    He et al. 2015, section 3.3 (used for CIFAR in section 4.2): "the shortcut
    still performs identity mapping, with extra zero entries padded for
    increasing dimensions". It takes every ``stride``-th pixel; the new
    channels are zeros, split evenly before and after the old ones.
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
    (a projection for options B/C, :class:`ShortcutA` for option A).
    """

    expansion = 1

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None, bias: bool = False
    ) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride, bias=bias)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, bias=bias)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out = out + identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand by ``expansion`` = 4, plus the shortcut.

    The stride sits on the 3x3 convolution, as in torchvision and, before it,
    Facebook's fb.resnet.torch (2016; NVIDIA later called this placement
    "ResNet v1.5"); the paper put it on the first 1x1 (:class:`BottleneckV1`).
    This placement is what makes torchvision's weights fit, and it costs more
    MACs: the 1x1 reduction runs at the input's full resolution.
    """

    expansion = 4
    stride_in_1x1 = False

    def __init__(
        self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None, bias: bool = False
    ) -> None:
        super().__init__()
        s1, s3 = (stride, 1) if self.stride_in_1x1 else (1, stride)
        self.conv1 = conv1x1(inplanes, planes, s1, bias=bias)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, s3, bias=bias)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion, bias=bias)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out = out + identity
        return self.relu(out)


class BottleneckV1(Bottleneck):
    """The Bottleneck as He et al. (2015) built it: the stride on the first 1x1 ("ResNet v1")."""

    stride_in_1x1 = True


class PlainBlock(nn.Module):
    """A BasicBlock without its shortcut: relu(bn2(conv2(relu(bn1(conv1(x)))))).

    The building block of the paper's "plain" baselines (section 4.1): the
    same layers and parameters as :class:`BasicBlock`, nothing added back.
    """

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1, bias: bool = False) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride, bias=bias)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes, bias=bias)
        self.bn2 = nn.BatchNorm2d(planes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)))


class PreActBlock(nn.Module):
    """Pre-activation block (He et al. 2016, *Identity Mappings*): BN, ReLU, conv, BN, ReLU, conv; then add.

    Nothing follows the addition, so the identity path from block to block is
    clean: x_{l+1} = x_l + F(x_l) holds exactly in every unit that keeps the
    shape. Where the shortcut cannot be the identity, the first BN-ReLU comes
    before the split and the shortcut takes its output, as in the authors'
    released code (``resnet-pre-act.lua``: "common BN, ReLU" in the "Residual
    Units for increasing dimensions"); the first unit after the stem does the
    same (their section 4.1: "we adopt the first activation right after conv1
    and before splitting into two paths").

    ``preact_shortcut``: whether the shortcut (``downsample``, or the
    identity) takes relu(bn1(x)) instead of x; by default, where there is a
    ``downsample``. :class:`ResNet` sets it for every unit that changes the
    shape and for the first unit after the stem.
    """

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        bias: bool = False,
        preact_shortcut: bool | None = None,
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = conv3x3(inplanes, planes, stride, bias=bias)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, bias=bias)
        self.downsample = downsample
        self.preact_shortcut = downsample is not None if preact_shortcut is None else preact_shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        identity = pre if self.preact_shortcut else x
        if self.downsample is not None:
            identity = self.downsample(identity)
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        return out + identity

    def extra_repr(self) -> str:
        return f"preact_shortcut={self.preact_shortcut}"


class PreActBottleneck(nn.Module):
    """The pre-activation bottleneck of He et al. (2016), as their released code builds it.

    BN, ReLU, 1x1 (with the stride), BN, ReLU, 3x3, BN, ReLU, 1x1 expanding by
    ``expansion`` = 4; then add. Where the shape changes, the shortcut is a
    1x1 convolution without BN of the pre-activated input (``resnet-pre-act.lua``,
    KaimingHe/resnet-1k-layers). ``preact_shortcut`` as for :class:`PreActBlock`.
    """

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        downsample: nn.Module | None = None,
        bias: bool = False,
        preact_shortcut: bool | None = None,
    ) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.relu = nn.ReLU(inplace=True)
        self.conv1 = conv1x1(inplanes, planes, stride, bias=bias)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, bias=bias)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion, bias=bias)
        self.downsample = downsample
        self.preact_shortcut = downsample is not None if preact_shortcut is None else preact_shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        identity = pre if self.preact_shortcut else x
        if self.downsample is not None:
            identity = self.downsample(identity)
        out = self.conv1(pre)
        out = self.conv2(self.relu(self.bn2(out)))
        out = self.conv3(self.relu(self.bn3(out)))
        return out + identity

    def extra_repr(self) -> str:
        return f"preact_shortcut={self.preact_shortcut}"


Block = type[BasicBlock] | type[Bottleneck] | type[PlainBlock] | type[PreActBlock] | type[PreActBottleneck]


class ResNet(nn.Module):
    """The one builder behind every constructor in this module.

    Args:
        block: :class:`BasicBlock`, :class:`Bottleneck` (or :class:`BottleneckV1`),
            :class:`PlainBlock` (no shortcuts), :class:`PreActBlock` or
            :class:`PreActBottleneck`.
        layers: blocks per stage, e.g. ``[2, 2, 2, 2]`` for ResNet-18.
        widths: ``planes`` of each stage, e.g. ``[64, 128, 256, 512]``.
        stem: ``"imagenet"`` (7x7/2 conv + 3x3/2 max-pool), ``"cifar"`` (3x3
            conv, no pool) or ``"d2l"`` (as imagenet, with a biased conv).
        shortcut: ``"A"`` zero-pad, ``"B"`` project only where the shape
            changes, ``"C"`` project in every block (He et al. 2015, 3.3 and 4.1).
        in_channels, num_classes: input channels and output classes.
        bias: biased convolutions (D2L's choice; the paper uses none before BN).
        projection_norm: follow a projection shortcut by BatchNorm (torchvision
            does; D2L does not).
        zero_init_residual: start the last BN of every residual branch at
            zero, so each block begins as the identity (Goyal et al. 2017;
            torchvision's name).

    A pre-activation network has no BN-ReLU after the stem; it gets one after
    the last stage instead (``final_norm``), as in He et al. (2016). Its
    first unit and every unit that changes the shape pre-activate before the
    split, so their shortcut takes the BN-ReLU output (:class:`PreActBlock`).
    """

    def __init__(
        self,
        block: Block,
        layers: Sequence[int],
        widths: Sequence[int] = (64, 128, 256, 512),
        *,
        stem: Stem = "imagenet",
        shortcut: Shortcut = "B",
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
        self._bias = bias
        self._projection_norm = projection_norm
        preact = block in (PreActBlock, PreActBottleneck)
        self._preact = preact

        self.inplanes = widths[0]
        if stem == "cifar":
            self.conv1 = conv3x3(in_channels, self.inplanes, bias=bias)
        else:
            self.conv1 = nn.Conv2d(
                in_channels, self.inplanes, kernel_size=7, stride=2, padding=3, bias=stem == "d2l" or bias
            )
        self.bn1 = nn.Identity() if preact else nn.BatchNorm2d(self.inplanes)
        self.relu = nn.Identity() if preact else nn.ReLU(inplace=True)
        self.maxpool = nn.Identity() if stem == "cifar" else nn.MaxPool2d(kernel_size=3, stride=2, padding=1)

        self.num_stages = len(layers)
        for i, (blocks, planes) in enumerate(zip(layers, widths)):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", self._make_layer(block, planes, blocks, stride, first_stage=i == 0))
        out_planes = widths[-1] * block.expansion
        self.final_norm = nn.Sequential(nn.BatchNorm2d(out_planes), nn.ReLU(inplace=True)) if preact else None
        # Adaptive pooling: any input that survives the strides works. A fixed
        # avg_pool2d(out, 4) is only right for 32x32 CIFAR inputs.
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(out_planes, num_classes)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if zero_init_residual:
            # The last BN of each residual branch: then F(x) = 0 and every block is the identity.
            last_norm = {Bottleneck: "bn3", BottleneckV1: "bn3", BasicBlock: "bn2", PreActBlock: "bn2",
                         PreActBottleneck: "bn3"}  # fmt: skip
            if block not in last_norm:
                raise ValueError(f"zero_init_residual needs residual blocks; {block.__name__} has no shortcut")
            for stage in self.stages():
                for b in stage:
                    nn.init.constant_(getattr(b, last_norm[block]).weight, 0)

    def _shortcut(self, planes_out: int, stride: int) -> nn.Module | None:
        changes_shape = stride != 1 or self.inplanes != planes_out
        if not changes_shape and self.shortcut != "C":
            return None
        if self.shortcut == "A":
            return ShortcutA(self.inplanes, planes_out, stride) if changes_shape else None
        conv = conv1x1(self.inplanes, planes_out, stride, bias=self._bias)
        return nn.Sequential(conv, nn.BatchNorm2d(planes_out)) if self._projection_norm else conv

    def _make_layer(self, block: Block, planes: int, blocks: int, stride: int,
                    first_stage: bool = False) -> nn.Sequential:  # fmt: skip
        layers = []
        for b in range(blocks):
            s = stride if b == 0 else 1
            if block is PlainBlock:
                layers.append(PlainBlock(self.inplanes, planes, s, bias=self._bias))
            elif self._preact:
                # He et al. (2016): BN-ReLU before the split in the first unit after the stem and in
                # every unit that changes the shape; their shortcut takes the pre-activated input.
                first = first_stage and b == 0
                changes_shape = s != 1 or self.inplanes != planes * block.expansion
                downsample = self._shortcut(planes * block.expansion, s)
                layers.append(block(self.inplanes, planes, s, downsample, bias=self._bias,
                                    preact_shortcut=first or changes_shape))  # fmt: skip
            else:
                downsample = self._shortcut(planes * block.expansion, s)
                layers.append(block(self.inplanes, planes, s, downsample, bias=self._bias))
            self.inplanes = planes * block.expansion
        return nn.Sequential(*layers)

    def stages(self) -> list[nn.Sequential]:
        """The residual stages, ``layer1`` ... ``layerN``."""
        return [getattr(self, f"layer{i + 1}") for i in range(self.num_stages)]

    def check_input(self, x: torch.Tensor) -> None:
        """Raise a clear error unless ``x`` is a batch (N, C, H, W) with our C."""
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
        if self.final_norm is not None:
            x = self.final_norm(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _named(model: ResNet, arch: str) -> ResNet:
    """Attach a human-readable architecture name (shown by the tracer and in histories)."""
    model.arch = arch
    return model


# --- ImageNet models: torchvision's stage table -------------------------------

_IMAGENET_STAGES: dict[int, tuple[Block, list[int]]] = {
    18: (BasicBlock, [2, 2, 2, 2]),
    34: (BasicBlock, [3, 4, 6, 3]),
    50: (Bottleneck, [3, 4, 6, 3]),
    101: (Bottleneck, [3, 4, 23, 3]),
    152: (Bottleneck, [3, 8, 36, 3]),
}


def _imagenet_resnet(depth: int, block: Block | None = None, **kwargs) -> ResNet:
    default_block, layers = _IMAGENET_STAGES[depth]
    return _named(ResNet(block or default_block, layers, **kwargs), f"ResNet-{depth}")


def resnet18(**kwargs) -> ResNet:
    """ResNet-18 (11,689,512 parameters), key-for-key torchvision's."""
    return _imagenet_resnet(18, **kwargs)


def resnet34(**kwargs) -> ResNet:
    """ResNet-34 (21,797,672 parameters), key-for-key torchvision's."""
    return _imagenet_resnet(34, **kwargs)


def resnet50(**kwargs) -> ResNet:
    """ResNet-50 (25,557,032 parameters), key-for-key torchvision's ("v1.5": stride on the 3x3)."""
    return _imagenet_resnet(50, **kwargs)


def resnet50_v1(**kwargs) -> ResNet:
    """ResNet-50 as in the paper's Table 1: the stride on each stage's first 1x1 (same parameters)."""
    return _named(_imagenet_resnet(50, BottleneckV1, **kwargs), "ResNet-50 v1")


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
    preact: bool = False,
    in_channels: int = 3,
    num_classes: int = 10,
    **kwargs,
) -> ResNet:
    """The paper's CIFAR network: depth = 6n + 2, n blocks per stage, 16/32/64 filters.

    Layers counted as the paper does: 1 stem conv + 3 stages x n blocks x 2
    convs + 1 fully connected = 6n + 2. ResNet-20 therefore has n = 3; a
    "ResNet-20" with 6 blocks per stage is really a 38-layer net.
    ``plain=True`` builds the same layers from :class:`PlainBlock` (with
    option A, the plain and residual nets have equal parameter counts);
    ``preact=True`` builds it from :class:`PreActBlock`.
    """
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6 != 0:
        valid = ", ".join(str(6 * n + 2) for n in range(1, 10))
        raise ValueError(
            f"CIFAR ResNet depth must be 6n + 2 (n >= 1), e.g. {valid}, ...; got {depth!r}. "
            f"The paper uses {', '.join(map(str, CIFAR_DEPTHS))}."
        )
    if plain and preact:
        raise ValueError("choose plain=True or preact=True, not both: a plain net has no shortcut to pre-activate")
    n = (depth - 2) // 6
    block = PlainBlock if plain else PreActBlock if preact else BasicBlock
    if plain:
        arch = f"CIFAR plain-{depth}"
    else:
        arch = f"CIFAR {'pre-act ' if preact else ''}ResNet-{depth} (option {shortcut})"
    model = ResNet(block, [n, n, n], (16, 32, 64), stem="cifar", shortcut=shortcut, in_channels=in_channels,
                   num_classes=num_classes, **kwargs)  # fmt: skip
    return _named(model, arch)


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


# --- Pre-activation bottleneck nets: He et al. 2016, as their released code builds them ----


def cifar_preact_bottleneck(depth: int, *, in_channels: int = 3, num_classes: int = 10, **kwargs) -> ResNet:
    """The pre-activation bottleneck ResNet of He et al. (2016) for CIFAR: depth = 9n + 2 (164, 1001).

    As ``resnet-pre-act.lua`` (KaimingHe/resnet-1k-layers) builds it: a 3x3
    convolution to 16 channels, three stages of n :class:`PreActBottleneck`
    units with 64, 128 and 256 output channels (strides 1, 2, 2), a 1x1
    projection without BN (of the pre-activated input) where the channels
    grow, BN-ReLU after the last stage, average pooling and a linear layer;
    no convolution has a bias. ``preact_resnet164`` and ``preact_resnet1001``
    have 1,703,258 and 10,327,706 parameters; without BN's scale and shift,
    1,679,034 and 10,178,490 (the paper's 1.7M and 10.2M, its Table 4).
    """
    if not isinstance(depth, int) or depth < 11 or (depth - 2) % 9 != 0:
        raise ValueError(f"pre-activation bottleneck depth must be 9n + 2 (n >= 1), e.g. 164 or 1001; got {depth!r}")
    n = (depth - 2) // 9
    model = ResNet(PreActBottleneck, [n, n, n], (16, 32, 64), stem="cifar", shortcut="B", projection_norm=False,
                   in_channels=in_channels, num_classes=num_classes, **kwargs)  # fmt: skip
    return _named(model, f"CIFAR pre-act ResNet-{depth} (bottleneck)")


def preact_resnet164(**kwargs) -> ResNet:
    """He et al. (2016)'s pre-activation ResNet-164 for CIFAR: 1,703,258 parameters (the paper's 1.7M, its
    Table 4; it rounds to 1.7M with or without BN's scale and shift)."""
    return cifar_preact_bottleneck(164, **kwargs)


def preact_resnet1001(**kwargs) -> ResNet:
    """He et al. (2016)'s pre-activation ResNet-1001 for CIFAR: 10,327,706 parameters, 10,178,490 without BN's
    scale and shift. The paper gives 10.2M (its Table 4) and does not say how it counted: at 0.1M rounding
    its figure is consistent with counting without BN's parameters (with them, 10.3M; ResNet-164's
    1,703,258 rounds to 1.7M either way)."""
    return cifar_preact_bottleneck(1001, **kwargs)


# --- Other ResNet-18 variants used in the book ---------------------------------


def d2l_resnet18(in_channels: int = 1, num_classes: int = 10) -> ResNet:
    """D2L's ResNet-18 (section 8.6 of D2L 1.0) for Fashion-MNIST.

    7x7/2 conv (64, biased) + BN + ReLU + 3x3/2 max-pool, four stages of two
    residual blocks (64, 128, 256, 512), global average pool, linear layer.
    Like D2L's ``Residual``, convolutions carry a bias and the 1x1 projection
    has no BatchNorm, so the parameter count equals D2L's network's.
    """
    model = ResNet(BasicBlock, [2, 2, 2, 2], stem="d2l", shortcut="B", in_channels=in_channels,
                   num_classes=num_classes, bias=True, projection_norm=False)  # fmt: skip
    return _named(model, "D2L ResNet-18")


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
    return sum(
        1
        for name, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, nn.Linear)) and ".downsample" not in name
    )


@contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the ``with`` block, then restore the mode it had."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)

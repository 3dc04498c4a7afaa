"""Chapter "Inside the blocks: tracing shapes": the live tracer and its checked depths.

The chapter checks the tracer against torchvision's published parameter and
MAC figures at ``checked_depths`` (the ImageNet ResNets), and offers a live
tracer (:func:`tracer_widget`) over the model families of :data:`FAMILIES`.
It trains nothing: :func:`plan` is empty.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .. import models as M
from .. import sizes as S
from ..sizes import PlannedRun
from ..trace import Trace, trace

__all__ = ["Sizes", "SIZES", "plan", "FAMILIES", "build_model", "stage_bar_chart", "tracer_widget"]


@dataclass(frozen=True, kw_only=True)
class Sizes:
    """The ImageNet depths traced and checked against torchvision's published figures."""

    checked_depths: tuple[int, ...] = S.fixed()


SIZES = {
    "smoke": Sizes(checked_depths=(18, 50)),
    "cpu": Sizes(checked_depths=(18, 34, 50, 101, 152)),
    "gpu": Sizes(checked_depths=(18, 34, 50, 101, 152)),
    "paper": Sizes(checked_depths=(18, 34, 50, 101, 152)),
}


def plan(sizes: Sizes) -> list[PlannedRun]:
    """Nothing to train: tracing takes one forward pass per model, seconds on any machine."""
    return []


#: Families the interactive tracer offers, with the depths each allows.
FAMILIES: dict[str, tuple[int, ...]] = {
    "CIFAR ResNet": (8, 14, 20, 32, 44, 56, 110),
    "CIFAR plain": (8, 14, 20, 32, 44, 56, 110),
    "ImageNet ResNet": (18, 34, 50, 101, 152),
    "D2L ResNet-18": (18,),
}


def build_model(family: str, depth: int, in_channels: int = 3, shortcut: str = "A") -> torch.nn.Module:
    """A model of ``family`` (a key of :data:`FAMILIES`) at ``depth``."""
    if family == "CIFAR ResNet":
        return M.cifar_resnet(depth, shortcut, in_channels=in_channels)
    if family == "CIFAR plain":
        return M.cifar_resnet(depth, plain=True, in_channels=in_channels)
    if family == "ImageNet ResNet":
        return getattr(M, f"resnet{depth}")(in_channels=in_channels)  # option B, as torchvision
    if family == "D2L ResNet-18":
        return M.d2l_resnet18(in_channels=in_channels)
    raise ValueError(f"family must be one of {list(FAMILIES)}, got {family!r}")


def stage_bar_chart(t: Trace, ax=None):
    """Bar chart of parameters and MACs per top-level module (stem parts merged)."""
    import matplotlib.pyplot as plt

    groups: dict[str, list[int]] = {}
    for name, (params, macs) in t.stage_totals().items():
        key = name if name.startswith("layer") or name == "fc" else "stem" if name != "avgpool" else "fc"
        groups.setdefault(key, [0, 0])
        groups[key][0] += params
        groups[key][1] += macs
    names = list(groups)
    if ax is None:
        _, ax = plt.subplots(1, 2, figsize=(6.8, 3.2))
    ax[0].bar(names, [groups[n][0] / 1e6 for n in names], color="#4c72b0")
    ax[0].set_ylabel("parameters (M)")
    ax[1].bar(names, [groups[n][1] / 1e6 for n in names], color="#dd8452")
    ax[1].set_ylabel("MACs (M)")
    for a in ax:
        a.tick_params(axis="x", rotation=45)
    ax[0].figure.suptitle(f"{t.model_name} on {'x'.join(map(str, t.input_shape[1:]))}")
    ax[0].figure.tight_layout()
    return ax


def tracer_widget():
    """Choose family, depth, input size, channels and shortcut; see the trace and bar chart live."""
    import ipywidgets as W
    import matplotlib.pyplot as plt
    from IPython.display import display

    family = W.Dropdown(options=list(FAMILIES), value="CIFAR ResNet", description="family")
    depth = W.Dropdown(options=FAMILIES["CIFAR ResNet"], value=20, description="depth")
    size = W.IntSlider(value=32, min=8, max=256, step=8, description="input size")
    channels = W.Dropdown(options=[1, 3], value=3, description="channels")
    shortcut = W.ToggleButtons(options=["A", "B", "C"], value="A", description="shortcut")
    out = W.Output()

    def refresh(*_):
        options = FAMILIES[family.value]
        if depth.options != options:
            depth.options = options
            depth.value = options[min(2, len(options) - 1)]
        shortcut.disabled = family.value != "CIFAR ResNet"
        with out:
            out.clear_output(wait=True)
            model = build_model(family.value, depth.value, channels.value, shortcut.value)
            t = trace(model, (1, channels.value, size.value, size.value), depth="stages", raise_errors=False)
            display(t)
            if t.error is None:
                stage_bar_chart(t)
                plt.show()

    for w in (family, depth, size, channels, shortcut):
        w.observe(refresh, names="value")
    refresh()
    return W.VBox([W.HBox([family, depth]), W.HBox([channels, shortcut]), size, out])

"""Reading runs: one summary table, one kind of verdict, learning curves, published figures.

* :func:`summary` turns histories into a table (a pandas DataFrame: HTML in
  a notebook, text in a terminal) with parameters and MACs from the tracer.
* :class:`Verdict`: a sentence computed from a run, with whether the claim
  held. Every chapter's verdict function takes the same thing, a mapping of
  network name to its :class:`~resnet_lab.train.History` (or to a list of
  them, one per seed), and returns a Verdict.
* :func:`plot_curves`: training (thin) and test (bold) error against
  iterations, in the style of the paper's Fig. 6.
* Published figures live here as data, each with its source; tables show
  them apart from measured numbers (:func:`published_table`).
"""

from __future__ import annotations

import statistics
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from torch import nn

from .trace import trace
from .train import History

__all__ = ["summary", "Verdict", "plot_curves", "seed_runs", "mean_and_spread", "published_table",
           "PAPER_TABLE6", "REPRODUCTIONS"]  # fmt: skip

Runs = Mapping[str, "History | Sequence[History]"]

#: CIFAR-10 test error (%) of the residual nets in He et al. (2015), Table 6:
#: full data set, 64k iterations (their figures, not ours). The paper shows
#: the plain nets only as curves (Fig. 6).
PAPER_TABLE6 = {"ResNet-20": 8.75, "ResNet-32": 7.51, "ResNet-44": 7.17, "ResNet-56": 6.97, "ResNet-110": 6.43}

#: CIFAR-10 test error (%) of public PyTorch reproductions on the full data
#: set (their figures): ResNet-n by Y. Idelbayev, github.com/akamaster/
#: pytorch_resnet_cifar10 (the paper's recipe, 200 epochs); the CIFAR
#: ResNet-18 by K. Liu, github.com/kuangliu/pytorch-cifar (350 epochs); both
#: from their READMEs.
REPRODUCTIONS = {"ResNet-20": 8.27, "ResNet-32": 7.37, "ResNet-44": 6.90, "ResNet-56": 6.61, "ResNet-110": 6.32,
                 "CIFAR ResNet-18": 6.98}  # fmt: skip


def seed_runs(per_seed: Sequence[Mapping[str, History]]) -> dict[str, list[History]]:
    """``[{name: history}, ...]`` (one dict per seed) -> ``{name: [history per seed]}``."""
    merged: dict[str, list[History]] = {}
    for runs in per_seed:
        for name, h in runs.items():
            merged.setdefault(name, []).append(h)
    return merged


def _as_lists(runs: Runs) -> dict[str, list[History]]:
    return {name: [h] if isinstance(h, History) else list(h) for name, h in runs.items()}


def mean_and_spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summary(runs: Runs, nets: Mapping[str, nn.Module] | None = None, input_shape: Sequence[int] | None = None):
    """One row per network: parameters, MACs per image, epochs, final errors, time and speed.

    With several seeds per network, errors are means with the spread
    (sample standard deviation) beside them. MACs need ``nets`` and the
    ``input_shape`` of one image (C, H, W).
    """
    import pandas as pd

    rows = []
    for name, hs in _as_lists(runs).items():
        h = hs[0]
        row = {"network": name, "params": h.info.get("params")}
        if h.info.get("trainable") not in (None, h.info.get("params")):
            row["trainable"] = h.info["trainable"]
        if nets is not None and input_shape is not None and name in nets:
            row["M MACs"] = round(trace(nets[name], (1, *input_shape)).total_macs / 1e6, 1)
        row["epochs"] = len(h)
        for what in ("train", "test"):
            values = [100 * getattr(x.final, f"{what}_error") for x in hs
                      if getattr(x.final, f"{what}_error") is not None]
            if values:
                mean, spread = mean_and_spread(values)
                row[f"{what} error %"] = round(mean, 2)
                if len(hs) > 1:
                    row[f"{what} ± (sd)"] = round(spread, 2)
        row["train time s"] = round(statistics.fmean(x.seconds for x in hs), 1)
        row["img/s"] = round(statistics.fmean(x.final.images_per_s for x in hs))
        if len(hs) > 1:
            row["seeds"] = len(hs)
        rows.append(row)
    return pd.DataFrame(rows).set_index("network")


@dataclass
class Verdict:
    """A claim checked against a run: ``holds`` (None where the run cannot decide) and what it showed."""

    holds: bool | None
    text: str

    def __str__(self) -> str:
        return textwrap.fill(self.text, 72)

    __repr__ = __str__

    def __bool__(self) -> bool:
        return bool(self.holds)

    def _repr_markdown_(self) -> str:
        mark = {True: "Shown", False: "Not shown", None: "Undecided"}[self.holds]
        return f"**{mark}.** {self.text}"


def plot_curves(runs: Runs, groups: Mapping[str, Sequence[str]] | None = None, title: str = ""):
    """Fig. 6 style: training error (thin, within epochs) and test error (bold, per epoch) against
    iterations. ``groups``: panel title -> names drawn in it (default: one panel). First seed only."""
    import matplotlib.pyplot as plt

    runs = {n: hs[0] for n, hs in _as_lists(runs).items()}
    groups = groups or {title: list(runs)}
    fig, axes = plt.subplots(1, len(groups), figsize=(3.4 * len(groups) + 0.4, 3.8), sharey=True, squeeze=False)
    for ax, (panel, names) in zip(axes[0], groups.items()):
        colours = plt.cm.viridis_r([0.2 + 0.65 * i / max(1, len(names) - 1) for i in range(len(names))])
        for name, colour in zip(names, colours):
            h = runs[name]
            ax.plot([p["step"] for p in h.steps], [100 * p["train_error"] for p in h.steps], lw=1.0, color=colour)
            if h.final.test_error is not None:
                ax.plot([r.step for r in h.records], [100 * r.test_error for r in h.records], lw=3.0, color=colour,
                        label=name)  # fmt: skip
        ax.set_title(panel)
        ax.set_xlabel("iterations")
        ax.grid(alpha=0.3)
        ax.legend(title="bold: test\nthin: train")
    axes[0][0].set_ylabel("error (%)")
    fig.tight_layout()
    return fig


def published_table(names: Sequence[str]):
    """The published CIFAR-10 test errors of ``names`` (the paper's Table 6 and reproductions), as a
    table of their own: figures on the full data set, not measured here; "—" where a source has none."""
    import pandas as pd

    rows = [{"network": n, "He et al. 2015, Table 6": PAPER_TABLE6.get(n, "—"),
             "reproduction": REPRODUCTIONS.get(n, "—")} for n in names]  # fmt: skip
    return pd.DataFrame(rows).set_index("network").rename_axis("test error % (theirs)")

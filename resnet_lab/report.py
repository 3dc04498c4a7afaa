"""Reading runs: one summary table, one kind of verdict, learning curves, published figures.

* :func:`summary` turns histories into a table (a pandas DataFrame: HTML in
  a notebook, text in a terminal) with parameters and MACs from the tracer.
  Counts print as integers, and a value that does not apply as a dash.
* :func:`plot_curves`: training (thin) and test (bold) error against
  iterations, in the style of the paper's Fig. 6.
* Published figures live here as data, each with its source; tables show
  them apart from measured numbers (:func:`published_table`).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

from .trace import trace
from .verdicts import Runs, as_lists, mean_and_spread

__all__ = ["summary", "plot_curves", "seed_runs", "published_table", "PAPER_TABLE6", "REPRODUCTIONS", "DASH"]

#: What a table shows where a value does not apply.
DASH = "—"

#: CIFAR-10 test error (%) of the residual nets in He et al. (2015), Table 6:
#: full data set, 64k iterations (their figures, not ours). The paper shows
#: the plain nets only as curves (Fig. 6).
PAPER_TABLE6 = {"ResNet-20": 8.75, "ResNet-32": 7.51, "ResNet-44": 7.17, "ResNet-56": 6.97, "ResNet-110": 6.43}

#: CIFAR-10 test error (%) of public PyTorch runs on the full data set, as
#: reported in their READMEs (their figures, not ours). ResNet-n: Y. Idelbayev,
#: github.com/akamaster/pytorch_resnet_cifar10: the paper's networks and
#: augmentation, lr 0.1 divided by 10 at epochs 100 and 150 of 200, no
#: validation split; the errors of the weights released with it. CIFAR
#: ResNet-18: K. Liu, github.com/kuangliu/pytorch-cifar, 93.02% accuracy
#: after 350 epochs. Neither README says whether a figure comes from the
#: last epoch or the best one.
REPRODUCTIONS = {"ResNet-20": 8.27, "ResNet-32": 7.37, "ResNet-44": 6.90, "ResNet-56": 6.61, "ResNet-110": 6.32,
                 "CIFAR ResNet-18": 6.98}  # fmt: skip


def seed_runs(per_seed: Sequence[Mapping]) -> dict:
    """``[{key: history}, ...]`` (one dict per seed) -> ``{key: [history per seed]}``."""
    merged: dict = {}
    for runs in per_seed:
        for key, h in runs.items():
            merged.setdefault(key, []).append(h)
    return merged


def summary(runs: Runs, nets: Mapping | None = None, input_shape: Sequence[int] | None = None):
    """One row per network: parameters, MACs per image, epochs, final errors, time and speed.

    With several seeds per network, errors are means with the spread
    (sample standard deviation) beside them. MACs need ``nets`` and the
    ``input_shape`` of one image (C, H, W). Counts are integers; where a value
    does not apply (a trainable count where every parameter trains, an error
    never measured) the cell shows :data:`DASH`.
    """
    import pandas as pd

    lists = as_lists(runs)
    frozen = any(h.info.trainable not in (None, h.info.params) for hs in lists.values() for h in hs)
    several = any(len(hs) > 1 for hs in lists.values())
    rows = []
    for key, hs in lists.items():
        info = hs[0].info
        row: dict[str, object] = {"network": str(key), "params": _count(info.params)}
        if frozen:
            row["trainable"] = _count(info.trainable)
        if nets is not None and input_shape is not None:
            row["M MACs"] = round(trace(nets[key], (1, *input_shape)).total_macs / 1e6, 1) if key in nets else DASH
        row["epochs"] = len(hs[0])
        for what in ("train", "test"):
            values = [100 * e for e in (getattr(h.final, f"{what}_error") for h in hs) if e is not None]
            mean, spread = mean_and_spread(values) if values else (None, None)
            row[f"{what} error %"] = DASH if mean is None else round(mean, 2)
            if several:
                row[f"{what} ± (sd)"] = DASH if spread is None or len(hs) == 1 else round(spread, 2)
        row["train time s"] = round(statistics.fmean(h.seconds for h in hs), 1)
        row["img/s"] = round(statistics.fmean(h.final.images_per_s for h in hs))
        if several:
            row["seeds"] = len(hs)
        rows.append(row)
    return pd.DataFrame(rows).set_index("network")


def _count(value: int | None) -> int | str:
    return DASH if value is None else int(value)


def plot_curves(runs: Runs, groups: Mapping[str, Sequence[str]] | None = None, title: str = ""):
    """Fig. 6 style: training error (thin, within epochs) and test error (bold, per epoch) against
    iterations. ``groups``: panel title -> names drawn in it (default: one panel). First seed only."""
    import matplotlib.pyplot as plt

    runs = {n: hs[0] for n, hs in as_lists(runs).items()}
    groups = groups or {title: list(runs)}
    fig, axes = plt.subplots(1, len(groups), figsize=(3.4 * len(groups) + 0.4, 3.8), sharey=True, squeeze=False)
    for ax, (panel, names) in zip(axes[0], groups.items()):
        colours = plt.cm.viridis_r([0.2 + 0.65 * i / max(1, len(names) - 1) for i in range(len(names))])
        for name, colour in zip(names, colours):
            h = runs[name]
            ax.plot([p["step"] for p in h.steps], [100 * p["train_error"] for p in h.steps], lw=1.0, color=colour)
            if h.final.test_error is not None:
                ax.plot([r.step for r in h.records], [100 * r.test_error for r in h.records], lw=3.0, color=colour,
                        label=str(name))  # fmt: skip
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

    rows = [{"network": n, "He et al. 2015, Table 6": PAPER_TABLE6.get(n, DASH),
             "reproduction": REPRODUCTIONS.get(n, DASH)} for n in names]  # fmt: skip
    return pd.DataFrame(rows).set_index("network").rename_axis("test error % (theirs)")

"""Reading a trained classifier: confusion matrix, confident mistakes, one prediction.

Works on the probabilities and labels that :func:`resnet_lab.train.predict`
returns. Used by the chapters on training (Fashion-MNIST, CIFAR-10).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .data import ImageSet

__all__ = ["confusion_matrix", "plot_confusion", "confident_mistakes", "plot_gallery", "plot_prediction"]  # fmt: skip


def confusion_matrix(probs: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Counts: row = true class, column = predicted class."""
    pred = probs.argmax(1)
    return torch.bincount(labels * num_classes + pred, minlength=num_classes**2).view(num_classes, num_classes)


def plot_confusion(confusion: torch.Tensor, classes: Sequence[str], ax=None):
    """Confusion matrix as an annotated heat map (rows: true class, columns: predicted)."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(7, 6.6))
    ax.imshow(confusion, cmap="Blues")
    n = len(classes)
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = confusion.max().item()
    for i in range(n):
        for j in range(n):
            v = confusion[i, j].item()
            ax.text(j, i, str(v), ha="center", va="center", fontsize=11, color="white" if v > top / 2 else "black")
    ax.figure.tight_layout()
    return ax


def confident_mistakes(probs: torch.Tensor, labels: torch.Tensor, k: int = 12) -> torch.Tensor:
    """Indices of the ``k`` wrong predictions made with the highest confidence."""
    conf, pred = probs.max(1)
    wrong = (pred != labels).nonzero().squeeze(1)
    return wrong[conf[wrong].argsort(descending=True)[:k]]


def plot_gallery(data: ImageSet, indices: torch.Tensor, probs: torch.Tensor, cols: int = 4):
    """Images at ``indices`` with true and predicted class and the confidence."""
    import matplotlib.pyplot as plt

    rows = max(1, -(-len(indices) // cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.75 * cols, 2.4 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, i in zip(axes.flat, indices.tolist()):
        img = data.images[i].permute(1, 2, 0).squeeze(-1)
        ax.imshow(img, cmap="gray" if img.dim() == 2 else None)
        p = probs[i]
        ax.set_title(f"true: {data.classes[data.labels[i]]}\npred: {data.classes[p.argmax()]} ({p.max():.0%})",
                     fontsize=11)  # fmt: skip
    fig.tight_layout()
    return fig


def plot_prediction(image: torch.Tensor, probs: torch.Tensor, classes: Sequence[str], true: int | None = None):
    """One image beside a bar chart of its class probabilities."""
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(7, 3.2), gridspec_kw={"width_ratios": [1, 2.2]})
    img = image.permute(1, 2, 0).squeeze(-1)
    a.imshow(img, cmap="gray" if img.dim() == 2 else None)
    a.axis("off")
    if true is not None:
        a.set_title(f"true: {classes[true]}")
    colours = ["#dd8452" if i == int(probs.argmax()) else "#4c72b0" for i in range(len(classes))]
    b.barh(range(len(classes)), probs.tolist(), color=colours)
    b.set_yticks(range(len(classes)), classes)
    b.invert_yaxis()
    b.set_xlim(0, 1)
    b.set_xlabel("probability")
    fig.tight_layout()
    return fig

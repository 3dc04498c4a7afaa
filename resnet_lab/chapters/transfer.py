"""Transfer learning: reuse a trained ResNet's features for a new task, three ways, and predict one image.

* The three ways: train from scratch, a *linear probe* (:func:`freeze_backbone`:
  the pretrained features stay fixed, only a new head learns) and
  *fine-tuning* (everything learns, the backbone at a smaller rate: the
  recipe's ``backbone_lr_scale``). :func:`replace_head` gives a network a new
  classifier for k classes.
* Online, the pretrained network is torchvision's ImageNet ResNet
  (:func:`imagenet_weights`), loaded into our :func:`resnet_lab.models.resnet18`
  through the strict state_dict parity, and the new task Flowers102
  (:func:`load_flowers102`). Offline, it is the book's own network trained on
  five Fashion-MNIST classes and transferred to the other five.
* :func:`predict_image` does what a tutorial's prediction script does, with
  the checks it usually lacks: safe loading, the training preprocessing,
  eval mode, top-k classes with probabilities, and a clear error for a
  missing file, a non-image or an image with the wrong number of channels.

* :func:`source_network`, :func:`target_networks` and :func:`flower_networks`
  build the chapter's nets from its sizes; :func:`plan` enumerates them for
  the chapter box; :func:`transfer_verdict` reads the runs.

Chapter "Transfer learning" runs all of it.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import models as M
from .. import sizes as S
from ..data import ImageSet, data_root
from ..history import RunKey
from ..recipes import TRANSFER
from ..sizes import FULL, PlannedRun, input_shape, split_size
from ..verdicts import Runs, Verdict, as_lists

__all__ = ["Sizes", "SIZES", "source_network", "target_networks", "flower_networks", "plan", "transfer_verdict",
           "SOURCE_CLASSES", "TARGET_CLASSES", "freeze_backbone", "replace_head", "trainable_parameters",
           "imagenet_weights", "load_flowers102", "Preprocess", "predict_image", "epochs_for_steps",
           "pretrained_copy"]  # fmt: skip

#: Fashion-MNIST split into a source task (pre-training) and a target task (transfer).
SOURCE_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat")
TARGET_CLASSES = ("Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


@dataclass(frozen=True, kw_only=True)
class Sizes:
    """A source task to pre-train on (``source_train`` images of the five source classes), few labels per
    class on the target task, and (online) Flowers102 for ``flowers_epochs``."""

    source_train: int | None = S.images()
    source_epochs: int = S.epochs()
    labels_per_class: tuple[int, ...] = S.fixed()
    target_test: int | None = S.images()
    target_steps: int = S.steps()
    flowers_epochs: int = S.epochs()


SIZES = {
    "smoke": Sizes(source_train=500, source_epochs=1, labels_per_class=(2, 5), target_test=250, target_steps=5,
                   flowers_epochs=0),
    "cpu": Sizes(source_train=10_000, source_epochs=3, labels_per_class=(10, 50, 250), target_test=2_000,
                 target_steps=150, flowers_epochs=0),
    "gpu": Sizes(source_train=None, source_epochs=5, labels_per_class=(10, 50, 250), target_test=None,
                 target_steps=400, flowers_epochs=15),
    "paper": Sizes(source_train=None, source_epochs=15, labels_per_class=(10, 50, 250), target_test=None,
                   target_steps=400, flowers_epochs=30),
}  # fmt: skip

#: Test images per source class the source network is tested on.
SOURCE_TEST_PER_CLASS = 200

#: Fashion-MNIST images per class in the training and the test split.
_PER_CLASS = (FULL["fashion_mnist"][0] // 10, FULL["fashion_mnist"][1] // 10)


def source_network() -> dict[RunKey, nn.Module]:
    """The network pre-trained on the five source classes: the book's ResNet-20 with a 5-class head."""
    return {RunKey("source ResNet-20"): M.cifar_resnet(20, in_channels=1, num_classes=5)}


def target_networks(pretrained: nn.Module, labels_per_class: int,
                    fewest: bool) -> tuple[dict, dict]:
    """The nets trained with ``labels_per_class`` labels per target
    class: ``(with TRANSFER, with FINE_TUNE)``. From scratch and a
    linear probe; at the ``fewest`` labels also a probe whose frozen
    BatchNorm layers run in training mode; fine-tuning with the
    backbone at a tenth of the head's rate."""
    def key(way: str) -> RunKey:
        return RunKey(way, labels_per_class=labels_per_class)

    ways = {
        key("from scratch"): M.cifar_resnet(20, in_channels=1,
                                            num_classes=5),
        key("linear probe"): freeze_backbone(
            pretrained_copy(pretrained, 5)),
    }
    if fewest:
        ways[key("probe, BN in training mode")] = freeze_backbone(
            pretrained_copy(pretrained, 5), bn_eval=False)
    tuned = {key("fine-tune"): pretrained_copy(pretrained, 5)}
    return ways, tuned  # fmt: skip


def flower_networks(imagenet: nn.Module) -> tuple[dict, dict]:
    """Online: ResNet-18 on Flowers102 from scratch, as a linear probe of ImageNet features, and
    fine-tuned: ``(with TRANSFER, with FINE_TUNE)``."""
    ways = {RunKey("Flowers102, from scratch"): replace_head(M.resnet18(), 102),
            RunKey("Flowers102, linear probe"): freeze_backbone(pretrained_copy(imagenet, 102))}
    return ways, {RunKey("Flowers102, fine-tune"): pretrained_copy(imagenet, 102)}  # fmt: skip


def plan(sizes: Sizes) -> list[PlannedRun]:
    """The source run, every target run (each for the epochs that give ``target_steps`` steps, tested
    once at the end) and, where ``flowers_epochs`` is set, the three Flowers102 runs (tested every epoch)."""
    shape = input_shape("fashion_mnist")
    per_source = _PER_CLASS[0] if sizes.source_train is None else sizes.source_train // 5
    source_images = 5 * per_source  # the notebook selects source_train // 5 per class
    test = 5 * (sizes.target_test // 5) if sizes.target_test is not None else 5 * _PER_CLASS[1]
    [(key, pretrained)] = source_network().items()
    source_test = 5 * SOURCE_TEST_PER_CLASS
    runs = [PlannedRun(str(key), pretrained, shape, source_images * sizes.source_epochs,
                       source_test * sizes.source_epochs)]  # fmt: skip
    for k in sizes.labels_per_class:
        ways, tuned = target_networks(pretrained, k, k == min(sizes.labels_per_class))
        epochs_k = epochs_for_steps(5 * k, TRANSFER.batch_size, sizes.target_steps)
        runs += [PlannedRun(str(key), net, shape, 5 * k * epochs_k, test) for key, net in (ways | tuned).items()]
    if sizes.flowers_epochs:
        train, test = split_size(None, "flowers102", True), split_size(None, "flowers102", False)
        ways, tuned = flower_networks(M.resnet18())
        runs += [PlannedRun(str(key), net, (3, 224, 224), train * sizes.flowers_epochs,
                            test * sizes.flowers_epochs) for key, net in (ways | tuned).items()]  # fmt: skip
    return runs


def freeze_backbone(model: M.ResNet, bn_eval: bool = True) -> M.ResNet:
    """Freeze every parameter but the head ``fc`` (a linear probe). With ``bn_eval`` the frozen
    BatchNorm layers also stay in eval mode during training, so their running statistics stay the
    pretrained ones; otherwise training batches would overwrite them, and the frozen features drift."""
    for name, p in model.named_parameters():
        p.requires_grad = name.startswith("fc.")
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.frozen_eval = bn_eval
    return model


def replace_head(model: M.ResNet, num_classes: int) -> M.ResNet:
    """Give ``model`` a fresh classifier for ``num_classes`` classes (the features stay)."""
    if not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    model.num_classes = num_classes
    return model


def trainable_parameters(model: nn.Module) -> int:
    """Parameters that an optimizer would update (``requires_grad``)."""
    return M.count_parameters(model, trainable_only=True)


def epochs_for_steps(images: int, batch_size: int, steps: int) -> int:
    """Epochs that give at least ``steps`` optimizer steps on ``images`` images (few labels: many epochs)."""
    per_epoch = -(-images // batch_size)
    return max(1, -(-steps // per_epoch))


# --- Online: torchvision's ImageNet weights and Flowers102 ------------------------------------------


def imagenet_weights(arch: str = "resnet18"):
    """``(weights enum, state_dict)`` of torchvision's ImageNet ``arch``; raises ``OSError`` (with the reason)
    where the weights cannot be downloaded (offline)."""
    import torchvision

    weights = getattr(torchvision.models, f"{arch.replace('resnet', 'ResNet')}_Weights").IMAGENET1K_V1
    # torch.hub prints 'Downloading: "<url>" to <cache path>' before it tries (to stdout or stderr,
    # by version): keep that line and the machine's cache path out of the page; say what happened instead.
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            state = weights.get_state_dict(progress=False)
    except Exception as exc:  # noqa: BLE001 - any failure means: no pretrained weights here
        raise OSError(f"cannot download {weights}: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}") from exc
    return weights, state


@dataclass(frozen=True)
class Preprocess:
    """How images were prepared for training, so inference does exactly the same."""

    size: int
    channels: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: int | None = None  # resize the short side to this, then centre-crop ``size`` (ImageNet style)

    @classmethod
    def of(cls, data: ImageSet) -> Preprocess:
        """The preprocessing of an :class:`ImageSet` the book trained on (its size, channels, statistics)."""
        c, h, _ = data.shape
        return cls(h, c, tuple(data.mean), tuple(data.std))

    @classmethod
    def of_weights(cls, weights) -> Preprocess:
        """torchvision weights' own preprocessing (resize, centre crop, ImageNet mean and std)."""
        t = weights.transforms()
        return cls(t.crop_size[0], 3, tuple(t.mean), tuple(t.std), t.resize_size[0])

    def to_uint8(self, image) -> torch.Tensor:
        """A PIL image -> uint8 tensor (C, size, size), resized (and centre-cropped) like the training data."""
        from torchvision.transforms import functional as TF

        if self.resize:
            image = TF.center_crop(TF.resize(image, self.resize, antialias=True), self.size)
        else:
            image = TF.resize(image, [self.size, self.size], antialias=True)
        return TF.pil_to_tensor(image)

    def __call__(self, image) -> torch.Tensor:
        """A PIL image -> normalised float batch of one (1, C, size, size)."""
        x = self.to_uint8(image).float() / 255
        mean = torch.tensor(self.mean).view(-1, 1, 1)
        std = torch.tensor(self.std).view(-1, 1, 1)
        return ((x - mean) / std).unsqueeze(0)


def load_flowers102(split: str, preprocess: Preprocess, root: str | os.PathLike | None = None) -> ImageSet:
    """Flowers102 (Nilsback & Zisserman 2008) through torchvision, prepared as uint8 tensors by ``preprocess``."""
    import torchvision

    ds = torchvision.datasets.Flowers102(str(data_root(root)), split=split, download=True)
    images = torch.stack([preprocess.to_uint8(ds[i][0].convert("RGB")) for i in range(len(ds))])
    labels = torch.tensor([ds[i][1] for i in range(len(ds))])
    classes = tuple(f"flower {i}" for i in range(102))
    return ImageSet("Flowers102", images, labels, classes, str(data_root(root)), split == "train",
                    preprocess.mean, preprocess.std, f"torchvision, split {split}")  # fmt: skip


# --- One image, one prediction ------------------------------------------------------------------------


def _open_image(path: str | os.PathLike):
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no image at {path}: give the path of a PNG or JPEG file")
    try:
        image = Image.open(path)
        image.load()
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"{path} is not an image file that PIL can read (expected PNG or JPEG): {exc}") from exc
    return image


@torch.no_grad()
def predict_image(model: nn.Module, image, preprocess: Preprocess, classes: Sequence[str],
                  k: int = 3) -> list[tuple[str, float]]:  # fmt: skip
    """Top-``k`` classes and probabilities for one image (a path, or a PIL image), in eval mode.

    The image must have the channels the network was trained on: a
    greyscale image for a 3-channel network (or a colour one for a
    1-channel network) is refused with an error that says how to convert it,
    rather than silently broadcast.
    """
    if isinstance(image, (str, os.PathLike)):
        image = _open_image(image)
    channels = 1 if image.mode in ("L", "I", "I;16", "F", "1") else 3 if image.mode in ("RGB", "RGBA", "P") else None
    if channels == 3 and image.mode != "RGB":
        image = image.convert("RGB")
    if channels != preprocess.channels:
        want = "colour (RGB)" if preprocess.channels == 3 else "greyscale (L)"
        fix = "image.convert('RGB')" if preprocess.channels == 3 else "image.convert('L')"
        raise ValueError(f"the network expects {preprocess.channels}-channel {want} images; this image has mode "
                         f"{image.mode!r} ({channels or 'unknown'} channel(s)). Convert it first with {fix} if "
                         "that is what you mean.")  # fmt: skip
    x = preprocess(image).to(next(model.parameters()).device)
    with M.evaluating(model):
        probs = F.softmax(model(x).float(), dim=1)[0].cpu()
    top = probs.topk(min(k, len(classes)))
    return [(classes[i], float(p)) for p, i in zip(top.values, top.indices.tolist())]


def pretrained_copy(model: nn.Module, num_classes: int) -> nn.Module:
    """A copy of a pretrained ``model`` with a fresh head for ``num_classes`` classes."""
    return replace_head(copy.deepcopy(model), num_classes)


def transfer_verdict(runs: Runs, margin: float = 2.0) -> Verdict:
    """Did pretrained features help at few labels? Keys are ``RunKey(way, labels_per_class=k)`` with the
    ways ``from scratch``, ``linear probe`` and ``fine-tune``; compares test accuracies at the fewest labels."""
    acc: dict[str, dict[int, float]] = {}
    for key, hs in as_lists(runs).items():
        if not isinstance(key, RunKey) or key.labels_per_class is None:
            raise ValueError(f"run {str(key)!r} is not keyed RunKey(way, labels_per_class=k)")
        acc.setdefault(key.kind, {})[key.labels_per_class] = 100 * (1 - hs[0].final.test_error)
    missing = {"from scratch", "linear probe", "fine-tune"} - acc.keys()
    if missing:
        raise ValueError(f"runs for {sorted(missing)} are missing")
    k, most = min(acc["from scratch"]), max(acc["from scratch"])
    scratch = acc["from scratch"][k]
    best_way = max(("linear probe", "fine-tune"), key=lambda w: acc[w][k])
    gain = acc[best_way][k] - scratch
    at_most = ", ".join(f"{w} {acc[w][most]:.1f}%" for w in ("from scratch", "linear probe", "fine-tune"))
    text = (f"With {k} labels per class, training from scratch reached {scratch:.1f}% test accuracy, the linear "
            f"probe {acc['linear probe'][k]:.1f}% and fine-tuning {acc['fine-tune'][k]:.1f}%: {best_way} "
            f"{'gained' if gain >= 0 else 'lost'} {abs(gain):.1f} points against no transfer. With {most} labels "
            f"per class: {at_most}.")  # fmt: skip
    if gain < margin:
        text += f" That is less than the {margin:.0f} points this verdict asks of a benefit."
    return Verdict(gain >= margin, text)

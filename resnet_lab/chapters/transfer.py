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
  the chapter box, with every draw of the labelled images (:func:`draws_of`).
* :func:`transfer_verdict` compares each way with training from scratch at
  every label count: paired over the draws where there are several, two
  standard errors on the test images where there is one.
  :func:`batchnorm_verdict` compares the probe's BatchNorm in eval and in
  training mode, and :func:`running_stat_drift` shows the mechanism: how far
  training mode moves each layer's running statistics.

Chapter "Transfer learning" runs all of it.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import models as M
from .. import sizes as S
from ..data import ImageSet, data_root
from ..history import History, RunKey
from ..recipes import TRANSFER
from ..sizes import FULL, PlannedRun, input_shape, split_size
from ..verdicts import Claim, Runs, Verdict, as_lists, paired_claim, proportions_claim, schedule_notes

__all__ = ["Sizes", "SIZES", "source_network", "target_networks", "draws_of", "draw_seed", "flower_networks", "plan",
           "transfer_verdict", "versus_scratch", "batchnorm_verdict", "StatDrift", "running_stat_drift", "WAYS",
           "BN_PROBE", "SOURCE_CLASSES", "TARGET_CLASSES", "freeze_backbone", "replace_head", "trainable_parameters",
           "imagenet_weights", "load_flowers102", "Preprocess", "predict_image", "epochs_for_steps",
           "pretrained_copy"]  # fmt: skip

#: Fashion-MNIST split into a source task (pre-training) and a target task (transfer).
SOURCE_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat")
TARGET_CLASSES = ("Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

#: The three ways of training on the target task, and the extra probe with BatchNorm in training mode.
WAYS = ("from scratch", "linear probe", "fine-tune")
BN_PROBE = "probe, BN in training mode"


@dataclass(frozen=True, kw_only=True)
class Sizes:
    """A source task to pre-train on (``source_train`` images of the five source classes), few labels per
    class on the target task, and (online) Flowers102 for ``flowers_epochs``.

    ``draws``: how many times the labelled images are drawn at the fewest labels per class, each draw
    with its own seed (which also initialises the new networks and orders the batches), so that the
    verdict compares the ways draw by draw; the larger label counts are drawn once. A cap keeps two
    draws, the fewest the paired comparison needs."""

    source_train: int | None = S.images()
    source_epochs: int = S.epochs()
    labels_per_class: tuple[int, ...] = S.fixed()
    draws: int = S.points(at_most=2)
    target_test: int | None = S.images()
    target_steps: int = S.steps()
    flowers_epochs: int = S.epochs()


SIZES = {
    "smoke": Sizes(source_train=500, source_epochs=1, labels_per_class=(2, 5), draws=2, target_test=250, target_steps=5,
                   flowers_epochs=0),
    "cpu": Sizes(source_train=10_000, source_epochs=3, labels_per_class=(10, 50, 250), draws=3, target_test=2_000,
                 target_steps=150, flowers_epochs=0),
    "gpu": Sizes(source_train=None, source_epochs=5, labels_per_class=(10, 50, 250), draws=3, target_test=None,
                 target_steps=400, flowers_epochs=15),
    "paper": Sizes(source_train=None, source_epochs=15, labels_per_class=(10, 50, 250), draws=3, target_test=None,
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
                    bn_probe: bool) -> tuple[dict, dict]:
    """The nets trained on one draw of ``labels_per_class`` labels
    per target class: ``(with TRANSFER, with FINE_TUNE)``. From
    scratch and a linear probe; with ``bn_probe`` also a probe whose
    frozen BatchNorm layers run in training mode; fine-tuning with
    the backbone at a tenth of the head's rate."""
    def key(way: str) -> RunKey:
        return RunKey(way, labels_per_class=labels_per_class)

    ways = {
        key("from scratch"): M.cifar_resnet(20, in_channels=1,
                                            num_classes=5),
        key("linear probe"): freeze_backbone(
            pretrained_copy(pretrained, 5)),
    }
    if bn_probe:
        ways[key(BN_PROBE)] = freeze_backbone(
            pretrained_copy(pretrained, 5), bn_eval=False)
    tuned = {key("fine-tune"): pretrained_copy(pretrained, 5)}
    return ways, tuned  # fmt: skip


def draws_of(sizes: Sizes, labels_per_class: int) -> range:
    """The draws of labelled images trained at ``labels_per_class``: ``sizes.draws`` of them at the
    fewest labels per class, one at every other count. The notebook and :func:`plan` both loop over it."""
    if labels_per_class not in sizes.labels_per_class:
        raise ValueError(f"labels_per_class={labels_per_class} is not one of the sizes' "
                         f"{sizes.labels_per_class}")  # fmt: skip
    if sizes.draws < 1:
        raise ValueError(f"draws must be at least 1, got {sizes.draws}")
    return range(sizes.draws if labels_per_class == min(sizes.labels_per_class) else 1)


def draw_seed(labels_per_class: int, draw: int) -> int:
    """The seed of one draw: it picks the labelled images, initialises the new networks and orders the
    batches. Draw 0 uses ``labels_per_class`` itself; each further draw adds 1000."""
    return labels_per_class + 1000 * draw


def flower_networks(imagenet: nn.Module) -> tuple[dict, dict]:
    """Online: ResNet-18 on Flowers102 from scratch, as a linear probe of ImageNet features, and
    fine-tuned: ``(with TRANSFER, with FINE_TUNE)``."""
    ways = {RunKey("Flowers102, from scratch"): replace_head(M.resnet18(), 102),
            RunKey("Flowers102, linear probe"): freeze_backbone(pretrained_copy(imagenet, 102))}
    return ways, {RunKey("Flowers102, fine-tune"): pretrained_copy(imagenet, 102)}  # fmt: skip


def plan(sizes: Sizes) -> list[PlannedRun]:
    """The source run, every target run (each draw of :func:`draws_of`, each for the epochs that give
    ``target_steps`` steps, tested once at the end; the BatchNorm probe on the first draw at the fewest
    labels only) and, where ``flowers_epochs`` is set, the three Flowers102 runs (tested every epoch)."""
    shape = input_shape("fashion_mnist")
    per_source = _PER_CLASS[0] if sizes.source_train is None else sizes.source_train // 5
    source_images = 5 * per_source  # the notebook selects source_train // 5 per class
    test = 5 * (sizes.target_test // 5) if sizes.target_test is not None else 5 * _PER_CLASS[1]
    [(key, pretrained)] = source_network().items()
    source_test = 5 * SOURCE_TEST_PER_CLASS
    runs = [PlannedRun(str(key), pretrained, shape, source_images * sizes.source_epochs,
                       source_test * sizes.source_epochs)]  # fmt: skip
    for k in sizes.labels_per_class:
        epochs_k = epochs_for_steps(5 * k, TRANSFER.batch_size, sizes.target_steps)
        for draw in draws_of(sizes, k):
            ways, tuned = target_networks(pretrained, k, bn_probe=k == min(sizes.labels_per_class) and draw == 0)
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


def _by_way(runs: Runs) -> dict[str, dict[int, list[History]]]:
    """``{way: {labels per class: [history per draw]}}``; a clear error for a key that is not a way's."""
    out: dict[str, dict[int, list[History]]] = {}
    for key, hs in as_lists(runs).items():
        if not isinstance(key, RunKey) or key.labels_per_class is None:
            raise ValueError(f"run {str(key)!r} is not keyed RunKey(way, labels_per_class=k)")
        for h in hs:
            if not h.records or h.final.test_error is None:
                raise ValueError(f"run {key} has no test error: train it with a test set")
        out.setdefault(key.kind, {})[key.labels_per_class] = hs
    return out


def _accuracy(h: History) -> float:
    """Final test accuracy of a run, in percent."""
    return 100 * (1 - h.final.test_error)


def _test_images(key: str, h: History) -> int:
    if h.info.test_images is None:
        raise ValueError(f"run {key} does not record how many images it was tested on (info.test_images); "
                         "histories from train_all do")  # fmt: skip
    return h.info.test_images


def versus_scratch(way: str, k: int, mine: Sequence[History], scratch: Sequence[History]) -> Claim:
    """Claim: ``way`` is more accurate than training from scratch with ``k`` labels per class. Several
    draws: paired over the draws (:func:`~resnet_lab.verdicts.paired_claim`, the draws in the same order
    on both sides). One draw: the two test accuracies against two standard errors of their difference
    (:func:`~resnet_lab.verdicts.proportions_claim`), which covers the sampling of the test images, not
    the draw of the labelled ones."""
    name = f"{way} beats from scratch, {k}/class"
    if len(mine) != len(scratch):
        raise ValueError(f"{way} has {len(mine)} draws at {k}/class but from scratch has {len(scratch)}: "
                         "train every way on the same draws")  # fmt: skip
    what = f"{way} - from scratch"
    if len(mine) > 1:
        return paired_claim(name, [_accuracy(h) for h in mine], [_accuracy(h) for h in scratch], what=what,
                            over="draw")
    a, b = mine[0], scratch[0]
    return proportions_claim(name, _accuracy(a) / 100, _test_images(way, a), _accuracy(b) / 100,
                             _test_images("from scratch", b), what=what)  # fmt: skip


def transfer_verdict(runs: Runs) -> Verdict:
    """Did reusing the pretrained network beat training from scratch? One claim per way of reusing it
    (fine-tuning, the linear probe) and per number of labels per class, each against training from
    scratch (:func:`versus_scratch`: paired over the draws where there are several, else two standard
    errors on the test images).

    Keys are ``RunKey(way, labels_per_class=k)`` for the ways of :data:`WAYS`, each with one history per
    draw of the labelled images (the draws in the same order for every way); other ways (the
    BatchNorm probe) are left to :func:`batchnorm_verdict`. The text gives every accuracy, says where
    the probe and fine-tuning sit against training from scratch, and compares the probe's training
    error with from scratch's at the most labels.
    """
    by_way = _by_way(runs)
    missing = set(WAYS) - by_way.keys()
    if missing:
        raise ValueError(f"runs for {sorted(missing)} are missing")
    ks = sorted(by_way["from scratch"])
    for way in WAYS:
        if sorted(by_way[way]) != ks:
            raise ValueError(f"{way} was trained at {sorted(by_way[way])} labels per class, from scratch at {ks}")
    claims = [versus_scratch(way, k, by_way[way][k], by_way["from scratch"][k])
              for k in ks for way in ("fine-tune", "linear probe")]  # fmt: skip

    def mean(way: str, k: int) -> float:
        return statistics.fmean(_accuracy(h) for h in by_way[way][k])

    def draws(k: int) -> str:
        n = len(by_way["from scratch"][k])
        return f" (means of {n} draws of the labelled images)" if n > 1 else ""

    rows = "; ".join(f"{k}/class {' / '.join(f'{mean(w, k):.1f}' for w in WAYS)}%{draws(k)}" for k in ks)
    text = f"Test accuracy, from scratch / linear probe / fine-tune: {rows}."
    for way in ("linear probe", "fine-tune"):
        below = [k for k in ks if mean(way, k) < mean("from scratch", k)]
        where = ("at every label count" if len(below) == len(ks) else "at no label count" if not below
                 else "with " + ", ".join(map(str, below)) + " labels per class")  # fmt: skip
        text += f" {way.capitalize()} is below training from scratch {where}."
    fewest, most = ks[0], ks[-1]
    if most != fewest:
        gain = {w: mean(w, most) - mean(w, fewest) for w in ("from scratch", "linear probe")}
        text += (f" From {fewest} to {most} labels per class the linear probe gains {gain['linear probe']:.1f} "
                 f"points, training from scratch {gain['from scratch']:.1f}.")  # fmt: skip
    train = {w: statistics.fmean(100 * h.final.train_error for h in by_way[w][most])
             for w in ("from scratch", "linear probe")}  # fmt: skip
    fits = "less well than" if train["linear probe"] > train["from scratch"] else "as well as or better than"
    text += (f" With {most} labels per class the probe fits its own labelled images {fits} the network trained "
             f"from scratch (training error {train['linear probe']:.1f}% against {train['from scratch']:.1f}%). "
             "A claim below is shown or not shown only where its rule finds the difference larger than the "
             "noise.")  # fmt: skip
    return Verdict(claims, text + schedule_notes(runs))


def batchnorm_verdict(runs: Runs) -> Verdict:
    """Did the linear probe with its frozen BatchNorm layers in eval mode beat the same probe with them in
    training mode? Compares the first draw of each at the labels the BatchNorm probe was trained with
    (one draw: two standard errors of the difference of the two test accuracies, which covers the test
    images only, not the draw of the labelled images or the seed)."""
    by_way = _by_way(runs)
    if BN_PROBE not in by_way or "linear probe" not in by_way:
        raise ValueError(f"runs for {BN_PROBE!r} and 'linear probe' are needed")
    k = min(by_way[BN_PROBE])
    if k not in by_way["linear probe"]:
        raise ValueError(f"no linear probe was trained with {k} labels per class")
    frozen, moving = by_way["linear probe"][k][0], by_way[BN_PROBE][k][0]
    claim = proportions_claim(f"eval-mode BN beats training-mode BN, {k}/class", _accuracy(frozen) / 100,
                              _test_images("linear probe", frozen), _accuracy(moving) / 100,
                              _test_images(BN_PROBE, moving), what="eval mode - training mode")  # fmt: skip
    text = (f"Linear probe with {k} labels per class, one draw: {_accuracy(frozen):.1f}% test accuracy with the "
            f"frozen BatchNorm layers in eval mode, {_accuracy(moving):.1f}% with them in training mode.")  # fmt: skip
    return Verdict([claim], text + schedule_notes({key: hs for key, hs in runs.items()
                                                  if isinstance(key, RunKey) and key.labels_per_class == k
                                                  and key.kind in ("linear probe", BN_PROBE)}))


@dataclass(frozen=True)
class StatDrift:
    """How far one BatchNorm layer's running statistics moved from the pretrained network's.

    ``mean_shift``: the mean over channels of ``|mean' - mean| / sqrt(var + eps)``, how far the moved
    running mean alone shifts the layer's normalised value ``(x - mean) / sqrt(var + eps)`` for the same
    input, in units of the pretrained standard deviation; it leaves out the learned scale ``gamma`` (the
    layer's output moves by ``gamma`` times it) and the change of the variance. ``var_change``: the mean
    over channels of ``|var' - var| / (var + eps)``, the relative change of the running variance.
    """

    layer: str
    mean_shift: float
    var_change: float


@torch.no_grad()
def running_stat_drift(before: nn.Module, after: nn.Module) -> list[StatDrift]:
    """Per BatchNorm layer (in module order), how far ``after``'s running statistics are from
    ``before``'s: the mechanism by which BatchNorm in training mode changes a frozen backbone. Zero for
    every layer of a probe whose frozen BatchNorm stayed in eval mode."""
    mine = {n: m for n, m in before.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    theirs = {n: m for n, m in after.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    if not mine or mine.keys() != theirs.keys():
        raise ValueError(f"the two networks must have the same BatchNorm layers; got {len(mine)} "
                         f"({sorted(mine)[:3]}...) and {len(theirs)} ({sorted(theirs)[:3]}...)")  # fmt: skip
    out = []
    for name, bn in mine.items():
        other = theirs[name]
        if bn.running_mean is None or other.running_mean is None:
            raise ValueError(f"BatchNorm layer {name} keeps no running statistics (track_running_stats=False)")
        mean, var = bn.running_mean.float().cpu(), bn.running_var.float().cpu()
        mean2, var2 = other.running_mean.float().cpu(), other.running_var.float().cpu()
        shift = ((mean2 - mean).abs() / (var + bn.eps).sqrt()).mean().item()
        change = ((var2 - var).abs() / (var + bn.eps)).mean().item()
        out.append(StatDrift(name, shift, change))
    return out

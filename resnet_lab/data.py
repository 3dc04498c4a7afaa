"""Offline-first Fashion-MNIST and CIFAR-10, read into memory as uint8 tensors.

Small readers of the original file formats (IDX for Fashion-MNIST, CIFAR-10's
"python version" pickles) return an :class:`ImageSet`, so no network and no
torchvision ``Dataset`` is needed. Where data is looked for, in order:

1. the ``root`` argument, else the ``RESNET_LAB_DATA`` environment variable,
   else ``../data`` (D2L's convention, relative to the working directory, so a
   notebook in ``notebooks/`` shares ``<repo>/data`` with ``d2l``); under it,
   torchvision's own layout (``FashionMNIST/raw/``, ``cifar-10-batches-py/``);
2. for Fashion-MNIST, Debian's ``/usr/share/datasets/fashion-mnist``
   (package ``dataset-fashion-mnist``);
3. a download through torchvision into the root, where the machine is online.

When every place fails, one error names each place looked and how to fix it.
Batches come from :class:`resnet_lab.loader.DeviceLoader`.
"""

from __future__ import annotations

import gzip
import os
import pickle
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.datasets.utils import calculate_md5

from . import settings

__all__ = [
    "ImageSet",
    "DataNotFoundError",
    "DataCorruptError",
    "data_root",
    "load_fashion_mnist",
    "load_cifar10",
    "load_dataset",
    "prepare_fashion_mnist",
    "balanced_indices",
    "select_classes",
    "validation_split",
    "FASHION_CLASSES",
    "CIFAR10_CLASSES",
    "DEBIAN_FASHION_DIR",
]

DEBIAN_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_FASHION_FILES = {
    True: ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    False: ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
# md5 sums of CIFAR-10's python-batch files: the official release (the sums
# torchvision checks) and the 5,000/1,000 subset used offline (the first 1,000
# images of each official batch).
_CIFAR_MD5 = {
    "official": {
        "data_batch_1": "c99cafc152244af753f735de768cd75f",
        "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
        "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
        "data_batch_4": "634d18415352ddfa80567beed471001a",
        "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
        "test_batch": "40351d587109b95175f43aff81a1287e",
    },
    "subset-5k": {
        "data_batch_1": "cdf79b438a41c47838a3ef2437b7807f",
        "data_batch_2": "e278f890cab3927a1174c9d114ad138a",
        "data_batch_3": "724a30327ab6975fcee91e9012204b27",
        "data_batch_4": "04184a3b34b9bbfcd54ba19dd2579c83",
        "data_batch_5": "7efb946983d1aadd0c60a297ec8b7ff3",
        "test_batch": "2c93d7bbab0bcf80ede1f1738c300d33",
    },
}
_RELEASE_NAMES = {"official": "official release", "subset-5k": "real 5,000/1,000 subset"}
# Per-channel statistics of the training sets, for normalisation.
_STATS = {
    "fashion_mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}


class DataNotFoundError(FileNotFoundError):
    """No copy of a data set was found anywhere we looked."""


class DataCorruptError(ValueError):
    """A data file exists but is truncated, corrupted or of an unknown release."""


@dataclass
class ImageSet:
    """A labelled image set held in memory: uint8 images (N, C, H, W), int64 labels.

    ``source`` is the folder the files came from; ``origin`` says in words
    which copy that was (for example "real 5,000/1,000 subset").
    """

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    source: str
    train: bool
    mean: tuple[float, ...] = field(default=(0.5,))
    std: tuple[float, ...] = field(default=(0.5,))
    origin: str = ""

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.images.shape[1:])

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=len(self.classes)).tolist()

    def describe(self) -> str:
        split = "train" if self.train else "test"
        c, h, w = self.shape
        where = self.origin or Path(self.source).name or self.source
        return f"{self.name} {split}: {len(self):,} images of {c}x{h}x{w} ({where})"

    def __repr__(self) -> str:
        return f"ImageSet({self.describe()})"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root``, else ``$RESNET_LAB_DATA``, else ``../data``."""
    if root is not None:
        return Path(root).expanduser()
    return settings.data_root() or Path("..") / "data"


# --- Fashion-MNIST -------------------------------------------------------------


def _read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (gzipped or not): the format of MNIST and Fashion-MNIST."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataCorruptError(f"cannot read {path}: {exc}. Delete it and fetch the data set again.") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataCorruptError(f"{path} is not an IDX file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(raw) - offset != expected:
        raise DataCorruptError(
            f"{path} is truncated or corrupted: header promises {dims} = {expected:,} bytes, "
            f"file holds {len(raw) - offset:,}. Delete it and fetch the data set again."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims)


def _find_idx(directory: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    return None


def _fashion_dirs(root: Path) -> list[Path]:
    return [root / "FashionMNIST" / "raw", root / "fashion-mnist", root]


def prepare_fashion_mnist(root: str | os.PathLike | None = None, download: bool = False) -> Path:
    """Put Fashion-MNIST where torchvision and d2l look for it, offline.

    Decompresses Debian's files into ``<root>/FashionMNIST/raw/``. torchvision
    finds the decompressed files there and skips its download, so
    ``torchvision.datasets.FashionMNIST(root, download=True)`` and d2l's
    ``FashionMNIST`` data module (``root = ../data``) both work offline.
    Where Debian's files are missing and ``download`` is true (Colab), the
    files are downloaded there by torchvision instead. Returns the raw folder.
    Existing files are left as they are.
    """
    raw = data_root(root) / "FashionMNIST" / "raw"
    stems = [s for pair in _FASHION_FILES.values() for s in pair]
    if all((raw / s).is_file() for s in stems):
        return raw
    sources = []
    for s in stems:
        src = _find_idx(DEBIAN_FASHION_DIR, s)
        if src is None and (raw / (s + ".gz")).is_file():
            src = raw / (s + ".gz")
        sources.append(src)
    if None in sources and download:
        for train in (True, False):
            _download_fashion(data_root(root), train)
        return raw
    if None in sources:
        missing = [s for s, src in zip(stems, sources) if src is None]
        raise DataNotFoundError(
            f"cannot prepare Fashion-MNIST in {raw}: {missing} not found in {DEBIAN_FASHION_DIR} or {raw}. "
            "Install Debian's package (as root: apt-get update && apt-get install -y dataset-fashion-mnist), "
            "or download with torchvision.datasets.FashionMNIST(root, download=True) where online."
        )
    raw.mkdir(parents=True, exist_ok=True)
    for s, src in zip(stems, sources):
        target = raw / s
        if target.is_file():
            continue
        _read_idx(src)  # refuse to copy a broken file
        tmp = target.with_suffix(".tmp")
        with gzip.open(src, "rb") if src.suffix == ".gz" else open(src, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout)
        os.replace(tmp, target)
    return raw


def _download_fashion(root: Path, train: bool) -> Path:
    import torchvision

    torchvision.datasets.FashionMNIST(str(root), train=train, download=True)
    return root / "FashionMNIST" / "raw"


def _fashion_origin(directory: Path) -> str:
    return "Debian's dataset-fashion-mnist" if directory == DEBIAN_FASHION_DIR else f"files in {directory.name}/"


def load_fashion_mnist(
    train: bool = True,
    root: str | os.PathLike | None = None,
    subset: int | None = None,
    resize: int | None = None,
    download: bool = True,
    seed: int = 0,
) -> ImageSet:
    """Fashion-MNIST (Xiao et al. 2017): 60,000 train / 10,000 test 28x28 greyscale images."""
    base = data_root(root)
    images_stem, labels_stem = _FASHION_FILES[train]
    looked: list[str] = []
    for directory in [*_fashion_dirs(base), DEBIAN_FASHION_DIR]:
        img, lab = _find_idx(directory, images_stem), _find_idx(directory, labels_stem)
        looked.append(str(directory))
        if img and lab:
            return _fashion_set(img, lab, train, directory, _fashion_origin(directory), subset, resize, seed)
    download_note = "download disabled"
    if download:
        try:
            directory = _download_fashion(base, train)
            img, lab = _find_idx(directory, images_stem), _find_idx(directory, labels_stem)
            if img and lab:
                return _fashion_set(img, lab, train, directory, "downloaded by torchvision", subset, resize, seed)
        except Exception as exc:  # noqa: BLE001 - reported below, with every place looked
            download_note = f"download failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    raise DataNotFoundError(
        "Fashion-MNIST not found. Looked for "
        f"{images_stem}[.gz] and {labels_stem}[.gz] in:\n  - "
        + "\n  - ".join(looked)
        + f"\n  - torchvision download into {base}: {download_note}\n"
        "Fix it by one of: installing Debian's package (as root: apt-get update && apt-get install -y "
        "dataset-fashion-mnist); setting RESNET_LAB_DATA (or root=) to a folder holding the files; "
        "or running where the internet is reachable so torchvision can download them."
    )


def _fashion_set(img: Path, lab: Path, train: bool, folder: Path, origin: str, subset, resize, seed) -> ImageSet:
    images = torch.from_numpy(_read_idx(img).copy()).unsqueeze(1)
    labels = torch.from_numpy(_read_idx(lab).astype(np.int64))
    if len(images) != len(labels):
        raise DataCorruptError(f"{img} holds {len(images)} images but {lab} holds {len(labels)} labels")
    mean, std = _STATS["fashion_mnist"]
    data = ImageSet("Fashion-MNIST", images, labels, FASHION_CLASSES, str(folder), train, mean, std, origin)
    return _finish(data, subset, resize, seed)


# --- CIFAR-10 -----------------------------------------------------------------


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one python-batch pickle: (N, 3, 32, 32) uint8 images and labels."""
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        data = np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(entry.get("labels", entry.get("fine_labels")), dtype=np.int64)
    except Exception as exc:  # noqa: BLE001 - any failure here means a broken file
        raise DataCorruptError(f"cannot read CIFAR-10 batch {path}: {type(exc).__name__}: {exc}") from exc
    if len(data) != len(labels):
        raise DataCorruptError(f"{path}: {len(data)} images but {len(labels)} labels")
    return data, labels


def _cifar_release(folder: Path, files: list[str]) -> str:
    """Which known release the batch files belong to; error if none matches."""
    sums = {name: calculate_md5(str(folder / name)) for name in files}
    for release, known in _CIFAR_MD5.items():
        if all(known[name] == s for name, s in sums.items()):
            return release
    bad = ", ".join(
        f"{name} (md5 {s}; official {_CIFAR_MD5['official'][name]}, subset {_CIFAR_MD5['subset-5k'][name]})"
        for name, s in sums.items()
        if s not in (_CIFAR_MD5["official"][name], _CIFAR_MD5["subset-5k"][name])
    )
    mixed = "" if bad else " The files mix the official release and the 5k subset."
    raise DataCorruptError(
        f"CIFAR-10 files in {folder} are truncated, corrupted or of an unknown release: {bad or 'md5 mix'}."
        f"{mixed} Delete the folder and fetch the data set again."
    )


def _download_cifar(root: Path) -> None:
    import torchvision

    torchvision.datasets.CIFAR10(str(root), train=True, download=True)


def load_cifar10(
    train: bool = True,
    root: str | os.PathLike | None = None,
    subset: int | None = None,
    resize: int | None = None,
    download: bool = True,
    seed: int = 0,
) -> ImageSet:
    """CIFAR-10 (Krizhevsky 2009): 50,000/10,000 32x32 colour images, or the 5k/1k offline subset."""
    base = data_root(root)
    files = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
    candidates = [base / "cifar-10-batches-py", base / "cifar10-subset" / "cifar-10-batches-py", base]
    looked = []
    for folder in candidates:
        looked.append(str(folder))
        if all((folder / name).is_file() for name in files):
            return _cifar_set(folder, files, train, subset, resize, seed, downloaded=False)
    download_note = "download disabled"
    if download:
        try:
            _download_cifar(base)
            return _cifar_set(candidates[0], files, train, subset, resize, seed, downloaded=True)
        except DataCorruptError:
            raise
        except Exception as exc:  # noqa: BLE001 - reported below, with every place looked
            download_note = f"download failed: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    raise DataNotFoundError(
        f"CIFAR-10 not found. Looked for {', '.join(files)} in:\n  - "
        + "\n  - ".join(looked)
        + f"\n  - torchvision download into {base}: {download_note}\n"
        "Fix it by one of: running where the internet is reachable (the full set downloads, 163 MB); "
        "or setting RESNET_LAB_DATA (or root=) to a folder holding cifar-10-batches-py/."
    )


def _cifar_set(folder: Path, files, train, subset, resize, seed, downloaded: bool) -> ImageSet:
    release = _cifar_release(folder, files)
    parts = [_read_cifar_batch(folder / name) for name in files]
    images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    origin = _RELEASE_NAMES[release] + (", downloaded" if downloaded else "")
    mean, std = _STATS["cifar10"]
    data = ImageSet("CIFAR-10", images, labels, CIFAR10_CLASSES, str(folder), train, mean, std, origin)
    return _finish(data, subset, resize, seed)


def load_dataset(name: str, train: bool = True, **kwargs) -> ImageSet:
    """``load_fashion_mnist`` or ``load_cifar10`` by name."""
    loaders = {"fashion_mnist": load_fashion_mnist, "cifar10": load_cifar10}
    key = name.lower().replace("-", "_")
    if key not in loaders:
        raise ValueError(f"unknown data set {name!r}; expected one of {sorted(loaders)}")
    return loaders[key](train=train, **kwargs)


# --- Subsets, class selections and resizing ----------------------------------------


def balanced_indices(labels: torch.Tensor, size: int, num_classes: int, seed: int = 0) -> torch.Tensor:
    """``size`` indices, as equal per class as the data allow, chosen by ``seed``.

    Classes get ``size // num_classes`` each (the first ``size % num_classes``
    one more); a class with too few images gives all it has and the others make
    up the difference. The result is sorted, so order follows the source.
    """
    n = len(labels)
    if not isinstance(size, int) or size < 1:
        raise ValueError(f"subset must be a positive int, got {size!r}")
    if size > n:
        raise ValueError(f"subset={size:,} is larger than the data set ({n:,} images); use at most {n:,} or None")
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=g)
    per_class = [order[labels[order] == c] for c in range(num_classes)]
    want = [size // num_classes + (1 if c < size % num_classes else 0) for c in range(num_classes)]
    take = [min(w, len(p)) for w, p in zip(want, per_class)]
    short = size - sum(take)
    while short > 0:  # hand the shortfall to classes that still have images
        for c in range(num_classes):
            if short and take[c] < len(per_class[c]):
                take[c] += 1
                short -= 1
    chosen = torch.cat([p[:t] for p, t in zip(per_class, take)])
    return chosen.sort().values


def select_classes(data: ImageSet, classes: list[str] | tuple[str, ...], per_class: int | None = None,
                   seed: int = 0) -> ImageSet:  # fmt: skip
    """The images of ``classes`` only, relabelled 0..k-1 in the order given; at most ``per_class`` each.

    Used by the chapter "Transfer learning" to split Fashion-MNIST into a
    source task and a target task with few labels per class.
    """
    unknown = [c for c in classes if c not in data.classes]
    if unknown:
        raise ValueError(f"unknown classes {unknown}; {data.name} has {list(data.classes)}")
    g = torch.Generator().manual_seed(seed)
    keep, labels = [], []
    for new, name in enumerate(classes):
        idx = (data.labels == data.classes.index(name)).nonzero().squeeze(1)
        if per_class is not None:
            if per_class > len(idx):
                raise ValueError(f"per_class={per_class} but class {name!r} has only {len(idx)} images here")
            idx = idx[torch.randperm(len(idx), generator=g)[:per_class]].sort().values
        keep.append(idx)
        labels.append(torch.full((len(idx),), new, dtype=torch.long))
    order = torch.cat(keep)
    return replace(data, images=data.images[order], labels=torch.cat(labels), classes=tuple(classes))


def validation_split(data: ImageSet, size: int, seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """``(rest, validation)``: ``size`` images held out of ``data`` for validation, as equal per class as
    the data allow (:func:`balanced_indices`, chosen by ``seed``), and the other images, in their order.

    For choices tuned on data (``benchmarks/tune_recipes.py``): candidates train on ``rest`` and are
    compared on ``validation``, so the test set is used once, for the final report.
    """
    if not data.train:
        raise ValueError(f"validation images are held out of a training set; {data.describe()} is a test set")
    if not isinstance(size, int) or not 1 <= size < len(data):
        raise ValueError(f"validation size must be an int from 1 to {len(data) - 1:,} (fewer than the "
                         f"{len(data):,} images of {data.name}), got {size!r}")  # fmt: skip
    held = balanced_indices(data.labels, size, len(data.classes), seed)
    keep = torch.ones(len(data), dtype=torch.bool)
    keep[held] = False
    where = f"{data.origin}, " if data.origin else ""
    rest = replace(data, images=data.images[keep], labels=data.labels[keep],
                   origin=f"{where}less {size:,} validation images")
    validation = replace(data, images=data.images[held], labels=data.labels[held],
                         origin=f"{where}validation images held out (seed {seed})")
    return rest, validation


def resize_images(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Bilinear resize of uint8 images (N, C, H, W) to ``size`` x ``size``, kept uint8."""
    out = []
    for part in images.split(chunk):
        resized = F.interpolate(part.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        out.append(resized.round().clamp_(0, 255).to(torch.uint8))
    return torch.cat(out)


def _finish(data: ImageSet, subset: int | None, resize: int | None, seed: int) -> ImageSet:
    if subset is not None:
        idx = balanced_indices(data.labels, subset, len(data.classes), seed)
        data.images, data.labels = data.images[idx], data.labels[idx]
    if resize is not None:
        if not isinstance(resize, int) or resize < 1:
            raise ValueError(f"resize must be a positive int (pixels), got {resize!r}")
        if resize != data.images.shape[-1]:
            data.images = resize_images(data.images, resize)
    return data

"""Offline-first Fashion-MNIST and CIFAR-10, and a loader that lives on the device.

Data sets are read into memory as uint8 tensors (:class:`ImageSet`) by small
readers of the original file formats (IDX for Fashion-MNIST, CIFAR-10's
"python version" pickles), so no network and no torchvision ``Dataset`` is
needed. Where data is looked for, in order:

1. the ``root`` argument, else the ``RESNET_LAB_DATA`` environment variable,
   else ``../data`` (D2L's convention, relative to the working directory, so a
   notebook in ``notebooks/`` shares ``<repo>/data`` with ``d2l``); under it,
   torchvision's own layout (``FashionMNIST/raw/``, ``cifar-10-batches-py/``);
2. for Fashion-MNIST, Debian's ``/usr/share/datasets/fashion-mnist``
   (package ``dataset-fashion-mnist``);
3. a download through torchvision into the root, where the machine is online.

When every place fails, one error names each place looked and how to fix it.

:class:`DeviceLoader` keeps a whole (sub)set on one device and yields batches
as slices of a seeded permutation, with augmentation done on the batch
(after airbench's CIFAR loader). The chapters "Training on Fashion-MNIST" and
"Training on CIFAR-10" use both.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "ImageSet",
    "DataNotFoundError",
    "DataCorruptError",
    "data_root",
    "load_fashion_mnist",
    "load_cifar10",
    "load_dataset",
    "prepare_fashion_mnist",
    "DeviceLoader",
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
# torchvision checks) and the 5,000/1,000 subset used offline (first 1,000
# images of each official batch; see shared/data/README.md).
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
    """A labelled image set held in memory: uint8 images (N, C, H, W), int64 labels."""

    name: str
    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[str, ...]
    source: str
    train: bool
    mean: tuple[float, ...] = field(default=(0.5,))
    std: tuple[float, ...] = field(default=(0.5,))

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
        return f"{self.name} {split}: {len(self):,} images of {c}x{h}x{w} from {self.source}"

    def __repr__(self) -> str:
        return f"ImageSet({self.describe()})"


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The data root: ``root``, else ``$RESNET_LAB_DATA``, else ``../data``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("RESNET_LAB_DATA")
    return Path(env).expanduser() if env else Path("..") / "data"


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
    ``torchvision.datasets.FashionMNIST(root, download=True)`` and
    ``d2l.load_data_fashion_mnist`` (``root = ../data``) both work offline.
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
    candidates = [*_fashion_dirs(base), DEBIAN_FASHION_DIR]
    for directory in candidates:
        img, lab = _find_idx(directory, images_stem), _find_idx(directory, labels_stem)
        looked.append(str(directory))
        if img and lab:
            return _fashion_set(img, lab, train, str(directory), subset, resize, seed)
    download_note = "download disabled"
    if download:
        try:
            directory = _download_fashion(base, train)
            img, lab = _find_idx(directory, images_stem), _find_idx(directory, labels_stem)
            if img and lab:
                return _fashion_set(img, lab, train, f"{directory} (downloaded)", subset, resize, seed)
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


def _fashion_set(img: Path, lab: Path, train: bool, source: str, subset, resize, seed) -> ImageSet:
    images = torch.from_numpy(_read_idx(img).copy()).unsqueeze(1)
    labels = torch.from_numpy(_read_idx(lab).astype(np.int64))
    if len(images) != len(labels):
        raise DataCorruptError(f"{img} holds {len(images)} images but {lab} holds {len(labels)} labels")
    mean, std = _STATS["fashion_mnist"]
    data = ImageSet("Fashion-MNIST", images, labels, FASHION_CLASSES, source, train, mean, std)
    return _finish(data, subset, resize, seed)


# --- CIFAR-10 -----------------------------------------------------------------


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
    sums = {name: _md5(folder / name) for name in files}
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
    """CIFAR-10 (Krizhevsky 2009), 50,000/10,000 32x32 colour images, or the 5k/1k offline subset."""
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
        "setting RESNET_LAB_DATA (or root=) to a folder holding cifar-10-batches-py/ "
        "(offline here: the 5k/1k subset in shared/data/cifar10-subset)."
    )


def _cifar_set(folder: Path, files, train, subset, resize, seed, downloaded: bool) -> ImageSet:
    release = _cifar_release(folder, files)
    parts = [_read_cifar_batch(folder / name) for name in files]
    images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
    labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
    source = f"{folder} ({'official release' if release == 'official' else 'real 5,000/1,000 subset'}"
    source += ", downloaded)" if downloaded else ")"
    mean, std = _STATS["cifar10"]
    data = ImageSet("CIFAR-10", images, labels, CIFAR10_CLASSES, source, train, mean, std)
    return _finish(data, subset, resize, seed)


def load_dataset(name: str, train: bool = True, **kwargs) -> ImageSet:
    """``load_fashion_mnist`` or ``load_cifar10`` by name."""
    loaders = {"fashion_mnist": load_fashion_mnist, "cifar10": load_cifar10}
    key = name.lower().replace("-", "_")
    if key not in loaders:
        raise ValueError(f"unknown data set {name!r}; expected one of {sorted(loaders)}")
    return loaders[key](train=train, **kwargs)


# --- Subsets and resizing ---------------------------------------------------------


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


# --- The loader ----------------------------------------------------------------


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` means CUDA where available, else CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class DeviceLoader:
    """Batches of a whole :class:`ImageSet` kept as tensors on one device.

    Each epoch draws a permutation from a generator seeded by ``(seed,
    epoch)``, so a run resumed at epoch ``e`` sees exactly the batches an
    uninterrupted run would (call :meth:`set_epoch`; iterating also advances
    it). Augmentation works on whole batches: ``"crop_flip"`` pads by 4 pixels
    (zeros) and takes a random 32x32 crop plus a horizontal flip (He et al.
    2015, section 4.2); ``"flip"`` only flips. Batches come out as float,
    normalised with the set's mean and std, or with ``normalize=False`` only
    scaled to [0, 1] (what ``transforms.ToTensor`` gives, as in D2L).
    ``d2l.train_ch6`` and ``d2l.evaluate_accuracy_gpu`` accept it as it is.
    """

    def __init__(
        self,
        data: ImageSet,
        batch_size: int = 128,
        *,
        shuffle: bool | None = None,
        augment: str | None = None,
        normalize: bool = True,
        device: str | torch.device = "auto",
        seed: int = 0,
        drop_last: bool = False,
        channels_last: bool = True,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        if augment not in (None, "flip", "crop_flip"):
            raise ValueError(f"augment must be None, 'flip' or 'crop_flip', got {augment!r}")
        self.data = data
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.shuffle = data.train if shuffle is None else shuffle
        self.augment = augment
        self.drop_last = drop_last
        self.seed = seed
        self.epoch = 0
        # channels_last: measured ~20% faster for ResNet-20 training on 2 CPU
        # cores, and what cuDNN's tensor-core kernels want on a GPU.
        self.channels_last = channels_last
        self.images = data.images.to(self.device)
        self.labels = data.labels.to(self.device)
        shape = (1, -1, 1, 1)
        self._mean = torch.tensor(data.mean, device=self.device).view(shape) * 255 if normalize else None
        self._std = torch.tensor(data.std, device=self.device).view(shape) * 255 if normalize else None

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_images(self) -> int:
        return len(self.labels)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose permutation and augmentation come next."""
        self.epoch = epoch

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        g = self._generator()
        n = len(self.labels)
        order = torch.randperm(n, generator=g) if self.shuffle else torch.arange(n)
        order = order.to(self.device)
        self.epoch += 1
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            x = self.images[idx]
            if self.augment:
                x = self._augment(x, g)
            x = x.float()
            x = (x - self._mean) / self._std if self._mean is not None else x / 255
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[idx]

    def _augment(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        n, _, h, w = x.shape
        if self.augment == "crop_flip":
            pad = 4
            padded = F.pad(x, (pad, pad, pad, pad))
            dy = torch.randint(0, 2 * pad + 1, (n,), generator=g).to(x.device)
            dx = torch.randint(0, 2 * pad + 1, (n,), generator=g).to(x.device)
            rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
            cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
            batch = torch.arange(n, device=x.device)[:, None, None, None]
            chan = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
            x = padded[batch, chan, rows, cols]
        flip = (torch.rand(n, generator=g) < 0.5).to(x.device)[:, None, None, None]
        return torch.where(flip, x.flip(3), x)

    def __repr__(self) -> str:
        return (
            f"DeviceLoader({self.data.describe()}; batch {self.batch_size}, {len(self)} batches, "
            f"augment={self.augment}, device={self.device})"
        )

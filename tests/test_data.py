"""Offline-first data: readers, search order, clear errors, subsets, the device loader."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest
import torch

from resnet_lab import data as D
from resnet_lab import loader as L
from tests.helpers import CIFAR_SUBSET, needs_cifar_subset, needs_fashion, synthetic_set, write_idx


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# --- Fashion-MNIST ---------------------------------------------------------------


def test_reads_torchvision_layout_gz_and_raw(tiny_fashion_root):
    train = D.load_fashion_mnist(True, root=tiny_fashion_root, download=False)
    test = D.load_fashion_mnist(False, root=tiny_fashion_root, download=False)
    assert train.images.shape == (40, 1, 28, 28) and train.images.dtype == torch.uint8
    assert test.labels.tolist() == [i % 10 for i in range(20)]
    assert str(tiny_fashion_root) in train.source


def test_root_comes_from_environment(tiny_fashion_root, monkeypatch):
    monkeypatch.setenv("RESNET_LAB_DATA", str(tiny_fashion_root))
    assert len(D.load_fashion_mnist(False, download=False)) == 20


def test_missing_data_names_every_place_looked(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "DEBIAN_FASHION_DIR", tmp_path / "no-debian")

    def offline(root, train):
        raise OSError("Name or service not known")

    monkeypatch.setattr(D, "_download_fashion", offline)
    root = tmp_path / "empty"
    with pytest.raises(D.DataNotFoundError) as err:
        D.load_fashion_mnist(True, root=root)
    msg = str(err.value)
    for place in (root / "FashionMNIST" / "raw", root / "fashion-mnist", root, tmp_path / "no-debian"):
        assert str(place) in msg
    assert "download failed" in msg and "Name or service not known" in msg
    assert "apt-get install -y dataset-fashion-mnist" in msg and "RESNET_LAB_DATA" in msg


def test_truncated_idx_file_is_a_clear_error_and_left_alone(tiny_fashion_root):
    path = tiny_fashion_root / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    before = _md5(path)
    with pytest.raises(D.DataCorruptError, match=r"truncated or corrupted.*\[20\] = 20 bytes, file holds 15"):
        D.load_fashion_mnist(False, root=tiny_fashion_root, download=False)
    assert _md5(path) == before


def test_corrupted_gzip_is_a_clear_error(tiny_fashion_root):
    path = tiny_fashion_root / "FashionMNIST" / "raw" / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(D.DataCorruptError, match="cannot read"):
        D.load_fashion_mnist(True, root=tiny_fashion_root, download=False)


@needs_fashion
def test_debian_fashion_mnist_full_size(tmp_path):
    train = D.load_fashion_mnist(True, root=tmp_path, download=False)
    test = D.load_fashion_mnist(False, root=tmp_path, download=False)
    assert (len(train), len(test)) == (60_000, 10_000)
    assert train.class_counts() == [6000] * 10
    assert str(D.DEBIAN_FASHION_DIR) == train.source and "Debian's dataset-fashion-mnist" in train.describe()


@needs_fashion
def test_prepare_makes_torchvision_and_d2l_work_offline(tmp_path, monkeypatch):
    import torchvision

    root = tmp_path / "data"
    D.prepare_fashion_mnist(root)
    ds = torchvision.datasets.FashionMNIST(str(root), train=False, download=True)
    assert len(ds) == 10_000
    ours = D.load_fashion_mnist(False, root=root, download=False)
    assert torch.equal(torch.as_tensor(ds.data[:50]), ours.images[:50, 0])
    # d2l reads ../data relative to the working directory (the notebook's folder).
    d2l = pytest.importorskip("d2l.torch")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    monkeypatch.setattr(d2l, "get_dataloader_workers", lambda: 0)
    train_iter, _ = d2l.load_data_fashion_mnist(256)
    x, y = next(iter(train_iter))
    assert x.shape == (256, 1, 28, 28)


def test_subset_larger_than_data_set_is_refused(tiny_fashion_root):
    with pytest.raises(ValueError, match="subset=50 is larger than the data set \\(40 images\\)"):
        D.load_fashion_mnist(True, root=tiny_fashion_root, subset=50, download=False)


def test_subset_is_class_balanced_and_deterministic():
    labels = torch.arange(1000) % 10
    a = D.balanced_indices(labels, 105, 10, seed=3)
    b = D.balanced_indices(labels, 105, 10, seed=3)
    c = D.balanced_indices(labels, 105, 10, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    counts = torch.bincount(labels[a], minlength=10).tolist()
    assert sorted(counts) == [10] * 5 + [11] * 5
    assert len(set(a.tolist())) == 105


def test_subset_balances_as_far_as_a_short_class_allows():
    labels = torch.tensor([0] * 3 + [1] * 50 + [2] * 50)
    idx = D.balanced_indices(labels, 60, 3)
    assert torch.bincount(labels[idx]).tolist() == [3, 29, 28]


def test_resize(tiny_fashion_root):
    data = D.load_fashion_mnist(False, root=tiny_fashion_root, resize=96, download=False)
    assert data.images.shape == (20, 1, 96, 96) and data.images.dtype == torch.uint8


# --- CIFAR-10 --------------------------------------------------------------------


def test_our_official_md5_sums_are_torchvisions():
    import torchvision

    cls = torchvision.datasets.CIFAR10
    assert dict(cls.train_list + cls.test_list) == D._CIFAR_MD5["official"]


@needs_cifar_subset
def test_cifar_subset_reads_with_labels_and_release():
    train = D.load_cifar10(True, root=CIFAR_SUBSET, download=False)
    test = D.load_cifar10(False, root=CIFAR_SUBSET, download=False)
    assert train.images.shape == (5000, 3, 32, 32) and len(test) == 1000
    counts, test_counts = train.class_counts(), test.class_counts()
    # Measured on the files: 469-527 per class (train), 86-112 (test).
    assert min(counts) >= 469 and max(counts) <= 527 and sum(counts) == 5000
    assert min(test_counts) >= 86 and max(test_counts) <= 112
    assert train.origin == "real 5,000/1,000 subset" and "(real 5,000/1,000 subset)" in train.describe()
    assert train.classes[0] == "airplane"


@needs_cifar_subset
def test_cifar_subset_from_environment(monkeypatch):
    monkeypatch.setenv("RESNET_LAB_DATA", str(CIFAR_SUBSET))
    assert len(D.load_cifar10(False, subset=100, download=False)) == 100


@needs_cifar_subset
def test_corrupted_cifar_batch_is_refused_and_untouched(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    shutil.copytree(CIFAR_SUBSET / "cifar-10-batches-py", folder)
    os.chmod(folder, 0o755)
    batch = folder / "test_batch"
    os.chmod(batch, 0o644)
    batch.write_bytes(batch.read_bytes()[:-1000])
    before = _md5(batch)
    with pytest.raises(D.DataCorruptError, match="test_batch \\(md5 .*official 40351d58.*subset 2c93d7bb"):
        D.load_cifar10(False, root=tmp_path, download=False)
    assert _md5(batch) == before


def test_missing_cifar_names_every_place(tmp_path):
    with pytest.raises(D.DataNotFoundError) as err:
        D.load_cifar10(False, root=tmp_path, download=False)
    msg = str(err.value)
    assert str(tmp_path / "cifar-10-batches-py") in msg and "download disabled" in msg
    assert "RESNET_LAB_DATA" in msg and "internet" in msg and "a folder holding cifar-10-batches-py/" in msg
    assert "shared" not in msg  # no path of this machine in a message a reader sees


def test_select_classes_relabels_in_the_order_given_and_caps_per_class():
    data = synthetic_set(80, classes=4)
    picked = D.select_classes(data, ("class 3", "class 1"), per_class=5, seed=1)
    assert picked.classes == ("class 3", "class 1") and len(picked) == 10
    assert picked.labels.tolist() == [0] * 5 + [1] * 5
    # The relabelled images are the original images of those classes (brightness encodes the class).
    assert (picked.images[:5].float().mean() > picked.images[5:].float().mean())
    assert len(D.select_classes(data, ("class 0",))) == 20
    with pytest.raises(ValueError, match="unknown classes \\['shoe'\\]"):
        D.select_classes(data, ("shoe",))
    with pytest.raises(ValueError, match="per_class=21 but class 'class 0' has only 20"):
        D.select_classes(data, ("class 0",), per_class=21)


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="unknown data set 'mnist'"):
        D.load_dataset("mnist")


# --- Loader --------------------------------------------------------------------------


def test_loader_covers_every_image_once_per_epoch():
    data = synthetic_set(100)
    loader = L.DeviceLoader(data, 32, device="cpu", normalize=False)
    assert len(loader) == 4
    labels = torch.cat([y for _, y in loader])
    assert sorted(labels.tolist()) == sorted(data.labels.tolist())
    assert [len(y) for _, y in L.DeviceLoader(data, 32, device="cpu", drop_last=True)] == [32, 32, 32]


def test_loader_is_deterministic_per_seed_and_epoch():
    data = synthetic_set(64, size=32, channels=3)

    def batches(seed, epoch):
        loader = L.DeviceLoader(data, 16, augment="crop_flip", device="cpu", seed=seed)
        loader.set_epoch(epoch)
        return [x for x, _ in loader]

    assert all(torch.equal(a, b) for a, b in zip(batches(0, 2), batches(0, 2)))
    assert not torch.equal(batches(0, 2)[0], batches(0, 3)[0])
    assert not torch.equal(batches(0, 2)[0], batches(1, 2)[0])


def test_crop_flip_is_a_padded_translation_or_its_mirror():
    data = synthetic_set(8, size=32, channels=3)
    loader = L.DeviceLoader(data, 8, augment="crop_flip", device="cpu", normalize=False, shuffle=False)
    x, _ = next(iter(loader))
    padded = torch.nn.functional.pad(data.images.float() / 255, (4, 4, 4, 4))
    for i in range(8):
        options = [
            padded[i, :, dy : dy + 32, dx : dx + 32].flip(-1) if f else padded[i, :, dy : dy + 32, dx : dx + 32]
            for dy in range(9) for dx in range(9) for f in (0, 1)
        ]  # fmt: skip
        assert any(torch.equal(x[i], o) for o in options)


def test_unnormalised_batches_are_scaled_to_unit_range_like_totensor():
    data = synthetic_set(32)
    x, _ = next(iter(L.DeviceLoader(data, 32, device="cpu", normalize=False, shuffle=False)))
    assert torch.equal(x, data.images.float() / 255)


def test_normalisation_uses_the_sets_statistics():
    data = synthetic_set(64)
    x, _ = next(iter(L.DeviceLoader(data, 64, device="cpu")))
    raw = data.images.float()
    expected = (raw - 0.5 * 255) / (0.3 * 255)
    assert torch.allclose(x.sort(0).values, expected.sort(0).values)


def test_loader_rejects_bad_arguments():
    data = synthetic_set(16)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        L.DeviceLoader(data, 0)
    with pytest.raises(ValueError, match="augment must be"):
        L.DeviceLoader(data, 4, augment="rotate")


def test_write_idx_helper_roundtrip(tmp_path):
    import numpy as np

    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "x.gz", arr)
    assert (D._read_idx(tmp_path / "x.gz") == arr).all()

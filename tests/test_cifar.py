"""The CIFAR-10 chapter's library: networks, the paper's recipe, table and verdict."""

from __future__ import annotations

import pytest
import torch

from resnet_lab.cifar import (
    PAPER_RECIPE,
    CifarRun,
    comparison_table,
    comparison_verdict,
    networks,
    train_paper_recipe,
)
from resnet_lab.data import load_cifar10
from resnet_lab.train import EpochRecord, History

from .conftest import CIFAR_SUBSET, needs_cifar_subset, synthetic_set


def _run(name: str, params: int, macs: int, accuracy: float, seconds: float) -> CifarRun:
    h = History(info={"device": "cpu"})
    h.records.append(EpochRecord(1, 40, 0.1, 1.0, 0.5, 1.0, 1 - accuracy, 100.0, seconds))
    return CifarRun(name, params, macs, h, seconds, 5000, 1000)


def _pair(small_accuracy: float, big_accuracy: float) -> list[CifarRun]:
    """ResNet-20 and the CIFAR ResNet-18 with their real sizes, the given accuracies and times 47 s / 480 s."""
    return [
        _run("ResNet-20", 269_722, 40_600_000, small_accuracy, 47),
        _run("CIFAR ResNet-18", 11_173_962, 555_000_000, big_accuracy, 480),
    ]


def test_networks_are_the_papers_and_the_cifar_resnet18():
    nets = networks((20, 56))
    assert list(nets) == ["ResNet-20", "ResNet-56", "CIFAR ResNet-18"]
    counts = {k: sum(p.numel() for p in v.parameters()) for k, v in nets.items()}
    assert counts == {"ResNet-20": 269_722, "ResNet-56": 853_018, "CIFAR ResNet-18": 11_173_962}


def test_recipe_is_the_papers():
    assert PAPER_RECIPE == {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-4, "schedule": "step"}


def test_table_marks_the_papers_figures_as_theirs_and_names_the_data():
    runs = _pair(0.33, 0.27)
    table = comparison_table(runs, "cpu")
    assert "91.25%" in table and "91.73%" in table  # 100 - 8.75 (paper), 100 - 8.27 (reproduction)
    assert "5,000 training / 1,000 test images" in table and "profile cpu" in table
    assert "Table 6" in table and "(theirs)" in table and max(map(len, table.splitlines())) <= 78
    assert table.splitlines()[3].startswith("CIFAR ResNet-18") and table.splitlines()[3].split()[-2:] == ["-", "93.02%"]


def test_verdict_says_when_capacity_did_not_buy_accuracy():
    runs = _pair(0.33, 0.27)
    text = comparison_verdict(runs)
    assert text.startswith("ResNet-20 reached the highest test accuracy, 33.0%")
    assert "41x the parameters" in text and "10.2x as long" in text and "6.0 points below" in text
    assert "did not buy accuracy" in text


def test_verdict_says_when_capacity_paid_off():
    runs = _pair(0.80, 0.90)
    text = comparison_verdict(runs)
    assert text.startswith("CIFAR ResNet-18 reached") and "10.0 points above" in text and "bought accuracy" in text


def test_bad_input_is_refused_with_a_clear_error():
    with pytest.raises(ValueError, match="at least 2 runs"):
        comparison_verdict([_run("ResNet-20", 1, 1, 0.5, 1)])
    with pytest.raises(ValueError, match="no runs"):
        comparison_table([])
    small = synthetic_set(8, size=16, channels=3)
    with pytest.raises(ValueError, match="expected 32x32 CIFAR images.*load_cifar10"):
        train_paper_recipe(small, small, (20,), 1)


@needs_cifar_subset
def test_paper_recipe_trains_every_network_on_real_images():
    root = CIFAR_SUBSET
    train = load_cifar10(True, root=root, subset=128)
    test = load_cifar10(False, root=root, subset=100)
    torch.manual_seed(0)
    runs = train_paper_recipe(train, test, (8,), 1, batch_size=64, device="cpu", progress=False)
    assert [r.name for r in runs] == ["ResNet-8", "CIFAR ResNet-18"]
    assert runs[1].params == 11_173_962 and runs[0].depth == 8 and runs[1].depth is None
    for r in runs:
        assert len(r.history) == 1 and r.train_images == 128 and r.test_images == 100
        assert r.seconds > 0 and r.images_per_s > 0 and 0 <= r.accuracy <= 1
        assert r.history.info["params"] == r.params and r.history.info["lr"] == 0.1

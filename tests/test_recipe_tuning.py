"""Recipes chosen on held-out data: the validation split, the choice rule, and SHORT held to the record that
benchmarks/tune_recipes.py wrote (resnet_lab/tuning_short.json)."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from resnet_lab import recipes
from resnet_lab.data import ImageSet, validation_split
from tests.helpers import CIFAR_SUBSET, REPO, needs_cifar_subset, run_script


def _numbered(n: int = 103, classes: int = 4, train: bool = True) -> ImageSet:
    """Images that carry their own index (pixel 0 = index % 256, pixel 1 = index // 256), uneven classes."""
    images = torch.zeros(n, 1, 2, 2, dtype=torch.uint8)
    images[:, 0, 0, 0] = torch.arange(n) % 256
    images[:, 0, 0, 1] = torch.arange(n) // 256
    labels = torch.tensor([i % classes if i < n - 15 else 0 for i in range(n)])  # class 0 has 15 more
    return ImageSet("numbered", images, labels, tuple(f"c{i}" for i in range(classes)), "made here", train,
                    origin="made in the test")  # fmt: skip


def _index(data: ImageSet) -> list[int]:
    return (data.images[:, 0, 0, 0].long() + 256 * data.images[:, 0, 0, 1].long()).tolist()


def test_validation_split_holds_out_a_class_balanced_disjoint_part():
    data = _numbered()
    rest, val = validation_split(data, 20, seed=1)
    assert len(val) == 20 and len(rest) == len(data) - 20
    assert val.class_counts() == [5, 5, 5, 5]
    assert sorted(_index(rest) + _index(val)) == list(range(len(data)))  # disjoint, and nothing lost
    assert _index(rest) == sorted(_index(rest))  # the rest keeps the source's order
    assert rest.labels.tolist() == [data.labels[i].item() for i in _index(rest)]
    assert val.labels.tolist() == [data.labels[i].item() for i in _index(val)]
    assert rest.train and val.train and "20 validation images" in rest.origin and "seed 1" in val.origin
    again, other = validation_split(data, 20, seed=1)[1], validation_split(data, 20, seed=2)[1]
    assert _index(again) == _index(val) and _index(other) != _index(val)


@pytest.mark.parametrize("size", [0, 103, 200, 2.5])
def test_validation_split_needs_a_size_smaller_than_the_set(size):
    with pytest.raises(ValueError, match=r"from 1 to 102 \(fewer than the 103 images"):
        validation_split(_numbered(), size)


def test_validation_split_refuses_a_test_set():
    with pytest.raises(ValueError, match="is a test set"):
        validation_split(_numbered(train=False), 10)


def test_best_on_validation_takes_the_highest_and_the_first_of_a_tie():
    results = [{"lr": 0.1, "val_accuracy": 0.70}, {"lr": 0.2, "val_accuracy": 0.72},
               {"lr": 0.4, "val_accuracy": 0.72}]  # fmt: skip
    assert recipes.best_on_validation(results)["lr"] == 0.2
    with pytest.raises(ValueError, match="results is empty"):
        recipes.best_on_validation([])
    with pytest.raises(ValueError, match="numeric val_accuracy"):
        recipes.best_on_validation([{"lr": 0.1}])


def test_tuning_record_absent_names_the_command_that_writes_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="benchmarks/tune_recipes.py"):
        recipes.tuning_record(tmp_path / "none.json")


def test_short_uses_the_choice_of_its_validation_grid():
    record = recipes.tuning_record()  # committed with the package: fails if absent
    choice = recipes.best_on_validation(record["results"])
    assert (record["choice"]["lr"], record["choice"]["weight_decay"]) == (choice["lr"], choice["weight_decay"])
    assert (recipes.SHORT.lr, recipes.SHORT.weight_decay) == (choice["lr"], choice["weight_decay"])
    # every candidate of the grid was tried, and everything else was held at SHORT's own settings
    tried = {(r["lr"], r["weight_decay"]) for r in record["results"]}
    assert tried == {(lr, wd) for lr in record["grid"]["lr"] for wd in record["grid"]["weight_decay"]}
    fixed = {k: v for k, v in dataclasses.asdict(recipes.SHORT).items()
             if k not in ("name", "lr", "weight_decay", "source")}  # fmt: skip
    assert record["fixed"] == fixed
    data = record["data"]
    assert data["trained on"] + data["validation images"] == data["training images drawn"]
    assert sum(data["validation per class"]) == data["validation images"]


@needs_cifar_subset
@pytest.mark.slow  # six tiny trainings in a fresh Python
def test_tune_recipes_script_writes_a_record_of_every_candidate(tmp_path, monkeypatch):
    out = tmp_path / "tuning.json"
    monkeypatch.setenv("RESNET_LAB_DATA", str(CIFAR_SUBSET))
    run_script(REPO / "benchmarks" / "tune_recipes.py", "--images", "300", "--val", "100", "--epochs", "1",
               "--lrs", "0.1", "0.4", "--wds", "5e-4", "--out", str(out))  # fmt: skip
    record = json.loads(out.read_text())
    assert [(r["lr"], r["weight_decay"]) for r in record["results"]] == [(0.1, 5e-4), (0.4, 5e-4)]
    best = recipes.best_on_validation(record["results"])
    assert record["choice"] == {k: best[k] for k in ("lr", "weight_decay", "val_accuracy")}
    assert record["data"]["trained on"] == 200 and record["data"]["validation per class"] == [10] * 10
    assert record["network"] == "ResNet-8" and record["epochs"] == 1
    assert "--images 300" in record["command"] and record["command"].startswith("RESNET_LAB_DATA=")

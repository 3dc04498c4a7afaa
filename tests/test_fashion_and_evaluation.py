"""Fashion-MNIST recipes (smoke-sized) and the evaluation helpers."""

from __future__ import annotations

import matplotlib
import pytest
import torch

from resnet_lab import exercises as E
from resnet_lab.evaluation import (
    confident_mistakes,
    confusion_matrix,
    most_confused_with,
    plot_confusion,
    plot_gallery,
    plot_prediction,
)
from resnet_lab.fashion import FirstBatches, run_d2l_recipe, run_our_trainer_same_recipe, train_laptop_recipe
from resnet_lab.profiles import PROFILES
from tests.conftest import needs_fashion, synthetic_set

matplotlib.use("Agg")


def test_confusion_matrix_and_confident_mistakes():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    probs = torch.tensor(
        [[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.6, 0.3, 0.1], [0.0, 0.1, 0.9], [0.05, 0.9, 0.05]]
    )
    cm = confusion_matrix(probs, labels, 3)
    assert cm.tolist() == [[1, 1, 0], [1, 1, 0], [0, 1, 1]]
    assert most_confused_with(cm, 2) == 1
    assert confident_mistakes(probs, labels, k=2).tolist() == [5, 1]  # 0.9 wrong, then 0.7 wrong


def test_plots_draw():
    data = synthetic_set(8, classes=4)
    probs = torch.softmax(torch.randn(8, 4), 1)
    assert plot_confusion(confusion_matrix(probs, data.labels, 4), data.classes) is not None
    assert len(plot_gallery(data, torch.tensor([0, 3]), probs, cols=2).axes) == 2
    assert plot_prediction(data.images[0], probs[0], data.classes, 0) is not None


def test_first_batches():
    batches = FirstBatches(range(100), 7)
    assert len(batches) == 7 and list(batches) == list(range(7))


@needs_fashion
def test_our_trainer_on_the_d2l_recipe_smoke():
    run = run_our_trainer_same_recipe(PROFILES["smoke"], device="cpu")
    assert run.images == 5 * 32 and 0 <= run.test_accuracy <= 1 and run.images_per_s > 0
    assert run.model.arch == "D2L ResNet-18"


@needs_fashion
def test_d2l_recipe_smoke_runs_offline(tmp_path, monkeypatch):
    d2l = pytest.importorskip("d2l.torch")
    monkeypatch.setattr(d2l, "use_svg_display", lambda: None)
    monkeypatch.setattr(d2l, "get_dataloader_workers", lambda: 0)
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    run = run_d2l_recipe(PROFILES["smoke"], device="cpu")
    assert (tmp_path / "data" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").exists()
    assert run.images == 160 and "test acc" in run.log and 0 <= run.test_accuracy <= 1


@needs_fashion
def test_laptop_recipe_smoke():
    model, history, wall, train, test = train_laptop_recipe(PROFILES["smoke"], device="cpu", progress=False)
    assert len(train) == 512 and len(test) == 256 and len(history) == 1 and wall > 0
    assert model.arch.startswith("CIFAR ResNet-14")


def test_fashion_checkers():
    assert E.fashion_steps_per_epoch(469).correct and not E.fashion_steps_per_epoch(468).correct
    classes = ("A", "B", "Shirt")
    cm = torch.tensor([[5, 0, 1], [0, 5, 0], [3, 1, 5]])
    assert E.fashion_most_confused("a", cm, classes).correct
    assert not E.fashion_most_confused("B", cm, classes).correct
    assert "not a class name" in str(E.fashion_most_confused("Dress", cm, classes))
    assert E.fashion_resume("B").correct and not E.fashion_resume("A").correct


def test_cifar_checkers():
    assert E.cifar_epochs_of_paper(163.84).correct and E.cifar_epochs_of_paper(164).correct
    assert not E.cifar_epochs_of_paper(182).correct
    from resnet_lab import models as M
    from resnet_lab.trace import trace

    ratio = trace(M.cifar_resnet18(), (1, 3, 32, 32)).total_macs / trace(M.resnet20(), (1, 3, 32, 32)).total_macs
    assert E.cifar_macs_ratio(ratio).correct and not E.cifar_macs_ratio(ratio * 2).correct
    assert E.cifar_augment("B").correct and not E.cifar_augment("A").correct

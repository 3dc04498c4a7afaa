"""D2L's recipe run by D2L and by us (smoke-sized, offline), and the training loop written out."""

from __future__ import annotations

import matplotlib
import pytest
import torch

from resnet_lab import models as M
from resnet_lab.chapters import fashion as D
from resnet_lab.loader import DeviceLoader
from resnet_lab.loop import plain_epoch, timed_epoch
from tests.helpers import needs_fashion, synthetic_set

matplotlib.use("Agg")


def test_both_pipelines_start_from_the_same_d2l_initialisation():
    a, b = D.same_start(seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert M.count_parameters(a) == 11_178_378
    conv = a.conv1.weight
    bound = (6 / (conv[0].numel() + conv.shape[0] * conv[0, 0].numel())) ** 0.5  # Xavier-uniform's bound
    assert conv.abs().max() <= bound


@pytest.mark.slow  # an epoch of D2L's ResNet-18 at 96x96, twice (D2L's pipeline and ours): ~20 s on 2 cores
@needs_fashion
def test_d2l_and_our_pipeline_train_the_same_images(tmp_path, monkeypatch):
    pytest.importorskip("d2l.torch")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    theirs_net, ours_net = D.same_start()
    theirs = D.run_d2l(theirs_net, 256, 128, 1, device="cpu", plot=False)
    ours = D.run_ours(ours_net, 256, 128, 1, device="cpu")
    assert theirs.images == ours.images == 256 and theirs.test_images == ours.test_images == 128
    assert theirs.seconds > 0 and ours.images_per_s > 0 and 0 <= theirs.test_accuracy <= 1
    assert (tmp_path / "data" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").exists()


def test_plain_epoch_learns():
    torch.manual_seed(0)
    model = M.cifar_resnet(8, in_channels=1, num_classes=4)
    loader = DeviceLoader(synthetic_set(128), 32, device="cpu")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = [plain_epoch(model, loader, optimizer) for _ in range(3)]
    assert losses[-1] < losses[0]


def test_timed_epoch_charges_every_part():
    model = M.cifar_resnet(8, in_channels=1, num_classes=4)
    loader = DeviceLoader(synthetic_set(64), 32, device="cpu")
    parts = timed_epoch(model, loader, torch.optim.SGD(model.parameters(), lr=0.01), loader)
    assert list(parts) == ["data", "forward", "backward", "step", "evaluation"]
    assert all(v > 0 for v in parts.values())

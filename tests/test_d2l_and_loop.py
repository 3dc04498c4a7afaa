"""D2L's recipe run by D2L and by us (smoke-sized, offline), and the training loop written out."""

from __future__ import annotations

import matplotlib
import pytest
import torch

from resnet_lab import models as M
from resnet_lab.chapters import fashion as D
from resnet_lab.loader import DeviceLoader
from resnet_lab.loop import plain_epoch, timed_epoch
from resnet_lab.train import evaluate
from tests.helpers import needs_fashion, synthetic_set

matplotlib.use("Agg")


def test_both_pipelines_start_from_the_same_d2l_initialisation():
    a, b = D.same_start(seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert M.count_parameters(a) == 11_178_378
    conv = a.conv1.weight
    bound = (6 / (conv[0].numel() + conv.shape[0] * conv[0, 0].numel())) ** 0.5  # Xavier-uniform's bound
    assert conv.abs().max() <= bound


@pytest.mark.slow  # D2L's ResNet-18 at 96x96: an epoch by each pipeline, 4 tiny stretches: ~30 s on 2 cores
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
    assert {"train_loss", "val_loss", "val_acc"} <= set(theirs.curves)  # D2L's board, recorded undrawn
    assert theirs.steps == 2  # 256 images, batch 128
    timing = D.time_pipelines(D.initial_network(), steps=1, repeats=2, batch_size=8, device="cpu")
    assert timing.order == ["D2L's pipeline", "ours", "ours", "D2L's pipeline"] and timing.steps == 1
    assert len(timing.ratios) == 2 and all(r > 0 for r in timing.ratios)


def test_d2l_steps_are_marked_as_each_ends_like_ours():
    """D2L's marks come after each update (as ours do), so both pipelines time the same steps."""
    pytest.importorskip("d2l.torch")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    start = net[1].weight.detach().clone()
    batches = [(torch.randn(5, 4), torch.randint(0, 3, (5,))) for _ in range(3)]
    seen: list[bool] = []
    model = D._d2l_classifier(net, lambda: seen.append(not torch.equal(net[1].weight, start)))
    data = type("Data", (), {"train_dataloader": lambda self: batches, "val_dataloader": lambda self: None})()
    D._d2l_trainer(1, torch.device("cpu")).fit(model, data)
    assert seen == [True, True, True]  # one mark per step, the first already after its update


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


class FakeClock:
    """A clock that moves only when told: ``advance(seconds)``."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _stretch(clock: FakeClock, step_seconds: list[float], first: float = 5.0):
    """A stretch of len(step_seconds) + 1 steps: an untimed first step of ``first`` seconds, then the
    given steps, popping one duration list per call (one per repeat)."""
    calls = iter(step_seconds)

    def run(mark) -> None:
        durations = next(calls)
        clock.advance(first)
        mark()
        for d in durations:
            clock.advance(d)
            mark()

    return run


def test_alternating_timing_alternates_and_times_steps_after_the_first():
    clock = FakeClock()
    order = []
    a = _stretch(clock, [[2.0, 2.0], [3.0, 3.0], [2.4, 2.4]])
    b = _stretch(clock, [[1.0, 1.0], [1.5, 1.5], [2.0, 2.0]])
    timing = D.alternating_timing({"A": lambda m: (order.append("A"), a(m)),
                                   "B": lambda m: (order.append("B"), b(m))}, 3, clock=clock)
    assert order == timing.order == ["A", "B", "B", "A", "A", "B"]
    assert timing.seconds["A"] == pytest.approx([2.0, 3.0, 2.4]) and timing.steps == 2
    assert timing.seconds["B"] == pytest.approx([1.0, 1.5, 2.0])
    assert timing.ratios == pytest.approx([2.0, 2.0, 1.2])
    mean, sd, low, high = timing.spread
    assert (mean, low, high) == pytest.approx((5.2 / 3, 1.2, 2.0)) and sd == pytest.approx(0.4618802, rel=1e-6)
    assert timing.wall_seconds == pytest.approx(6 * 5.0 + 2 * (2 + 3 + 2.4 + 1 + 1.5 + 2))
    claim = timing.claim()
    assert claim.status == "shown" and claim.evidence["repeats"] == 3
    assert [row["first"] for row in timing.rows()] == ["A", "B", "A"]


@pytest.mark.parametrize(("a", "b", "status"), [
    ([[2.0], [1.0]], [[1.0], [1.5]], "undecided"),  # ratios 2 and 0.67: signs differ
    ([[1.0], [1.0]], [[2.0], [2.1]], "not shown"),  # the candidate is slower in both
    ([[2.0]], [[1.0]], "undecided"),  # one repeat: no spread
])  # fmt: skip
def test_alternating_timing_claim_statuses(a, b, status):
    clock = FakeClock()
    timing = D.alternating_timing({"A": _stretch(clock, a), "B": _stretch(clock, b)}, len(a), clock=clock)
    assert timing.claim().status == status


def test_alternating_timing_needs_a_timed_step():
    clock = FakeClock()
    with pytest.raises(ValueError, match="needs two or more"):
        D.alternating_timing({"A": lambda mark: mark(), "B": _stretch(clock, [[1.0]])}, 1, clock=clock)
    with pytest.raises(ValueError, match="exactly two"):
        D.alternating_timing({"A": _stretch(clock, [[1.0]])}, 1, clock=clock)


def test_batch_statistics_rescue_a_net_whose_running_statistics_are_off():
    # BN (no affine) -> mean over the image -> nearest of four class centres: classes are brightness
    # levels, so with a batch's own statistics the normalised means sit near the centres; with a
    # running mean far off, every image lands on one class (chance: 25%).
    data = synthetic_set(128)
    bn = torch.nn.BatchNorm2d(1, affine=False)
    head = torch.nn.Linear(1, 4)
    centres = torch.tensor([-1.33, -0.44, 0.44, 1.33])
    with torch.no_grad():
        head.weight.copy_(centres[:, None])
        head.bias.copy_(-centres**2 / 2)
        bn.running_mean.fill_(10.0)
    net = torch.nn.Sequential(bn, torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), head)
    assert D.batch_statistics_accuracy(net, data, batch_size=32, device="cpu") == 1.0
    assert bn.running_mean.item() == 10.0  # scored on a copy
    _, error = evaluate(net, DeviceLoader(data, 32, normalize=False, device="cpu"), "cpu")
    assert error == pytest.approx(0.75)
    verdict = D.batchnorm_claim(1.0, 1 - error, len(data), 20)
    assert verdict.holds is True and verdict.claims[0].evidence["images"] == [128, 128]
    assert D.batchnorm_claim(0.11, 0.10, 1024, 20).claims[0].status == "undecided"
    assert D.batchnorm_claim(0.10, 0.30, 1024, 20).claims[0].status == "not shown"


def test_fashion_plan_counts_the_alternating_timing():
    s = D.SIZES["cpu"]
    d2l_run, ours, *_ = D.plan(s)
    timed = s.pipeline_repeats * (s.pipeline_steps + 1) * s.pipeline_batch
    assert ours.trained == timed == 3 * 3 * 128 and ours.evaluated == 0
    assert d2l_run.trained == 2_560 + timed and d2l_run.evaluated == 3 * 1_024

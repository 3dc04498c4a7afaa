"""The trainer: schedules, learning, history, checkpoints and exact resumption."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from resnet_lab import models as M
from resnet_lab.device import resolve_precision
from resnet_lab.loader import DeviceLoader, for_recipe
from resnet_lab.recipes import PAPER, Recipe
from resnet_lab.train import (
    CheckpointMismatchError,
    History,
    evaluate,
    fit,
    load_model,
    lr_at,
    param_groups,
    save_model,
)
from tests.helpers import run_script, synthetic_set

TINY = Recipe("tiny", lr=0.05, momentum=0.9, weight_decay=1e-4, schedule="step", augment="flip", batch_size=32)


def test_step_schedule_divides_by_ten_at_half_and_three_quarters():
    rates = [lr_at(s, 100, 0.1, "step") for s in range(100)]
    assert rates[0] == rates[49] == 0.1
    assert rates[50] == rates[74] == pytest.approx(0.01)
    assert rates[75] == rates[99] == pytest.approx(0.001)


def test_onecycle_and_cosine_shapes():
    one = [lr_at(s, 100, 0.2, "onecycle") for s in range(100)]
    assert one[0] == pytest.approx(0.2 / 25) and max(one) == pytest.approx(0.2) and one[-1] < 0.01
    assert one.index(max(one)) == 25
    cos = [lr_at(s, 100, 0.1, "cosine", warmup=10) for s in range(100)]
    assert cos[9] == pytest.approx(0.1) and cos[-1] < 1e-3
    with pytest.raises(ValueError, match="schedule must be one of"):
        lr_at(0, 10, 0.1, "exponential")


def test_warmup_ramps_linearly_then_follows_the_schedule():
    rates = [lr_at(s, 100, 0.1, "step", warmup=10) for s in range(100)]
    assert rates[:10] == pytest.approx([0.01 * (s + 1) for s in range(10)])
    assert rates[10] == rates[49] == 0.1 and rates[50] == pytest.approx(0.01)


def test_recipe_rejects_bad_settings_and_copies_with_changes():
    with pytest.raises(ValueError, match="schedule must be one of"):
        Recipe("bad", lr=0.1, schedule="linear")
    with pytest.raises(ValueError, match="invalid setting"):
        Recipe("bad", lr=-1)
    small = PAPER.replace(batch_size=32)
    assert small.batch_size == 32 and small.lr == PAPER.lr and small.name == f"{PAPER.name} (modified)"


def test_linear_scaling_rule_scales_the_learning_rate_with_the_batch():
    quarter = PAPER.with_batch_size(32)
    assert (quarter.batch_size, quarter.lr) == (32, pytest.approx(0.025))
    assert quarter.momentum == PAPER.momentum and quarter.schedule == PAPER.schedule and "batch 32" in quarter.name
    assert PAPER.with_batch_size(256).lr == pytest.approx(0.2)
    assert PAPER.with_batch_size(PAPER.batch_size) is PAPER
    with pytest.raises(ValueError, match="positive integer"):
        PAPER.with_batch_size(0)


def _tiny_run(epochs=2, recipe=TINY, **kwargs):
    torch.manual_seed(0)
    model = M.cifar_resnet(8, in_channels=1, num_classes=4)
    train = for_recipe(recipe, synthetic_set(256), device="cpu")
    test = DeviceLoader(synthetic_set(64, seed=1, train=False), 64, device="cpu")
    return model, fit(model, train, test, recipe=recipe, epochs=epochs, device="cpu", progress=False, **kwargs)


def test_fit_learns_and_records_history():
    model, history = _tiny_run(epochs=3)
    assert len(history) == 3
    assert history.final.test_error < 0.2  # chance is 0.75
    assert history.records[-1].train_loss < history.records[0].train_loss
    assert all(r.images_per_s > 0 and r.seconds > 0 for r in history.records)
    assert history.info.arch == "CIFAR ResNet-8 (option A)" and history.info.train_images == 256
    assert history.info.precision == "fp32" and history.info.recipe == "tiny"
    assert history.final.step == 3 * 8
    assert [round(r.lr, 6) for r in history.records] == [0.05, 0.005, 0.0005]  # the step schedule, per epoch


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_runs_on_the_cpu_learns_and_is_recorded(precision):
    # autocast is device-agnostic, so the GPU's code path runs here; fp16 also exercises the GradScaler.
    _, history = _tiny_run(epochs=3, precision=precision)
    assert history.info.precision == precision
    assert history.records[-1].train_loss < history.records[0].train_loss
    assert history.final.test_error < 0.5


def test_auto_precision_is_bf16_from_ampere_up_and_fp16_below(monkeypatch):
    cuda = torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))  # Colab's T4
    assert resolve_precision("auto", cuda) == "fp16"
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (8, 0))  # A100
    assert resolve_precision("auto", cuda) == "bf16"
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    assert resolve_precision("fp16", torch.device("cpu")) == "fp16"
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("fp8", cuda)


def test_parameter_groups_decay_weights_only_and_scale_the_backbone():
    model = M.cifar_resnet(8, in_channels=1, num_classes=4)
    model.layer1[0].conv1.weight.requires_grad = False
    groups = param_groups(model, Recipe("ft", lr=0.1, weight_decay=5e-4, backbone_lr_scale=0.1))
    by = {(g["weight_decay"] > 0, g["lr_scale"]): sum(p.numel() for p in g["params"]) for g in groups}
    fc_weight, fc_bias = 64 * 4, 4
    convs = sum(p.numel() for n, p in model.named_parameters() if p.ndim > 1 and not n.startswith("fc.")) - 16 * 16 * 9
    assert by[(True, 1.0)] == fc_weight and by[(False, 1.0)] == fc_bias and by[(True, 0.1)] == convs
    assert sum(by.values()) == M.count_parameters(model, trainable_only=True)


def test_frozen_batchnorm_keeps_its_statistics_while_the_head_trains():
    from resnet_lab.chapters.transfer import freeze_backbone

    torch.manual_seed(0)
    model = freeze_backbone(M.cifar_resnet(8, in_channels=1, num_classes=4))
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fc.")}
    fit(model, for_recipe(TINY, synthetic_set(64), device="cpu"), recipe=TINY, epochs=1, device="cpu",
        progress=False)  # fmt: skip
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # running stats included


def test_history_json_roundtrip_and_plot(tmp_path):
    _, history = _tiny_run(epochs=1)
    history.save(tmp_path / "h.json")
    again = History.load(tmp_path / "h.json")
    assert again.to_dict() == history.to_dict()
    import matplotlib

    matplotlib.use("Agg")
    ax = history.plot(label="tiny")
    assert len(ax.get_lines()) == 2


def test_bad_arguments():
    model = M.cifar_resnet(8, in_channels=1, num_classes=4)
    loader = for_recipe(TINY, synthetic_set(64), device="cpu")
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        fit(model, loader, recipe=TINY, epochs=0)
    with pytest.raises(ValueError, match="precision must be"):
        fit(model, loader, recipe=TINY, epochs=1, precision="fp8", progress=False)
    empty = DeviceLoader(synthetic_set(4), 32, augment="flip", device="cpu", drop_last=True)
    with pytest.raises(ValueError, match="yields no batches"):
        fit(model, empty, recipe=TINY, epochs=1)


def test_a_loader_that_contradicts_the_recipe_is_refused():
    model = M.cifar_resnet(8, in_channels=1, num_classes=4)
    data = synthetic_set(64)
    with pytest.raises(ValueError, match=r"batches of 16, but recipe 'tiny' trains with batches of 32.*for_recipe"):
        fit(model, DeviceLoader(data, 16, augment="flip", device="cpu"), recipe=TINY, epochs=1)
    with pytest.raises(ValueError, match=r"augments with None, but recipe 'tiny' names 'flip'.*for_recipe"):
        fit(model, DeviceLoader(data, 32, device="cpu"), recipe=TINY, epochs=1)
    batches = [(torch.zeros(32, 1, 16, 16), torch.zeros(32, dtype=torch.long))]
    with pytest.raises(TypeError, match=r"fit\(\) needs a training loader with batch_size, augment.*got list"):
        fit(model, batches, recipe=TINY, epochs=1)
    loader = for_recipe(TINY, data, device="cpu", seed=3)
    assert (loader.batch_size, loader.augment, loader.seed) == (32, "flip", 3)


def test_checkpoint_from_another_model_is_refused_and_untouched(tmp_path):
    ckpt = tmp_path / "run.pt"
    _tiny_run(epochs=1, checkpoint=ckpt)
    before = hashlib.md5(ckpt.read_bytes()).hexdigest()
    other = M.cifar_resnet(14, in_channels=1, num_classes=4)
    loader = for_recipe(TINY, synthetic_set(64), device="cpu")
    with pytest.raises(CheckpointMismatchError, match="written for CIFAR ResNet-8.*this model is CIFAR ResNet-14"):
        fit(other, loader, recipe=TINY, epochs=2, checkpoint=ckpt, progress=False, device="cpu")
    assert hashlib.md5(ckpt.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]


def test_garbage_checkpoint_is_a_clear_error(tmp_path):
    ckpt = tmp_path / "run.pt"
    ckpt.write_bytes(b"not a checkpoint")
    model = M.cifar_resnet(8, in_channels=1, num_classes=4)
    with pytest.raises(CheckpointMismatchError, match="cannot read checkpoint"):
        fit(model, for_recipe(TINY, synthetic_set(64), device="cpu"), recipe=TINY, epochs=1, checkpoint=ckpt,
            progress=False)  # fmt: skip
    assert ckpt.read_bytes() == b"not a checkpoint"


def test_save_and_load_model(tmp_path):
    model, _ = _tiny_run(epochs=1)
    save_model(model, tmp_path / "m.pt")
    fresh = load_model(M.cifar_resnet(8, in_channels=1, num_classes=4), tmp_path / "m.pt")
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(CheckpointMismatchError, match="build the same architecture"):
        load_model(M.resnet20(), tmp_path / "m.pt")
    with pytest.raises(FileNotFoundError, match="no saved model at .*save_model"):
        load_model(fresh, tmp_path / "missing.pt")


class _Always(torch.nn.Module):
    """Predicts ``cls`` for every image, with a known loss."""

    def __init__(self, cls: int, classes: int = 4):
        super().__init__()
        self.cls, self.classes = cls, classes
        self.dummy = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        logits = torch.zeros(len(x), self.classes)
        logits[:, self.cls] = 1.0
        return logits + 0 * self.dummy


def test_evaluate_counts_errors_and_averages_the_loss():
    data = synthetic_set(40, classes=4)  # labels 0, 1, 2, 3, 0, 1, ... : 10 of each
    loss, error = evaluate(_Always(2), DeviceLoader(data, 16, device="cpu"), device="cpu")
    assert error == pytest.approx(0.75)
    expected = torch.nn.functional.cross_entropy(torch.tensor([[0.0, 0, 1, 0]] * 4), torch.arange(4)).item()
    assert loss == pytest.approx(expected)


# --- Killed mid-epoch, resumed: the same weights and history as no interruption ----------


@pytest.mark.slow  # three fresh Pythons that import torch, one slowed down to be killed mid-epoch
def test_killed_run_resumes_to_identical_weights_and_history(tmp_path):
    script = "resume_fit.py"  # in tests/scripts
    # 8 steps per epoch: kill at step 12, in the middle of epoch 2.
    run_script(script, tmp_path / "a.pt", tmp_path / "a", 11, kill_on="step 12")
    assert (tmp_path / "a.pt").exists() and not (tmp_path / "a.json").exists()
    state = torch.load(tmp_path / "a.pt", weights_only=True)
    assert state["epoch"] == 1  # the kill landed after epoch 1's checkpoint, mid epoch 2
    run_script(script, tmp_path / "a.pt", tmp_path / "a", 10**9)  # resume
    run_script(script, tmp_path / "b.pt", tmp_path / "b", 10**9)  # never interrupted

    wa = torch.load(str(tmp_path / "a") + ".weights", weights_only=True)
    wb = torch.load(str(tmp_path / "b") + ".weights", weights_only=True)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    ha = json.loads((tmp_path / "a.json").read_text())["records"]
    hb = json.loads((tmp_path / "b.json").read_text())["records"]
    timing = {"images_per_s", "seconds"}
    assert [{k: v for k, v in r.items() if k not in timing} for r in ha] == [
        {k: v for k, v in r.items() if k not in timing} for r in hb
    ]
    assert len(ha) == 3
    steps_a = json.loads((tmp_path / "a.json").read_text())["steps"]
    assert (
        steps_a == json.loads((tmp_path / "b.json").read_text())["steps"] and len(steps_a) == 24
    )  # 8 steps/epoch, one point each


def test_checkpoints_keep_and_restore_every_gpus_generator(tmp_path, monkeypatch):
    """On the CPU there is no GPU generator to keep; with (mocked) GPUs their states go into the checkpoint
    and come back on resume, so a GPU run's random draws continue where they stopped."""
    from resnet_lab import train as T

    _tiny_run(epochs=1, checkpoint=tmp_path / "cpu.pt")
    assert torch.load(tmp_path / "cpu.pt", weights_only=True)["cuda_rng"] == []
    states = [torch.arange(4, dtype=torch.uint8), torch.arange(4, 8, dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: states)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.extend)
    model, history = M.cifar_resnet(8, in_channels=1, num_classes=4), History()
    optimizer = T.make_optimizer(model, TINY)
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    T.save_checkpoint(tmp_path / "gpu.pt", model, optimizer, scaler, history, 1)
    assert T.load_checkpoint(tmp_path / "gpu.pt", model, optimizer, scaler, history, "cpu") == 1
    assert [s.tolist() for s in restored] == [s.tolist() for s in states]

"""The trainer: schedules, learning, history, checkpoints and exact resumption."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from resnet_lab import models as M
from resnet_lab.data import DeviceLoader
from resnet_lab.train import CheckpointMismatchError, History, evaluate, fit, load_model, lr_at, save_model
from tests.conftest import REPO, synthetic_set


def test_step_schedule_divides_by_ten_at_half_and_three_quarters():
    rates = [lr_at(s, 100, 0.1, "step") for s in range(100)]
    assert rates[0] == rates[49] == 0.1
    assert rates[50] == rates[74] == pytest.approx(0.01)
    assert rates[75] == rates[99] == pytest.approx(0.001)


def test_onecycle_and_cosine_shapes():
    one = [lr_at(s, 100, 0.2, "onecycle") for s in range(100)]
    assert one[0] == pytest.approx(0.2 / 25) and max(one) == pytest.approx(0.2) and one[-1] < 0.01
    cos = [lr_at(s, 100, 0.1, "cosine", warmup=10) for s in range(100)]
    assert cos[9] == pytest.approx(0.1) and cos[-1] < 1e-3
    with pytest.raises(ValueError, match="schedule must be one of"):
        lr_at(0, 10, 0.1, "exponential")


def _tiny_run(epochs=2, **kwargs):
    torch.manual_seed(0)
    model = M.cifar_resnet(8, in_channels=1, num_classes=4)
    train = DeviceLoader(synthetic_set(256), 32, augment="flip", device="cpu")
    test = DeviceLoader(synthetic_set(64, seed=1, train=False), 64, device="cpu")
    return model, fit(model, train, test, epochs=epochs, lr=0.05, device="cpu", progress=False, **kwargs)


def test_fit_learns_and_records_history():
    model, history = _tiny_run(epochs=3)
    assert len(history) == 3
    assert history.final.test_error < 0.2  # chance is 0.75
    assert history.records[-1].train_loss < history.records[0].train_loss
    assert all(r.images_per_s > 0 and r.seconds > 0 for r in history.records)
    assert history.info["arch"] == "CIFAR ResNet-8 (option A)" and history.info["train_images"] == 256
    assert history.final.step == 3 * 8


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
    loader = DeviceLoader(synthetic_set(32), 8, device="cpu")
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        fit(model, loader, epochs=0)
    with pytest.raises(ValueError, match="precision must be"):
        fit(model, loader, epochs=1, precision="fp8", progress=False)
    empty = DeviceLoader(synthetic_set(4), 8, device="cpu", drop_last=True)
    with pytest.raises(ValueError, match="yields no batches"):
        fit(model, empty, epochs=1)


def test_checkpoint_from_another_model_is_refused_and_untouched(tmp_path):
    ckpt = tmp_path / "run.pt"
    _tiny_run(epochs=1, checkpoint=ckpt)
    before = hashlib.md5(ckpt.read_bytes()).hexdigest()
    other = M.cifar_resnet(14, in_channels=1, num_classes=4)
    loader = DeviceLoader(synthetic_set(32), 8, device="cpu")
    with pytest.raises(CheckpointMismatchError, match="written for CIFAR ResNet-8.*this model is CIFAR ResNet-14"):
        fit(other, loader, epochs=2, checkpoint=ckpt, progress=False, device="cpu")
    assert hashlib.md5(ckpt.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]


def test_garbage_checkpoint_is_a_clear_error(tmp_path):
    ckpt = tmp_path / "run.pt"
    ckpt.write_bytes(b"not a checkpoint")
    model = M.cifar_resnet(8, in_channels=1, num_classes=4)
    with pytest.raises(CheckpointMismatchError, match="cannot read checkpoint"):
        fit(model, DeviceLoader(synthetic_set(32), 8, device="cpu"), epochs=1, checkpoint=ckpt, progress=False)
    assert ckpt.read_bytes() == b"not a checkpoint"


def test_save_and_load_model(tmp_path):
    model, _ = _tiny_run(epochs=1)
    save_model(model, tmp_path / "m.pt")
    fresh = load_model(M.cifar_resnet(8, in_channels=1, num_classes=4), tmp_path / "m.pt")
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(CheckpointMismatchError, match="build the same architecture"):
        load_model(M.resnet20(), tmp_path / "m.pt")


def test_evaluate_counts_errors():
    model = M.cifar_resnet(8, in_channels=1, num_classes=4)
    loss, error = evaluate(model, DeviceLoader(synthetic_set(40), 16, device="cpu"), device="cpu")
    assert 0 <= error <= 1 and loss > 0


# --- Killed mid-epoch, resumed: the same weights and history as no interruption ----------

TRAIN_SCRIPT = textwrap.dedent(
    """
    import json, sys, time, torch
    from resnet_lab import models as M
    from resnet_lab.data import DeviceLoader
    from tests.conftest import synthetic_set
    from resnet_lab.train import fit
    torch.set_num_threads(1)
    ckpt, out, slow_after = sys.argv[1], sys.argv[2], int(sys.argv[3])
    torch.manual_seed(0)
    model = M.cifar_resnet(8, in_channels=1, num_classes=4)
    train = DeviceLoader(synthetic_set(256), 32, augment="flip", device="cpu", seed=7)
    test = DeviceLoader(synthetic_set(64, seed=1, train=False), 64, device="cpu")

    def on_step(step):
        print("step", step, flush=True)
        if step >= slow_after:
            time.sleep(0.5)  # give the parent time to kill us mid-epoch

    h = fit(model, train, test, epochs=3, lr=0.05, device="cpu", progress=False, checkpoint=ckpt, on_step=on_step)
    torch.save(model.state_dict(), out + ".weights")
    json.dump(h.to_dict(), open(out + ".json", "w"))
    """
)


def _run(script: Path, ckpt: Path, out: Path, slow_after: int = 10**9, kill_at: int | None = None) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, str(script), str(ckpt), str(out), str(slow_after)],
        stdout=subprocess.PIPE, text=True, cwd=REPO, env=env,
    )  # fmt: skip
    for line in proc.stdout:
        if kill_at is not None and line.strip() == f"step {kill_at}":
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=300)
    if kill_at is None:
        assert proc.returncode == 0


def test_killed_run_resumes_to_identical_weights_and_history(tmp_path):
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    # 8 steps per epoch: kill at step 12, in the middle of epoch 2.
    _run(script, tmp_path / "a.pt", tmp_path / "a", slow_after=11, kill_at=12)
    assert (tmp_path / "a.pt").exists() and not (tmp_path / "a.json").exists()
    state = torch.load(tmp_path / "a.pt", weights_only=True)
    assert state["epoch"] == 1  # the kill landed after epoch 1's checkpoint, mid epoch 2
    _run(script, tmp_path / "a.pt", tmp_path / "a")  # resume
    _run(script, tmp_path / "b.pt", tmp_path / "b")  # never interrupted

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

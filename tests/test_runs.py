"""The one runner: run folders, fingerprints, the probe and plan line, resuming and loading."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from resnet_lab import models as M
from resnet_lab import runs as R
from resnet_lab.loader import DeviceLoader
from resnet_lab.recipes import Recipe
from tests.helpers import run_script, synthetic_set

TINY = Recipe("tiny", lr=0.05, weight_decay=1e-4, batch_size=32, augment="flip")


def test_run_folder_from_argument_environment_colab_drive_or_here(monkeypatch, tmp_path):
    monkeypatch.delenv("RESNET_LAB_RUNS", raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    assert R.run_folder() == Path("runs")
    assert R.run_folder(tmp_path / "x") == tmp_path / "x"
    monkeypatch.setenv("RESNET_LAB_RUNS", str(tmp_path / "env"))
    assert R.run_folder() == tmp_path / "env"
    monkeypatch.delenv("RESNET_LAB_RUNS")
    monkeypatch.setitem(sys.modules, "google.colab", object())
    drive = tmp_path / "drive" / "MyDrive"
    monkeypatch.setattr(R, "COLAB_DRIVE", drive)
    assert R.run_folder() == Path("runs")  # Colab without Drive mounted
    assert "Google Drive is not mounted" in R.drive_advice(Path("runs"))
    drive.mkdir(parents=True)
    assert R.run_folder() == drive / "resnet-lab-runs"
    assert R.drive_advice(drive / "resnet-lab-runs") == ""


def test_fingerprint_changes_with_network_data_recipe_epochs_and_profile():
    net, data, test = M.cifar_resnet(8, in_channels=1, num_classes=4), synthetic_set(64), synthetic_set(32)
    base = R.run_fingerprint("a", net, data, test, TINY, 2, 0, "cpu")
    assert base == R.run_fingerprint("a", M.cifar_resnet(8, in_channels=1, num_classes=4), data, test, TINY, 2, 0,
                                     "cpu")  # fmt: skip
    others = [
        R.run_fingerprint("a", M.cifar_resnet(14, in_channels=1, num_classes=4), data, test, TINY, 2, 0, "cpu"),
        R.run_fingerprint("a", net, synthetic_set(80), test, TINY, 2, 0, "cpu"),
        R.run_fingerprint("a", net, data, test, TINY.replace(lr=0.1), 2, 0, "cpu"),
        R.run_fingerprint("a", net, data, test, TINY, 3, 0, "cpu"),
        R.run_fingerprint("a", net, data, test, TINY, 2, 0, "gpu"),
    ]
    assert base not in others and len(set(others)) == len(others)


def test_probe_measures_training_and_test_speed_and_plans_from_them():
    loader = DeviceLoader(synthetic_set(64), 32, device="cpu")
    model = M.cifar_resnet(8, in_channels=1, num_classes=4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    p = R.probe(model, loader, TINY, steps=3, device="cpu")
    assert p.train_ips > 0 and p.test_ips > p.train_ips  # a forward pass is cheaper than a training step
    assert p.seconds(640, 320, 2) == pytest.approx(2 * (640 / p.train_ips + 320 / p.test_ips))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())  # the probe used a copy


def test_probe_and_training_share_one_train_step(monkeypatch):
    from resnet_lab import train as T

    calls = []
    real = T.train_step

    def counting(*args, **kwargs):
        calls.append(kwargs["label_smoothing"])
        return real(*args, **kwargs)

    monkeypatch.setattr(T, "train_step", counting)
    monkeypatch.setattr(R, "train_step", counting)
    smooth = TINY.replace(label_smoothing=0.1)
    R.probe(M.cifar_resnet(8, in_channels=1, num_classes=4), DeviceLoader(synthetic_set(64), 32, device="cpu"),
            smooth, steps=2, device="cpu")  # fmt: skip
    assert calls == [0.1] * 4  # 2 unmeasured + 2 timed steps, with the recipe's label smoothing
    R.train_all(smooth, {"a": M.cifar_resnet(8, in_channels=1, num_classes=4)}, synthetic_set(64), None, 1,
                device="cpu", runs=False, probe_steps=0, say=lambda line: None)  # fmt: skip
    assert calls == [0.1] * 6  # and the epoch loop's 2 steps


def test_train_all_keys_runs_by_data_and_takes_the_profile(tmp_path):
    from resnet_lab.history import RunKey
    from resnet_lab.profiles import PROFILES

    key = RunKey("plain", 8)
    lines = []
    capped = PROFILES["cpu"].capped(64, 1)
    hs = R.train_all(TINY, {key: M.cifar_resnet(8, plain=True, in_channels=1, num_classes=4)}, synthetic_set(64),
                     None, 1, device="cpu", runs=tmp_path, profile=capped, say=lines.append)  # fmt: skip
    assert list(hs) == [key] and hs[key].info.key == key and hs[key].info.profile == capped.key
    assert "(from a 1-step probe)" in lines[0] and lines[1].startswith("plain-8: trained in")
    assert [p.name.split("-")[:2] for p in tmp_path.glob("*.pt")] == [["plain", "8"]]


def test_plan_line_says_what_how_long_where():
    line = R.plan_line(4, 0, 20, 660, "Tesla T4", 10, Path("/content/drive/MyDrive/resnet-lab-runs"))
    assert line == ("4 networks, 20 epochs each, about 11 min on Tesla T4 (from a 10-step probe), checkpoints in "
                    "/content/drive/MyDrive/resnet-lab-runs.")  # fmt: skip
    assert "2 finished earlier, loaded instead of trained" in R.plan_line(1, 2, 5, 40, "cpu", 10, None)
    assert R.plan_line(1, 0, 5, 40, "cpu", 10, None).endswith("about 40 s on cpu (from a 10-step probe), no "
                                                              "checkpoints.")  # fmt: skip


def test_train_all_trains_every_network_on_the_same_batches(tmp_path):
    torch.manual_seed(0)
    nets = {"a": M.cifar_resnet(8, in_channels=1, num_classes=4), "b": M.cifar_resnet(8, in_channels=1,
                                                                                        num_classes=4)}
    nets["b"].load_state_dict(nets["a"].state_dict())
    lines = []
    hs = R.train_all(TINY, nets, synthetic_set(64), synthetic_set(32, seed=1, train=False), 2, device="cpu",
                     runs=tmp_path, profile="test", probe_steps=2, say=lines.append)  # fmt: skip
    assert list(hs) == ["a", "b"] and lines[0].startswith("2 networks, 2 epochs each, about")
    # Same start, same batches, same recipe: identical runs.
    assert [r.train_loss for r in hs["a"].records] == [r.train_loss for r in hs["b"].records]
    assert hs["a"].info.status == "trained" and hs["a"].info.profile == "test"
    assert hs["a"].info.planned_seconds > 0 and hs["a"].info.wall_seconds > 0
    assert len(list(tmp_path.glob("a-*.pt"))) == 1 and len(list(tmp_path.glob("b-*.pt"))) == 1


def test_train_all_refuses_bad_input():
    with pytest.raises(ValueError, match="nets is empty"):
        R.train_all(TINY, {}, synthetic_set(32), None, 1)
    d2l_like = Recipe("big", lr=0.01, resize=96)
    with pytest.raises(ValueError, match="trains at 96x96, but the data is \\(1, 16, 16\\); load it with resize=96"):
        R.train_all(d2l_like, {"a": M.cifar_resnet(8, in_channels=1)}, synthetic_set(32), None, 1)




def _slow_probe(monkeypatch, train_ips: float, test_ips: float = 1e9):
    """Replace the probe by one that measures ``train_ips`` images per second (a slower or faster device
    than planned), so that the budget decision is deterministic."""
    monkeypatch.setattr(R, "probe", lambda *args, **kwargs: R.Probe(train_ips, test_ips))


def test_a_probe_slower_than_the_budget_shortens_the_schedule_and_says_so(monkeypatch, tmp_path):
    monkeypatch.delenv("RESNET_LAB_FULL_SCHEDULE", raising=False)
    _slow_probe(monkeypatch, train_ips=64 / 10)  # 64 images per epoch: 10 s an epoch on this "device"
    lines = []
    hs = R.train_all(TINY, {"a": M.cifar_resnet(8, in_channels=1, num_classes=4)}, synthetic_set(64), None, 4,
                     device="cpu", runs=tmp_path, budget_s=25, say=lines.append)  # fmt: skip
    info = hs["a"].info
    assert lines[0].startswith("Over budget: 1 network x 4 epochs would take about 40 s")
    assert "Shortened to 2 of 4 epochs" in lines[0] and "RESNET_LAB_FULL_SCHEDULE=1" in lines[0]
    assert lines[1].startswith("1 network, 2 epochs each, about 20 s")
    assert (info.epochs, info.requested_epochs, info.budget_seconds, len(hs["a"])) == (2, 4, 25, 2)
    assert info.shortened and info.schedule_note() == ("trained 2 of the 4 planned epochs (shortened to the time "
                                                       "budget)")  # fmt: skip
    assert "(2 of 4 epochs)" in lines[2]
    # The schedule is spread over the 2 epochs: the step schedule ends at a hundredth of the rate.
    assert hs["a"].final.lr == pytest.approx(TINY.lr / 100)


def test_a_resumed_run_keeps_the_schedule_chosen_when_it_started(monkeypatch, tmp_path):
    monkeypatch.delenv("RESNET_LAB_FULL_SCHEDULE", raising=False)
    net = M.cifar_resnet(8, in_channels=1, num_classes=4)
    _slow_probe(monkeypatch, train_ips=64 / 10)
    R.train_all(TINY, {"a": net}, synthetic_set(64), None, 4, device="cpu", runs=tmp_path, budget_s=25,
                say=lambda line: None)  # fmt: skip
    _slow_probe(monkeypatch, train_ips=64 / 0.1)  # the next session's probe says the full schedule would fit
    lines = []
    hs = R.train_all(TINY, {"a": M.cifar_resnet(8, in_channels=1, num_classes=4)}, synthetic_set(64), None, 4,
                     device="cpu", runs=tmp_path, budget_s=25, say=lines.append)  # fmt: skip
    assert lines[0] == "Resuming the schedule chosen earlier to keep the time budget: 2 of 4 epochs."
    assert hs["a"].info.status == "loaded" and (hs["a"].info.epochs, hs["a"].info.requested_epochs) == (2, 4)
    assert len(list(tmp_path.glob("a-*.pt"))) == 1


@pytest.mark.parametrize("how", ["environment", "argument"])
def test_the_full_schedule_setting_keeps_every_epoch(monkeypatch, how):
    _slow_probe(monkeypatch, train_ips=64 / 10)
    monkeypatch.setenv("RESNET_LAB_FULL_SCHEDULE", "1" if how == "environment" else "0")
    lines = []
    hs = R.train_all(TINY, {"a": M.cifar_resnet(8, in_channels=1, num_classes=4)}, synthetic_set(64), None, 3,
                     device="cpu", runs=False, budget_s=15, full_schedule=True if how == "argument" else None,
                     say=lines.append)  # fmt: skip
    assert lines[0].startswith("1 network, 3 epochs each, about 30 s") and not any("Over budget" in x for x in lines)
    assert (hs["a"].info.epochs, hs["a"].info.requested_epochs, len(hs["a"])) == (3, 3, 3)
    assert not hs["a"].info.shortened and hs["a"].info.schedule_note() == ""


def test_a_chapter_call_gets_its_share_of_the_profiles_budget(monkeypatch):
    """Under a profile with a budget, a call whose runs are in a chapter's plan is kept to its share."""
    from resnet_lab.history import RunKey
    from resnet_lab.profiles import PROFILES, Profile, call_budget

    profile = Profile("gpu", "test", probe_steps=1, budget_minutes=15)
    s = PROFILES["gpu"].sizes("cifar")
    runs = [(str(RunKey("ResNet", d)), 50_000 * s.epochs) for d in s.depths]
    budget = call_budget(profile, runs)
    assert budget.chapter == "cifar" and budget.seconds == pytest.approx(15 * 60 * budget.share)
    assert call_budget(profile, runs[:1]).seconds < budget.seconds  # one of the two networks: a smaller share
    assert call_budget(profile, [("my own net", 1_000)]) is None  # not in any plan: no budget
    assert call_budget(PROFILES["smoke"], runs) is None and call_budget(profile.capped(64, 1), runs) is None


@pytest.mark.slow  # three fresh Pythons that import torch, one slowed down to be killed mid-run
def test_rerun_after_a_disconnect_loads_finished_networks_and_resumes_the_rest(tmp_path):
    script = "resume_train_all.py"  # in tests/scripts
    # Killed during the second network's second epoch: the first is finished, the second has one epoch.
    run_script(script, tmp_path / "runs", tmp_path / "a", "slow", kill_on="second net epoch", times=2)
    assert not (tmp_path / "a.json").exists()
    run_script(script, tmp_path / "runs", tmp_path / "a", "fast")  # the same cell, run again
    run_script(script, tmp_path / "fresh", tmp_path / "b", "fast")  # never interrupted
    a, b = json.loads((tmp_path / "a.json").read_text()), json.loads((tmp_path / "b.json").read_text())
    assert a["first"]["status"] == "loaded" and a["second"]["status"] == "resumed from epoch 1"
    timing = {"images_per_s", "seconds"}
    for name in ("first", "second"):
        strip = [[{k: v for k, v in r.items() if k not in timing} for r in x[name]["records"]] for x in (a, b)]
        assert strip[0] == strip[1] and len(strip[0]) == 3
    wa = torch.load(str(tmp_path / "a") + ".weights", weights_only=True)
    wb = torch.load(str(tmp_path / "b") + ".weights", weights_only=True)
    for name in wa:
        for key in wa[name]:
            assert torch.equal(wa[name][key], wb[name][key]), (name, key)

"""Run profiles and d2l interop."""

from __future__ import annotations

import pytest
import torch

from resnet_lab import models as M
from resnet_lab.data import DeviceLoader
from resnet_lab.profiles import PROFILES, banner, get_profile
from tests.conftest import synthetic_set


def test_profile_from_argument_environment_and_machine(monkeypatch):
    monkeypatch.setenv("RESNET_LAB_PROFILE", "smoke")
    assert get_profile().name == "smoke"
    assert get_profile("gpu").name == "gpu"
    monkeypatch.delenv("RESNET_LAB_PROFILE")
    assert get_profile().name == ("gpu" if torch.cuda.is_available() else "cpu")


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("RESNET_LAB_PROFILE", "laptop")
    with pytest.raises(ValueError, match="unknown profile 'laptop' \\(from RESNET_LAB_PROFILE\\).*smoke, cpu, gpu"):
        get_profile()


def _size(n, full):
    return full if n is None else n


def test_profiles_grow_from_smoke_to_gpu():
    smoke, cpu, gpu = PROFILES["smoke"], PROFILES["cpu"], PROFILES["gpu"]
    for field, full in (("fashion_train", 60_000), ("degradation_train", 50_000), ("cifar_train", 50_000)):
        assert _size(getattr(smoke, field), full) < _size(getattr(cpu, field), full) <= _size(getattr(gpu, field), full)
    assert smoke.fashion_epochs <= cpu.fashion_epochs <= gpu.fashion_epochs
    assert gpu.degradation_depths == (20, 32, 44, 56)  # the paper's Fig. 6
    for p in PROFILES.values():
        for depth in (*p.degradation_depths, *p.cifar_depths):
            M.cifar_resnet(depth)  # every depth is a valid 6n + 2


def test_banner_names_profile_device_and_versions():
    import resnet_lab

    line = banner(PROFILES["smoke"])
    assert "profile: smoke" in line and f"resnet_lab {resnet_lab.__version__}" in line
    assert f"torch {torch.__version__}" in line and "device:" in line


def test_d2l_train_ch6_trains_our_model_on_our_loader(monkeypatch, capsys):
    d2l = pytest.importorskip("d2l.torch")
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.setattr(d2l, "use_svg_display", lambda: None)
    model = M.cifar_resnet(8, in_channels=1, num_classes=4)
    train = DeviceLoader(synthetic_set(160), 32, device="cpu")
    test = DeviceLoader(synthetic_set(64, seed=1, train=False), 64, device="cpu")
    d2l.train_ch6(model, train, test, 2, 0.1, torch.device("cpu"))
    out = capsys.readouterr().out
    test_acc = float(out.split("test acc ")[1].split()[0])
    assert test_acc > 0.5  # chance is 0.25

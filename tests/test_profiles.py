"""Run profiles: selection, the cap, the banner, and the planned minutes over each chapter's plan."""

from __future__ import annotations

import pytest
import torch

from resnet_lab import models as M
from resnet_lab.chapters import cifar
from resnet_lab.profiles import (
    CHAPTERS,
    CPU_MACS_PER_S,
    GPU_MARGIN,
    PROFILES,
    T4_MACS_PER_S,
    banner,
    chapter_plan,
    get_profile,
    left_out,
    planned_minutes,
    planned_work,
)
from resnet_lab.sizes import PlannedRun


def test_profile_from_argument_environment_and_machine(monkeypatch):
    monkeypatch.delenv("RESNET_LAB_CAP", raising=False)
    monkeypatch.setenv("RESNET_LAB_PROFILE", "smoke")
    assert get_profile().name == "smoke"
    assert get_profile("paper").name == "paper"
    monkeypatch.delenv("RESNET_LAB_PROFILE")
    assert get_profile().name == ("gpu" if torch.cuda.is_available() else "cpu")


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("RESNET_LAB_PROFILE", "laptop")
    expected = r"unknown profile 'laptop' \(from RESNET_LAB_PROFILE\).*smoke, cpu, gpu, paper"
    with pytest.raises(ValueError, match=expected):
        get_profile()


def test_profiles_grow_from_smoke_to_paper():
    def n(size, full):
        return full if size is None else size

    smoke, cpu, gpu, paper = (PROFILES[k].sizes("cifar") for k in ("smoke", "cpu", "gpu", "paper"))
    assert n(smoke.train, 50_000) < n(cpu.train, 50_000) <= n(gpu.train, 50_000)
    assert smoke.epochs < cpu.epochs <= gpu.epochs < paper.epochs == 164
    assert paper.depths == (20, 32, 44, 56, 110) and paper.recipe == "paper"  # Table 6
    degradation = {k: PROFILES[k].sizes("degradation") for k in ("gpu", "paper")}
    assert degradation["paper"].depths == (20, 32, 44, 56) and degradation["paper"].dataset == "cifar10"  # Fig. 6
    assert degradation["gpu"].dataset == "cifar10" and degradation["gpu"].train is None  # full CIFAR-10
    assert cpu.train == 5_000 and cpu.test == 1_000  # the offline subset's size, online too


def test_the_cap_shrinks_sizes_by_role_but_keeps_networks(monkeypatch):
    monkeypatch.setenv("RESNET_LAB_CAP", "64,1")
    capped, full = get_profile("paper"), PROFILES["paper"]
    s = capped.sizes("cifar")
    assert s.train == 64 and s.epochs == 1 and capped.sizes("degradation").test == 64
    assert s.depths == full.sizes("cifar").depths and s.resnet18
    beyond = capped.sizes("beyond")
    assert beyond.landscape_points == 3 and beyond.depth == 110 and beyond.zero_init_epochs == 1
    assert capped.sizes("residual").identity_steps == 1  # a steps field is capped too
    assert capped.probe_steps == 1 and capped.cap == (64, 1) and "[capped at 64 images, 1 epochs]" in capped.description
    assert capped.key != full.key and full.key == "paper"


@pytest.mark.parametrize("value", ["64", "64,0", "a,b", "64,1,2"])
def test_a_malformed_cap_is_a_clear_error(monkeypatch, value):
    monkeypatch.setenv("RESNET_LAB_CAP", value)
    with pytest.raises(ValueError, match=f"RESNET_LAB_CAP must be 'images,epochs'.*got '{value}'"):
        get_profile("cpu")


def test_banner_names_profile_device_and_versions():
    import resnet_lab

    line = banner(PROFILES["smoke"])
    assert "profile: smoke" in line and f"resnet_lab {resnet_lab.__version__}" in line
    assert f"torch {torch.__version__}" in line and "device: cpu (" in line


def test_planned_work_is_macs_times_images_times_three_plus_evaluation():
    run = PlannedRun("r20", M.resnet20(), (3, 32, 32), trained=1_000, evaluated=500)
    assert planned_work(run) == 40_551_040 * (3 * 1_000 + 500)  # MACs of ResNet-20 from the tracer


def test_throughput_assumption_is_nvidias_t4_figure():
    # 1,198 images/s of ResNet-50 v1.5 (4.089 G MACs) in mixed precision on a T4 (NVIDIA's README).
    assert T4_MACS_PER_S == pytest.approx(4.9e12, rel=0.01)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_gpu_chapters_fit_a_free_colab_session(chapter):
    minutes = planned_minutes(PROFILES["gpu"], chapter, T4_MACS_PER_S)
    assert minutes * GPU_MARGIN <= 15, f"{chapter}: {minutes:.1f} planned min x margin {GPU_MARGIN} > 15"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_cpu_chapters_fit_twelve_minutes_on_two_cores(chapter):
    minutes = planned_minutes(PROFILES["cpu"], chapter, CPU_MACS_PER_S)
    assert minutes <= 12, f"{chapter}: {minutes:.1f} planned min on 2 cores > 12"


def test_paper_profile_is_planned_as_hours():
    assert planned_minutes(PROFILES["paper"], "cifar", T4_MACS_PER_S) > 60


def test_unknown_chapter_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown chapter 'appendix'; expected one of tracing, degradation"):
        chapter_plan(PROFILES["cpu"], "appendix")


def test_left_out_note_plans_at_the_profiles_own_rate():
    [(key, net)] = cifar.left_out_networks(PROFILES["cpu"].sizes("cifar")).items()
    run = PlannedRun(str(key), net, (3, 32, 32), 5_000 * 25, 1_000 * 25)
    for name, rate, where in (("cpu", CPU_MACS_PER_S, "2 CPU cores"),
                              ("gpu", T4_MACS_PER_S / GPU_MARGIN, "a T4, with the margin")):  # fmt: skip
        note = " ".join(left_out(run, PROFILES[name]).split())
        minutes = planned_work(run) / rate / 60
        assert f"The CIFAR ResNet-18 is not in the {name} profile: training it on 125,000 images" in note
        assert f"about {minutes:.0f} planned minutes on {where}" in note

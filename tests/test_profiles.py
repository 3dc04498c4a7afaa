"""Run profiles: sizes per chapter, the test-only cap, the banner, and the planned minutes."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from resnet_lab import models as M
from resnet_lab.profiles import (
    CHAPTERS,
    CPU_MACS_PER_S,
    GPU_MARGIN,
    PROFILES,
    T4_MACS_PER_S,
    PlannedRun,
    banner,
    chapter_plan,
    get_profile,
    left_out,
    planned_minutes,
    planned_work,
)


def test_profile_from_argument_environment_and_machine(monkeypatch):
    monkeypatch.delenv("RESNET_LAB_TEST_CAP", raising=False)
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


def test_every_profile_has_sizes_for_every_chapter_and_nothing_else():
    for p in PROFILES.values():
        groups = [f.name for f in dataclasses.fields(p) if dataclasses.is_dataclass(getattr(p, f.name))]
        assert groups == list(CHAPTERS)
        for depth in (*p.degradation.depths, *p.cifar.depths, p.beyond.depth):
            M.cifar_resnet(depth)  # every depth is a valid 6n + 2


def test_profiles_grow_from_smoke_to_paper():
    def n(size, full):
        return full if size is None else size

    smoke, cpu, gpu, paper = (PROFILES[k] for k in ("smoke", "cpu", "gpu", "paper"))
    assert n(smoke.cifar.train, 50_000) < n(cpu.cifar.train, 50_000) <= n(gpu.cifar.train, 50_000)
    assert smoke.cifar.epochs < cpu.cifar.epochs <= gpu.cifar.epochs < paper.cifar.epochs == 164
    assert paper.cifar.depths == (20, 32, 44, 56, 110) and paper.cifar.recipe == "paper"  # Table 6
    assert paper.degradation.depths == (20, 32, 44, 56) and paper.degradation.dataset == "cifar10"  # Fig. 6
    assert gpu.degradation.dataset == "cifar10" and gpu.degradation.train is None  # full CIFAR-10
    assert cpu.cifar.train == 5_000 and cpu.cifar.test == 1_000  # capped online too (issue: 1.8 h otherwise)


def test_the_cap_shrinks_sizes_and_epochs_but_keeps_networks(monkeypatch):
    monkeypatch.setenv("RESNET_LAB_TEST_CAP", "64,1")
    capped = get_profile("paper")
    assert capped.cifar.train == 64 and capped.cifar.epochs == 1 and capped.degradation.test == 64
    assert capped.cifar.depths == PROFILES["paper"].cifar.depths and capped.cifar.resnet18
    assert capped.beyond.landscape_points == 3 and capped.beyond.depth == 110
    assert "[capped for tests]" in capped.description


def test_banner_names_profile_device_and_versions():
    import resnet_lab

    line = banner(PROFILES["smoke"])
    assert "profile: smoke" in line and f"resnet_lab {resnet_lab.__version__}" in line
    assert f"torch {torch.__version__}" in line and "device:" in line


def test_planned_work_is_macs_times_images_times_three_plus_evaluation():
    run = PlannedRun("r20", M.resnet20, (3, 32, 32), trained=1_000, evaluated=500)
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


def test_plans_list_the_networks_each_chapter_trains():
    cpu = PROFILES["cpu"]
    names = [r.label for r in chapter_plan(cpu, "degradation")]
    assert names == [f"{k}-{d}" for d in cpu.degradation.depths for k in ("plain", "residual")
                     for _ in cpu.degradation.seeds]  # fmt: skip
    gpu = PROFILES["gpu"]
    assert [r.label for r in chapter_plan(gpu, "cifar")] == [f"ResNet-{d}" for d in gpu.cifar.depths]
    with pytest.raises(ValueError, match="unknown chapter"):
        chapter_plan(cpu, "appendix")


def test_left_out_note_plans_at_the_profiles_own_rate():
    run = PlannedRun("CIFAR ResNet-18", M.cifar_resnet18, (3, 32, 32), 5_000 * 25, 1_000 * 25)
    for name, rate, where in (("cpu", CPU_MACS_PER_S, "2 CPU cores"),
                              ("gpu", T4_MACS_PER_S / GPU_MARGIN, "a T4, with the margin")):  # fmt: skip
        note = " ".join(left_out(run, PROFILES[name]).split())
        minutes = planned_work(run) / rate / 60
        assert f"not in the {name} profile: training it on 125,000 images" in note
        assert f"about {minutes:.0f} planned minutes on {where}" in note


def test_a_malformed_test_cap_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("RESNET_LAB_TEST_CAP", "64")
    with pytest.raises(ValueError, match="must be 'images,epochs'.*got '64'"):
        get_profile("cpu")
    monkeypatch.setenv("RESNET_LAB_TEST_CAP", "64,1")
    assert get_profile("cpu").cifar.train == 64

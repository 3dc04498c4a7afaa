"""Run profiles: selection, the cap, the banner, and the planned minutes over each chapter's plan."""

from __future__ import annotations

import pytest
import torch

from resnet_lab import models as M
from resnet_lab import throughput as tp
from resnet_lab.chapters import cifar
from resnet_lab.profiles import (
    CHAPTERS,
    CPU_MACS_PER_S,
    PROFILES,
    PlannedTime,
    banner,
    call_budget,
    chapter_plan,
    chapter_time,
    get_profile,
    left_out,
    planned_minutes,
    planned_seconds,
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


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_gpu_chapters_fit_a_free_colab_session_by_the_central_estimate(chapter):
    planned = chapter_time(PROFILES["gpu"], chapter)
    assert planned.minutes <= 15, f"{chapter}: {planned} > 15 min"
    low, high = tp.band()
    assert planned.low == pytest.approx(planned.minutes * low) and planned.high == pytest.approx(planned.minutes * high)


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_cpu_chapters_fit_twelve_minutes_on_two_cores(chapter):
    minutes = planned_minutes(PROFILES["cpu"], chapter, CPU_MACS_PER_S)
    assert minutes <= 12, f"{chapter}: {minutes:.1f} planned min on 2 cores > 12"


def test_paper_profile_is_planned_as_hours():
    planned = chapter_time(PROFILES["paper"], "cifar")
    assert planned.minutes > 60 and planned.span().endswith(" h") and planned.device == "a T4"


def test_planned_time_reads_as_a_range_with_its_central_estimate():
    t = PlannedTime(15.0, 10.3, 22.8, "a T4")
    assert (t.span(), str(t)) == ("10-23 min", "about 10-23 min on a T4, central 15 min")
    assert PlannedTime(150, 100, 240, "a T4").span() == "1.7-4.0 h"
    assert PlannedTime(0.2, 0.1, 0.3, "a T4").span() == "under a minute"
    assert str(PlannedTime(9.0, 9.0, 9.0, "2 CPU cores")) == "about 9 min on 2 CPU cores"


def test_cpu_plans_keep_the_measured_rate_and_t4_plans_the_network_dependent_model():
    run = PlannedRun("r20", M.resnet20(), (3, 32, 32), trained=1_000, evaluated=300)
    assert planned_seconds(run, PROFILES["cpu"]) == pytest.approx(planned_work(run) / CPU_MACS_PER_S)
    f = tp.features(run.net, run.input_shape)
    assert planned_seconds(run, PROFILES["gpu"]) == pytest.approx(1_100 * tp.train_seconds(f))
    assert planned_minutes(PROFILES["gpu"], "cifar") == chapter_time(PROFILES["gpu"], "cifar").minutes


def test_unknown_chapter_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown chapter 'appendix'; expected one of tracing, degradation"):
        chapter_plan(PROFILES["cpu"], "appendix")


def test_left_out_note_plans_at_the_profiles_own_rate():
    [(key, net)] = cifar.left_out_networks(PROFILES["cpu"].sizes("cifar")).items()
    run = PlannedRun(str(key), net, (3, 32, 32), 5_000 * 25, 1_000 * 25)
    cpu = " ".join(left_out(run, PROFILES["cpu"]).split())
    assert "The CIFAR ResNet-18 is not in the cpu profile: training it on 125,000 images" in cpu
    hours = planned_work(run) / CPU_MACS_PER_S / 3600
    assert f"would add, by the plan, about {hours:.1f} h on 2 CPU cores, past this chapter's budget" in cpu
    wide = PlannedRun(str(key), net, (3, 32, 32), 50_000 * 30, 10_000 * 30)
    gpu = " ".join(left_out(wide, PROFILES["gpu"]).split())
    minutes = planned_seconds(wide, PROFILES["gpu"]) / 60
    low, high = tp.band()
    assert (f"would add, by the plan, about {minutes * low:.0f}-{minutes * high:.0f} min on a T4, central "
            f"{minutes:.0f} min, past") in gpu


def test_each_seed_of_a_chapter_gets_its_share_of_the_budget():
    """Chapter 2 under cpu trains one call per seed: each call gets half the chapter's 12 minutes."""
    from resnet_lab.chapters import degradation

    s = PROFILES["cpu"].sizes("degradation")
    runs = [(str(key), s.train * s.epochs) for key in degradation.networks(s, 1)]
    budget = call_budget(PROFILES["cpu"], runs)
    assert budget.chapter == "degradation" and budget.share == pytest.approx(1 / len(s.seeds))
    assert budget.seconds == pytest.approx(12 * 60 / len(s.seeds))
    assert call_budget(PROFILES["cpu"], runs * (len(s.seeds) + 1)) is None  # more runs than the plan holds


# --- The T4 model ------------------------------------------------------------------------------

_BUILT = {"ResNet-20": M.resnet20, "ResNet-32": M.resnet32, "ResNet-44": M.resnet44, "ResNet-56": M.resnet56,
          "ResNet-110": M.resnet110, "CIFAR ResNet-18": M.cifar_resnet18}  # fmt: skip


def test_the_sources_features_are_the_tracers_counts():
    for m in tp.SOURCES:
        if m.network in _BUILT:
            assert tp.features(_BUILT[m.network](), (3, 32, 32)) == m.features, m.network
    r50 = next(m for m in tp.SOURCES if m.network.startswith("ResNet-50"))
    assert tp.features(M.resnet50(), (3, 224, 224)) == r50.features
    assert r50.features.macs == pytest.approx(4.089e9, rel=1e-3)  # NVIDIA's 4.09 G MACs per image


def test_the_models_constants_come_from_the_sources():
    wrn = next(m for m in tp.SOURCES if m.role == "compute")
    assert (wrn.gpu, wrn.precision, wrn.network) == ("T4", "mixed", "WRN-28-10")
    assert tp.conv_rate() == pytest.approx(3 * wrn.features.macs * 130 * 128 / 59)  # about 4.4e12 MAC/s
    # Memory-bound sources on a GTX 1080 and a 1080 Ti, moved to a T4: between the two sources' own figures.
    per_source = {}
    for m in tp.SOURCES:
        if m.role == "memory":
            per_source.setdefault(m.gpu, []).append(tp.to_t4(m) / m.features.activations)
    assert min(per_source["GTX 1080"]) < tp.activation_seconds() < max(per_source["GTX 1080 Ti"])
    assert tp.activation_seconds() == pytest.approx(1.857e-10, rel=1e-3)
    low, high = tp.band()
    assert 0.6 < low < 1 < high < 1.6
    assert tp.train_seconds(wrn.features) == pytest.approx(1 / wrn.images_per_s)  # arithmetic-bound: exact


@pytest.mark.parametrize("network", ["ResNet-20", "ResNet-56", "CIFAR ResNet-18"])
def test_planned_rates_fall_within_the_cited_measurements_moved_to_a_t4(network):
    """Every cited training measurement of the network, moved to a T4 as the model moves its memory term
    (bandwidth, bytes per value), lies within the model's band; where two sources timed the network,
    the model's central rate lies between them."""
    f = tp.features(_BUILT[network](), (3, 32, 32))
    planned = tp.macs_per_s(f)
    measured = [3 * f.macs / tp.to_t4(m) for m in tp.SOURCES if m.network == network and m.training]
    assert measured, network
    low, high = tp.band()
    for rate in measured:
        assert planned / high * 0.999 <= rate <= planned / low * 1.001, (network, planned, rate)
    if len(measured) > 1:
        assert min(measured) <= planned <= max(measured)
    # Narrow networks plan slower per MAC than the wide ones: the point of the model.
    assert planned < tp.conv_rate() or network == "CIFAR ResNet-18"


def test_narrow_networks_are_memory_bound_and_wide_ones_arithmetic_bound():
    r20, wrn = tp.features(M.resnet20(), (3, 32, 32)), next(m for m in tp.SOURCES if m.role == "compute").features
    assert r20.macs_per_activation < tp.knee() < wrn.macs_per_activation
    assert tp.train_seconds(r20) == pytest.approx(tp.activation_seconds() * r20.activations)
    assert tp.macs_per_s(wrn) == pytest.approx(tp.conv_rate())
    assert tp.eval_seconds(r20) == pytest.approx(tp.train_seconds(r20) / 3)

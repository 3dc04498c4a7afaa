"""Chapter modules: sizes declared by keyword with a cap role each, and plans that follow the builders."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest
from torch import nn

from resnet_lab import chapters, models
from resnet_lab import sizes as S
from resnet_lab.history import RunKey
from resnet_lab.profiles import PROFILES, chapter_plan

PROFILE_NAMES = ("smoke", "cpu", "gpu", "paper")


@pytest.mark.parametrize("chapter", chapters.CHAPTERS)
def test_every_chapter_has_sizes_for_every_profile_by_keyword(chapter):
    module = chapters.get(chapter)
    assert tuple(module.SIZES) == PROFILE_NAMES
    assert module.Sizes.__dataclass_params__.frozen
    assert all(f.kw_only for f in dataclasses.fields(module.Sizes))  # sizes are read and written by keyword
    for sizes in module.SIZES.values():
        assert type(sizes) is module.Sizes
    assert set(S.roles(module.Sizes).values()) <= set(S.ROLES)


def test_a_size_field_without_a_cap_role_is_refused():
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Sizes:
        train: int = S.images()
        warmup_steps: int = 3  # no role: a cap would silently miss it

    with pytest.raises(TypeError, match=r"Sizes.warmup_steps has no cap role.*images, epochs, steps, points, fixed"):
        S.roles(Sizes)
    with pytest.raises(TypeError, match="warmup_steps"):
        S.capped(Sizes(train=100), 8, 1)


def test_capped_follows_the_roles():
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Sizes:
        train: int | None = S.images()
        epochs: int = S.epochs()
        steps: int = S.steps()
        grid: int = S.points(at_most=3)
        depths: tuple[int, ...] = S.fixed()

    small = S.capped(Sizes(train=None, epochs=30, steps=400, grid=21, depths=(20, 56)), 64, 2)
    assert small == Sizes(train=64, epochs=2, steps=2, grid=3, depths=(20, 56))


@pytest.mark.parametrize("chapter", [c for c in chapters.CHAPTERS if c != "tracing"])
@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_every_depth_in_a_plan_is_a_valid_network(chapter, profile):
    plan = chapter_plan(PROFILES[profile], chapter)
    assert plan, f"{chapter} plans no work under {profile}"
    for run in plan:
        assert isinstance(run.net, nn.Module) and run.trained >= 0 and run.evaluated >= 0
        assert run.trained + run.evaluated > 0


def test_degradation_plan_is_the_builder_once_per_seed():
    module = chapters.get("degradation")
    for name in PROFILE_NAMES:
        s = PROFILES[name].sizes("degradation")
        built = [str(k) for k in module.networks(s, S.input_shape(s.dataset)[0])]
        assert Counter(r.label for r in module.plan(s)) == Counter(built * len(s.seeds))
        assert set(built) == {f"{k}-{d}" for k in ("plain", "residual") for d in s.depths}


@pytest.mark.parametrize("chapter,builder", [("degradation", "networks"), ("cifar", "networks"),
                                             ("beyond", "networks"), ("beyond", "zero_init_networks"),
                                             ("fashion", "laptop_networks"), ("keras", "networks"),
                                             ("transfer", "target_networks")])  # fmt: skip
def test_a_network_added_to_a_builder_appears_in_the_plan(monkeypatch, chapter, builder):
    module = chapters.get(chapter)
    original = getattr(module, builder)
    extra = RunKey("extra", depth=8)

    def with_one_more(*args, **kwargs):
        built = original(*args, **kwargs)
        if isinstance(built, tuple):  # (with one recipe, with another)
            return ({**built[0], extra: models.cifar_resnet(8, in_channels=1, num_classes=5)}, *built[1:])
        return {**built, extra: models.cifar_resnet(8, in_channels=1)}

    before = [r.label for r in module.plan(module.SIZES["cpu"])]
    monkeypatch.setattr(module, builder, with_one_more)
    after = [r.label for r in module.plan(module.SIZES["cpu"])]
    assert "extra-8" not in before and "extra-8" in after


def test_plans_say_which_runs_train_all_runs():
    fashion = chapters.get("fashion").plan(chapters.get("fashion").SIZES["cpu"])
    assert [r.runner for r in fashion] == ["other", "other", "other", "train_all"]
    with pytest.raises(ValueError, match="runner must be one of"):
        S.PlannedRun("x", models.resnet20(), (3, 32, 32), 1, 1, runner="keras")

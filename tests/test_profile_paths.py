"""Every profile's code path, run on the CPU: each training chapter to completion, sizes capped, and
its run folder holding exactly the runs the chapter's plan lists.

``RESNET_LAB_CAP`` keeps each profile's depths, networks and branches (full
data paths, the CIFAR ResNet-18, 110-layer nets, checkpoint folders) and
caps only the images, epochs, steps and sweeps (by each size field's role).

A chapter runs once per distinct set of capped sizes among the ``gpu``,
``paper`` and ``cpu`` profiles (ignoring depths, which change a network's
size but not the code path); a test checks that every profile not run has
the capped sizes of one that is. After each run, every checkpoint in the
run folder is matched against the chapter's plan under the same capped
profile (tools/check_runs.py): the same runs (by name), each trained on the
planned number of images. The ``smoke`` profile is checked the same way by
``make nbval``, which runs every chapter under it. Chapters 1 and 3 train
nothing: nbval runs them.
"""

from __future__ import annotations

import dataclasses

import pytest

from resnet_lab.chapters import CHAPTERS
from resnet_lab.profiles import PROFILES
from tests.helpers import CIFAR_SUBSET, REPO, needs_cifar_subset, needs_fashion, run_notebook
from tools.check_runs import difference

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
#: Chapter notebook -> its chapter module.
CHAPTER = dict(zip((p.stem for p in NOTEBOOKS), CHAPTERS))
TRAINING = [p.stem for p in NOTEBOOKS if "train_all(" in p.read_text()]
CAP = (64, 1)
#: Sizes that do not change the code path run here: depths change a network's size only, and the
#: Flowers102 epochs matter online only (RESNET_LAB_TRANSFER=offline here).
DEPTHS = ("depth", "depths", "gradient_depth", "flowers_epochs")


def _capped_sizes_but_depths(profile: str, stem: str) -> dict:
    sizes = PROFILES[profile].capped(*CAP).sizes(CHAPTER[stem])
    return {k: v for k, v in dataclasses.asdict(sizes).items() if k not in DEPTHS}


def _branches() -> list[tuple[str, str]]:
    """(chapter, profile) for every distinct capped code path, the larger profile first."""
    out = []
    for stem in TRAINING:
        seen: list[dict] = []
        for profile in ("gpu", "paper", "cpu"):  # smoke: make nbval runs and checks every chapter
            sizes = _capped_sizes_but_depths(profile, stem)
            if sizes not in seen:
                seen.append(sizes)
                out.append((stem, profile))
    return out


BRANCHES = _branches()


def test_every_profile_of_every_training_chapter_is_run_or_repeats_one_that_is():
    assert set(TRAINING) == {"02_degradation", "04_training_fashion_mnist", "05_training_cifar10", "06_beyond_resnet",
                             "07_transfer_learning", "08_keras", "09_training_on_many_devices"}  # fmt: skip
    assert ("05_training_cifar10", "paper") in BRANCHES  # the CIFAR ResNet-18 and the paper's recipe
    assert ("02_degradation", "cpu") in BRANCHES  # Fashion-MNIST and two seeds
    for stem in TRAINING:
        run = [_capped_sizes_but_depths(p, stem) for s, p in BRANCHES if s == stem]
        for profile in ("gpu", "paper", "cpu"):
            assert _capped_sizes_but_depths(profile, stem) in run, (stem, profile)
    makefile = (REPO / "Makefile").read_text()
    assert "RESNET_LAB_PROFILE=smoke" in makefile and "tools/check_runs.py smoke" in makefile


@pytest.mark.slow  # a chapter in a notebook kernel: tens of seconds to minutes on a CPU
@needs_fashion
@needs_cifar_subset
@pytest.mark.parametrize(("stem", "profile"), BRANCHES, ids=[f"{s}-{p}" for s, p in BRANCHES])
def test_chapter_runs_the_planned_networks_under_the_profile(stem, profile, tmp_path):
    path = REPO / "notebooks" / f"{stem}.ipynb"
    runs = tmp_path / "runs"
    env = {"RESNET_LAB_CAP": ",".join(map(str, CAP)), "RESNET_LAB_DATA": str(CIFAR_SUBSET),
           "RESNET_LAB_RUNS": str(runs), "RESNET_LAB_TRANSFER": "offline"}  # fmt: skip
    nb = run_notebook(path, profile=profile, env=env)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert f"profile: {profile}" in printed and f"[capped at {CAP[0]} images, {CAP[1]} epochs]" in printed
    assert difference(profile, runs, [CHAPTER[stem]], cap=CAP, offline=True) == ""

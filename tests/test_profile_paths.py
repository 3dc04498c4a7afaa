"""The gpu and paper profiles' code paths, run on the CPU: every chapter with a runner, to completion, sizes capped.

RESNET_LAB_TEST_CAP (a test-only override, see resnet_lab.profiles) keeps each
profile's depths, networks and branches (full-data paths, the CIFAR ResNet-18,
110-layer nets, checkpoint folders) and caps only the data and the epochs.

Every chapter that trains runs under ``gpu``. Under ``paper`` only the
chapters whose capped sizes differ from the capped ``gpu`` sizes in more
than their depths run (the CIFAR-10 chapter: the CIFAR ResNet-18 and the
paper's recipe); for the others a test checks that the capped sizes differ
at most in depth, where the code path is the same. Chapters 1 and 3 train
nothing: nbval runs them.
"""

from __future__ import annotations

import pytest

from resnet_lab.profiles import PROFILES
from tests.helpers import CIFAR_SUBSET, REPO, needs_cifar_subset, needs_fashion, run_notebook

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
TRAINING = [p.stem for p in NOTEBOOKS if "train_all(" in p.read_text()]
#: Chapter notebook -> its group of sizes in a profile.
GROUP = {"02_degradation": "degradation", "04_training_fashion_mnist": "fashion", "05_training_cifar10": "cifar",
         "06_beyond_resnet": "beyond", "07_transfer_learning": "transfer", "08_keras": "keras"}
CAP = (64, 1)
DEPTHS = ("depth", "depths", "gradient_depth")


def _capped_sizes_but_depths(profile: str, stem: str) -> dict:
    sizes = getattr(PROFILES[profile].capped(*CAP), GROUP[stem])
    return {k: v for k, v in vars(sizes).items() if k not in DEPTHS}


PAPER_DIFFERS = [s for s in TRAINING if _capped_sizes_but_depths("paper", s) != _capped_sizes_but_depths("gpu", s)]
BRANCHES = [(s, "gpu") for s in TRAINING] + [(s, "paper") for s in PAPER_DIFFERS]


def test_every_training_chapter_is_covered_and_skipped_paper_runs_would_repeat_gpu():
    assert set(TRAINING) == set(GROUP), "a new training chapter needs its size group in GROUP"
    assert "05_training_cifar10" in PAPER_DIFFERS  # the CIFAR ResNet-18 and the paper's recipe
    for stem in set(TRAINING) - set(PAPER_DIFFERS):
        assert _capped_sizes_but_depths("paper", stem) == _capped_sizes_but_depths("gpu", stem)


@pytest.mark.slow  # a chapter in a notebook kernel: tens of seconds to minutes on a CPU
@needs_fashion
@needs_cifar_subset
@pytest.mark.parametrize(("stem", "profile"), BRANCHES, ids=[f"{s}-{p}" for s, p in BRANCHES])
def test_chapter_runs_to_completion_under_the_profile(stem, profile, tmp_path):
    path = REPO / "notebooks" / f"{stem}.ipynb"
    runs = tmp_path / "runs"
    env = {"RESNET_LAB_TEST_CAP": ",".join(map(str, CAP)), "RESNET_LAB_DATA": str(CIFAR_SUBSET),
           "RESNET_LAB_RUNS": str(runs), "RESNET_LAB_TRANSFER": "offline"}  # fmt: skip
    nb = run_notebook(path, profile=profile, env=env)
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert f"profile: {profile}" in printed and "[capped for tests]" in printed
    if "train_all(" in "".join(c.source for c in nb.cells):
        assert runs.is_dir() and list(runs.glob("*.pt")), "every run keeps its checkpoints in the run folder"

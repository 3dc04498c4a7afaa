"""The gpu and paper profiles' own code paths, run on the CPU to completion, sizes capped.

RESNET_LAB_TEST_CAP (a test-only override, see resnet_lab.profiles) keeps each
profile's depths, networks and branches (full-data paths, the CIFAR ResNet-18,
110-layer nets, checkpoint folders) and caps only the data and the epochs.

Only the chapters where a profile takes a branch that ``smoke`` (nbval) and
``cpu`` (the committed outputs) never take run here, to keep ``make test``
short: CIFAR-10 instead of Fashion-MNIST in the degradation and beyond
chapters, D2L's recipe on the full data set, and the CIFAR-10 chapter's
ResNet-18 decision and paper recipe. The other chapters differ between
profiles only in sizes.
"""

from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from tests.helpers import CIFAR_SUBSET, REPO, needs_cifar_subset, needs_fashion

BRANCHES = [("02_degradation", "gpu"), ("04_training_fashion_mnist", "gpu"), ("05_training_cifar10", "gpu"),
            ("05_training_cifar10", "paper"), ("06_beyond_resnet", "gpu")]


def test_the_chosen_chapters_exist():
    assert {stem for stem, _ in BRANCHES} <= {p.stem for p in (REPO / "notebooks").glob("*.ipynb")}


@needs_fashion
@needs_cifar_subset
@pytest.mark.parametrize(("stem", "profile"), BRANCHES, ids=[f"{s}-{p}" for s, p in BRANCHES])
def test_chapter_runs_to_completion_under_the_profile(stem, profile, tmp_path, monkeypatch):
    path = REPO / "notebooks" / f"{stem}.ipynb"
    runs = tmp_path / "runs"
    for key, value in {"RESNET_LAB_PROFILE": profile, "RESNET_LAB_TEST_CAP": "64,1", "MPLBACKEND": "Agg",
                       "RESNET_LAB_DATA": str(CIFAR_SUBSET), "RESNET_LAB_RUNS": str(runs),
                       "RESNET_LAB_TRANSFER": "offline"}.items():  # fmt: skip
        monkeypatch.setenv(key, value)
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()  # fmt: skip
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert f"profile: {profile}" in printed and "[capped for tests]" in printed
    if "train_all(" in "".join(c.source for c in nb.cells):
        assert runs.is_dir() and list(runs.glob("*.pt")), "every run keeps its checkpoints in the run folder"

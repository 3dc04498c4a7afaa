"""Check a run folder against the chapters' plans: the same runs, each trained on the planned images.

    .venv/bin/python tools/check_runs.py PROFILE FOLDER [CHAPTER ...]

Every checkpoint that ``train_all`` wrote into FOLDER is matched, by name and
by images trained on (``RunInfo.train_images`` x epochs), against the plans
of the CHAPTERs (default: every chapter) under PROFILE, capped where
``RESNET_LAB_CAP`` says so; the Flowers102 runs count only where
``RESNET_LAB_TRANSFER`` is not ``offline``. ``make nbval`` runs it over the
run folder of the smoke profile's notebooks; tests/test_profile_paths.py
uses :func:`difference` for the other profiles. Exit 1 with what differs.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from resnet_lab import chapters, settings  # noqa: E402
from resnet_lab.files import read_saved  # noqa: E402
from resnet_lab.profiles import PROFILES, chapter_plan, get_profile  # noqa: E402
from resnet_lab.runs import run_slug  # noqa: E402

ONLINE_ONLY = ("Flowers102",)


def checkpointed(folder: Path) -> Counter:
    """(name as in the file name, images planned for it) of every checkpoint in ``folder``: its training
    images times the epochs it was asked for (a run the time budget shortened trained fewer; the plan
    lists what was asked)."""
    found: Counter = Counter()
    for path in folder.glob("*.pt"):
        history = json.loads(read_saved(path)["history"])
        info = history["info"]
        epochs = info.get("requested_epochs") or len(history["records"])
        found[(path.stem.rsplit("-", 1)[0], info["train_images"] * epochs)] += 1
    return found


def planned(profile_name: str, names: list[str], cap: tuple[int, int] | None = None,
            offline: bool | None = None) -> Counter:  # fmt: skip
    """(name, images trained on) of every ``train_all`` run in the plans of ``names`` under the profile
    (capped by ``cap``, else as ``RESNET_LAB_CAP`` says; offline as ``RESNET_LAB_TRANSFER`` says unless given)."""
    profile = get_profile(profile_name)
    if cap is not None:
        profile = PROFILES[profile_name].capped(*cap)
    offline = settings.transfer_mode() == "offline" if offline is None else offline
    return Counter((run_slug(r.label), r.trained) for name in names for r in chapter_plan(profile, name)
                   if r.runner == "train_all" and not (offline and r.label.startswith(ONLINE_ONLY)))  # fmt: skip


def difference(profile_name: str, folder: Path, names: list[str], cap: tuple[int, int] | None = None,
               offline: bool | None = None) -> str:  # fmt: skip
    """What differs between the run folder and the plans, in words; empty where they agree."""
    have, want = checkpointed(folder), planned(profile_name, names, cap, offline)
    lines = [f"not planned: {k[0]} on {k[1]:,} images (x{n})" for k, n in (have - want).items()]
    lines += [f"planned, not run: {k[0]} on {k[1]:,} images (x{n})" for k, n in (want - have).items()]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    profile_name, folder, names = sys.argv[1], Path(sys.argv[2]), sys.argv[3:] or list(chapters.CHAPTERS)
    problems = difference(profile_name, folder, names)
    if problems:
        sys.exit(f"the run folder {folder} does not hold the {profile_name} plans' runs:\n{problems}")
    print(f"{folder}: every checkpoint is a planned run of the {profile_name} profile, and every planned run has one")

"""Write the student edition: every chapter without its solutions and without outputs (``make student``).

    .venv/bin/python tools/student_edition.py [student] [--profile smoke|cpu|gpu|paper]

A tag-based filter with nbformat: cells tagged ``solution`` are dropped,
every output and execution count is cleared, and everything else (the
exercises' placeholders, the checkers, the quizzes, the scorecards) stays.
With ``--profile`` (``make student CLASS_PROFILE=gpu``), each chapter's
set-up cell sets ``RESNET_LAB_PROFILE`` to the instructor's choice before
``setup()`` reads it, so every student of the class runs the same
experiment whatever their machine or environment says.
The folder is git-ignored; hand it out as it is.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]

#: The call in every chapter's set-up cell that reads ``RESNET_LAB_PROFILE`` (through ``get_profile``).
SETUP_CALL = "profile = setup()"


def profile_lines(profile: str) -> list[str]:
    """What the set-up cell gains, right above :data:`SETUP_CALL`: a comment and the assignment."""
    return [
        "# Chosen by your instructor for this class, so that every student runs",
        "# the same experiment. Change it only if your instructor says so.",
        f'os.environ["RESNET_LAB_PROFILE"] = "{profile}"',
    ]


def check_profile(profile: str) -> str:
    """``profile`` as resnet_lab names it (lower case), or a ValueError that lists the profiles there are."""
    from resnet_lab.profiles import PROFILES

    key = profile.strip().lower()
    if key not in PROFILES:
        raise ValueError(f"unknown profile {profile!r} for the student edition; expected one of "
                         f"{', '.join(PROFILES)} (see resnet_lab/profiles.py)")  # fmt: skip
    return key


def set_class_profile(nb: nbformat.NotebookNode, profile: str) -> None:
    """Write ``profile`` into ``nb``'s set-up cell, in place: ``import os`` at its top and the assignment
    (with a comment saying the instructor chose it) right above ``profile = setup()``. A ValueError where
    the notebook has no such cell."""
    profile = check_profile(profile)
    cells = [c for c in nb.cells if c.cell_type == "code" and SETUP_CALL in c.source.splitlines()]
    if len(cells) != 1:
        raise ValueError(f"expected one set-up cell with the line {SETUP_CALL!r}, found {len(cells)}")
    cell = cells[0]
    lines = cell.source.splitlines()
    at = lines.index(SETUP_CALL)
    lines[at:at] = profile_lines(profile)
    if "import os" not in lines:
        lines[0:0] = ["import os", ""]
    cell.source = "\n".join(lines)


def student_notebook(nb: nbformat.NotebookNode, profile: str | None = None) -> nbformat.NotebookNode:
    """A copy of ``nb`` without solution cells, outputs, execution counts or saved widget state; with
    ``profile``, its set-up cell sets that profile (:func:`set_class_profile`)."""
    nb = nbformat.from_dict(nb)
    nb.cells = [c for c in nb.cells if "solution" not in c.metadata.get("tags", [])]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)
    if profile is not None:
        set_class_profile(nb, profile)
    return nb


def write_edition(target: Path, profile: str | None = None) -> list[Path]:
    """Write every chapter's student notebook into ``target/notebooks`` (replacing ``target``); with
    ``profile``, every set-up cell sets it. The profile is checked before anything is written."""
    if profile is not None:
        profile = check_profile(profile)
    if target.exists():
        shutil.rmtree(target)
    (target / "notebooks").mkdir(parents=True)
    written = []
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        out = target / "notebooks" / path.name
        try:
            nbformat.write(student_notebook(nbformat.read(path, as_version=4), profile), out)
        except ValueError as error:
            raise ValueError(f"{path.name}: {error}") from error
        written.append(out)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module's docstring)."""
    parser = argparse.ArgumentParser(prog="tools/student_edition.py", description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", type=Path, default=REPO / "student", help="where to write (student/)")
    parser.add_argument("--profile", default=None, help="the class's profile, written into every set-up cell "
                        "(smoke, cpu, gpu or paper; default: none, each machine chooses)")  # fmt: skip
    args = parser.parse_args(argv)
    try:
        written = write_edition(args.folder, args.profile or None)
    except ValueError as error:
        parser.error(str(error))
    for path in written:
        print(f"wrote {path.relative_to(args.folder.parent) if args.folder.is_absolute() else path}")
    if args.profile:
        print(f"every set-up cell sets RESNET_LAB_PROFILE={check_profile(args.profile)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The one-line box at the top of every chapter, and the table of chapter times in the book.

    .venv/bin/python tools/chapter_info.py            # rewrite every box and book/chapter-times.md
    .venv/bin/python tools/chapter_info.py --check    # exit 1 if any is out of date
    .venv/bin/python tools/chapter_info.py --dry-run  # print every box and the table, write nothing

For each chapter: time to read (its words at 200 a minute), time to run on
each profile (``cpu`` measured from the committed outputs' cell timings;
``gpu`` and ``paper`` planned for a T4 by :func:`resnet_lab.profiles.chapter_time`:
the range the T4 model's uncertainty allows, with its central estimate) and
what the reader needs. ``make outputs`` runs this after executing the notebooks.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from resnet_lab.profiles import PROFILES, PlannedTime, chapter_time  # noqa: E402

CHAPTER_OF = {
    "01_tracing_shapes": "tracing", "02_degradation": "degradation", "03_residual_learning": "residual",
    "04_training_fashion_mnist": "fashion", "05_training_cifar10": "cifar", "06_beyond_resnet": "beyond",
    "07_transfer_learning": "transfer", "08_keras": "keras",
}  # fmt: skip
TAG = "chapter-info"


def reading_minutes(nb) -> int:
    words = sum(len(re.findall(r"\w+", c.source)) for c in nb.cells if TAG not in c.metadata.get("tags", []))
    return max(1, round(words / 200))


def measured_minutes(nb) -> float | None:
    """Wall minutes of the committed run, from the first cell's start to the last cell's end."""
    stamps = [c.metadata.get("execution", {}) for c in nb.cells if c.cell_type == "code"]
    starts = [s["iopub.execute_input"] for s in stamps if "iopub.execute_input" in s]
    ends = [s["shell.execute_reply"] for s in stamps if "shell.execute_reply" in s]
    if not starts or not ends:
        return None
    parse = datetime.fromisoformat
    return (parse(max(ends).replace("Z", "+00:00")) - parse(min(starts).replace("Z", "+00:00"))).total_seconds() / 60


def committed_profile(nb) -> str | None:
    for c in nb.cells:
        for o in c.get("outputs", []):
            m = re.search(r"profile: (\w+)", o.get("text", "") if o.get("output_type") == "stream" else "")
            if m:
                return m.group(1)
    return None


def _duration(minutes: float | None) -> str:
    if minutes is None:
        return "not measured"
    if minutes < 1:
        return "under a minute"
    if minutes < 90:
        return f"{minutes:.0f} min"
    return f"{minutes / 60:.1f} h"


def facts(path: Path) -> dict:
    nb = nbformat.read(path, as_version=4)
    chapter = CHAPTER_OF[path.stem]
    cpu = measured_minutes(nb) if committed_profile(nb) == "cpu" else None
    gpu, paper = chapter_time(PROFILES["gpu"], chapter), chapter_time(PROFILES["paper"], chapter)
    return {"chapter": chapter, "read": reading_minutes(nb), "cpu": cpu, "gpu": gpu, "paper": paper}


def _planned(t: PlannedTime) -> str:
    """``"10-22 min (central 15 min)"``, or one figure where the range rounds to one."""
    span = t.span()
    return f"{span} (central {_duration(t.minutes)})" if "-" in span else span


def box(f: dict) -> str:
    needs = "a CPU is enough" if f["cpu"] is None or f["cpu"] <= 15 else "a GPU is recommended"
    # A blockquote: a box in the book, and plain Markdown in Jupyter and Colab too.
    return (f"> **{f['read']} min to read.** Run: `cpu` {_duration(f['cpu'])} (measured, 2 cores); planned for a "
            f"T4: `gpu` {_planned(f['gpu'])}, `paper` {_planned(f['paper'])}. Needs: {needs}.")


def table(all_facts: dict[str, dict]) -> str:
    lines = [
        "| chapter | read | `cpu` (measured) | `gpu` (planned, T4) | `paper` (planned, T4) |",
        "|---|---|---|---|---|",
    ]
    for stem, f in all_facts.items():
        lines.append(f"| {{doc}}`../notebooks/{stem}` | {f['read']} min | {_duration(f['cpu'])} | "
                     f"{_planned(f['gpu'])} | {_planned(f['paper'])} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def update(check: bool = False, show: Callable[[str], None] | None = None) -> list[str]:
    """Rewrite (or, with ``check``, compare) every box and the table; returns what is out of date.
    ``show``, if given, gets every new box and the table (``--dry-run`` prints them)."""
    stale, all_facts = [], {}
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        f = all_facts[path.stem] = facts(path)
        nb = nbformat.read(path, as_version=4)
        cell = next(c for c in nb.cells if TAG in c.metadata.get("tags", []))
        if show is not None:
            show(f"{path.stem}:\n{box(f)}")
        if cell.source != box(f):
            stale.append(str(path.relative_to(REPO)))
            if not check:
                cell.source = box(f)
                nbformat.write(nb, path)
    target = REPO / "book" / "chapter-times.md"
    text = table(all_facts)
    if show is not None:
        show(text)
    if not target.exists() or target.read_text() != text:
        stale.append(str(target.relative_to(REPO)))
        if not check:
            target.write_text(text)
    return stale


if __name__ == "__main__":
    dry = "--dry-run" in sys.argv
    checking = "--check" in sys.argv or dry
    out_of_date = update(check=checking, show=print if dry else None)
    for item in out_of_date:
        print(("out of date: " if checking else "updated: ") + item)
    sys.exit(1 if checking and out_of_date else 0)

"""The one-line box at the top of every chapter, and the table of chapter times in the book.

    .venv/bin/python tools/chapter_info.py            # rewrite every box and book/chapter-times.md
    .venv/bin/python tools/chapter_info.py --check    # exit 1 if any is out of date

For each chapter: time to read (its words at 200 a minute), time to run on
each profile (``cpu`` measured from the committed outputs' cell timings;
``gpu`` and ``paper`` planned by :func:`resnet_lab.profiles.planned_minutes`
at the T4 assumption with the book's margin) and what the reader needs.
``make outputs`` runs this after executing the notebooks.
"""

from __future__ import annotations

import re
import sys
from datetime import datetime
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from resnet_lab.profiles import GPU_MARGIN, PROFILES, T4_MACS_PER_S, planned_minutes  # noqa: E402

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
    gpu = planned_minutes(PROFILES["gpu"], chapter, T4_MACS_PER_S) * GPU_MARGIN
    paper = planned_minutes(PROFILES["paper"], chapter, T4_MACS_PER_S) * GPU_MARGIN
    return {"chapter": chapter, "read": reading_minutes(nb), "cpu": cpu, "gpu": gpu, "paper": paper}


def box(f: dict) -> str:
    needs = "a CPU is enough" if f["cpu"] is None or f["cpu"] <= 15 else "a GPU is recommended"
    # A blockquote: a box in the book, and plain Markdown in Jupyter and Colab too.
    return (f"> **{f['read']} min to read.** Run: `cpu` {_duration(f['cpu'])} (measured, 2 cores), `gpu` "
            f"{_duration(f['gpu'])}, `paper` {_duration(f['paper'])} (planned for a T4). Needs: {needs}.")


def table(all_facts: dict[str, dict]) -> str:
    lines = [
        "| chapter | read | `cpu` (measured) | `gpu` (planned) | `paper` (planned) |",
        "|---|---|---|---|---|",
    ]
    for stem, f in all_facts.items():
        lines.append(f"| {{doc}}`../notebooks/{stem}` | {f['read']} min | {_duration(f['cpu'])} | "
                     f"{_duration(f['gpu'])} | {_duration(f['paper'])} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def update(check: bool = False) -> list[str]:
    """Rewrite (or, with ``check``, compare) every box and the table; returns what is out of date."""
    stale, all_facts = [], {}
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        f = all_facts[path.stem] = facts(path)
        nb = nbformat.read(path, as_version=4)
        cell = next(c for c in nb.cells if TAG in c.metadata.get("tags", []))
        if cell.source != box(f):
            stale.append(str(path.relative_to(REPO)))
            if not check:
                cell.source = box(f)
                nbformat.write(nb, path)
    target = REPO / "book" / "chapter-times.md"
    text = table(all_facts)
    if not target.exists() or target.read_text() != text:
        stale.append(str(target.relative_to(REPO)))
        if not check:
            target.write_text(text)
    return stale


if __name__ == "__main__":
    checking = "--check" in sys.argv
    out_of_date = update(check=checking)
    for item in out_of_date:
        print(("out of date: " if checking else "updated: ") + item)
    sys.exit(1 if checking and out_of_date else 0)

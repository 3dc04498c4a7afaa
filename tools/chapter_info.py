"""The one-line box at the top of every chapter, and the table of chapter times in the book.

    .venv/bin/python tools/chapter_info.py            # rewrite every box and book/chapter-times.md
    .venv/bin/python tools/chapter_info.py --check    # exit 1 if any is out of date
    .venv/bin/python tools/chapter_info.py --dry-run  # print every box and the table, write nothing

For each chapter: time to read (the words of its prose, the Markdown cells, at 200 a
minute; code, outputs and solutions are not reading), time for its exercises (estimated,
not measured: :data:`EXERCISE_MINUTES` per exercise of each kind, from the chapter's
registered checkers), time to run on
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
    "09_training_on_many_devices": "distributed",
}  # fmt: skip
TAG = "chapter-info"

#: Estimated minutes a student spends on one exercise of each kind (an estimate for planning a
#: class, not a measurement): read a number or a choice off the chapter, write a module or a
#: function and get it past its checker, read a number off one's own run, write a paragraph.
EXERCISE_MINUTES = {"number": 2, "shape": 2, "choice": 2, "code": 10, "run": 5, "written": 10}


def reading_minutes(nb) -> int:
    """The chapter's prose (Markdown cells, not the box) at 200 words a minute."""
    words = sum(len(re.findall(r"\w+", c.source)) for c in nb.cells
                if c.cell_type == "markdown" and TAG not in c.metadata.get("tags", []))  # fmt: skip
    return max(1, round(words / 200))


def exercise_minutes(chapter: str) -> tuple[int, int]:
    """(number of exercises, estimated minutes) for ``chapter``'s registered checkers."""
    from resnet_lab.exercises import EXERCISES

    kinds = [kind for (ch, _), (_, kind) in EXERCISES.items() if ch == chapter]
    return len(kinds), sum(EXERCISE_MINUTES[k] for k in kinds)


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
    count, minutes = exercise_minutes(chapter)
    return {"chapter": chapter, "read": reading_minutes(nb), "exercises": count, "exercise_min": minutes,
            "cpu": cpu, "gpu": gpu, "paper": paper}  # fmt: skip


def _planned(t: PlannedTime) -> str:
    """``"10-22 min (central 15 min)"``, or one figure where the range rounds to one."""
    span = t.span()
    return f"{span} (central {_duration(t.minutes)})" if "-" in span else span


def box(f: dict) -> str:
    needs = "a CPU is enough" if f["cpu"] is None or f["cpu"] <= 15 else "a GPU is recommended"
    # A blockquote: a box in the book, and plain Markdown in Jupyter and Colab too.
    return (f"> **{f['read']} min to read.** {f['exercises']} exercises, about {f['exercise_min']} min "
            f"(estimated). Run: `cpu` {_duration(f['cpu'])} (measured, 2 cores); planned for a "
            f"T4: `gpu` {_planned(f['gpu'])}, `paper` {_planned(f['paper'])}. Needs: {needs}.")


def table(all_facts: dict[str, dict]) -> str:
    lines = [
        "| chapter | read | exercises (estimated) | `cpu` (measured) | `gpu` (planned, T4) | `paper` (planned, T4) |",
        "|---|---|---|---|---|---|",
    ]
    for stem, f in all_facts.items():
        lines.append(f"| {{doc}}`../notebooks/{stem}` | {f['read']} min | {f['exercises']}, {f['exercise_min']} min | "
                     f"{_duration(f['cpu'])} | "
                     f"{_planned(f['gpu'])} | {_planned(f['paper'])} |")  # fmt: skip
    return "\n".join(lines) + "\n"


#: The two-week module of the instructors' guide: six sessions, the chapters each covers.
SESSIONS = {
    "week 1, session 1": ["01_tracing_shapes"],
    "week 1, session 2": ["02_degradation", "03_residual_learning"],
    "week 1, session 3": ["04_training_fashion_mnist"],
    "week 2, session 1": ["05_training_cifar10"],
    "week 2, session 2": ["06_beyond_resnet"],
    "week 2, session 3": ["07_transfer_learning", "08_keras"],
    "optional, session 7": ["09_training_on_many_devices"],
}


def _short(minutes: float | None) -> str:
    """:func:`_duration` for a narrow table cell: "<1 min" for under a minute."""
    return _duration(minutes).replace("under a minute", "<1 min")


def syllabus(all_facts: dict[str, dict]) -> str:
    """The guide's table of sessions: each session's minutes of reading, exercises and running,
    on a laptop (the ``cpu`` run as measured) and on Colab (the ``gpu`` run's central T4 plan)."""
    lines = [
        "| session | chapters | read | exercises (estimated) | run: laptop (`cpu`) / Colab (`gpu`) "
        "| total: laptop / Colab |",
        "|---|---|---|---|---|---|",
    ]
    for name, stems in SESSIONS.items():
        fs = [all_facts[s] for s in stems]
        read, ex = sum(f["read"] for f in fs), sum(f["exercise_min"] for f in fs)
        measured = [f["cpu"] for f in fs]
        cpu = None if None in measured else sum(measured)  # a chapter without a committed cpu run: not measured
        gpu = sum(f["gpu"].minutes for f in fs)
        chapters = ", ".join(f"{{doc}}`../notebooks/{s}`" for s in stems)
        laptop = None if cpu is None else read + ex + cpu
        lines.append(f"| {name} | {chapters} | {read} min | {ex} min | {_short(cpu)} / {_short(gpu)} | "
                     f"{_short(laptop)} / {_short(read + ex + gpu)} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def rubrics() -> str:
    """The instructors' page's rubrics: every written exercise with the criteria its checker shows."""
    import importlib

    from resnet_lab.exercises import EXERCISES

    out = []
    for number, (stem, chapter) in enumerate(CHAPTER_OF.items(), start=1):
        module = importlib.import_module(f"resnet_lab.exercises.{chapter}")
        for (ch, name), (title, kind) in EXERCISES.items():
            if ch != chapter or kind != "written":
                continue
            feedback = getattr(module, name)("")  # an empty answer: the feedback carries the rubric
            out.append(f"**Chapter {number}, `{name}`**: {title} ({{doc}}`../notebooks/{stem}`)\n")
            out.extend(f"- {line}" for line in feedback.rubric)
            out.append("")
    return "\n".join(out)


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
    for name, text in (("chapter-times.md", table(all_facts)), ("syllabus-times.md", syllabus(all_facts)),
                       ("rubrics.md", rubrics())):  # fmt: skip
        target = REPO / "book" / name
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

"""Grade a folder of submitted chapter notebooks: run each, re-check every exercise, write a gradebook.

    python -m resnet_lab.grade SUBMISSIONS/ --chapter residual [--profile smoke] [--timeout 600]
                               [--grade-timeout 180] [--jobs 1] [--out DIR]
    resnet-lab-grade SUBMISSIONS/ --chapter residual          # the same, as a console script

``SUBMISSIONS`` holds either one notebook per student (``alice.ipynb``: the
student is the file's stem) or one folder per student (``alice/...ipynb``:
the student is the folder's name, and the folder's other files come along).
Each notebook runs top to bottom in a fresh kernel (nbclient), in a
temporary copy of its folder, with ``RESNET_LAB_PROFILE`` set to the
profile, a fresh ``RESNET_LAB_RUNS`` folder and ``MPLBACKEND=Agg``;
``RESNET_LAB_DATA``, ``RESNET_LAB_TRANSFER`` and ``RESNET_LAB_CIFAR_SUBSET``
come from the grader's environment, and other ``RESNET_LAB_*`` variables do
not (they would change the experiment). A set-up cell that sets
``RESNET_LAB_PROFILE`` itself (``make student CLASS_PROFILE=...``) gets the
grader's profile instead. A cell that raises does not stop the notebook;
``--timeout`` is the wall-clock budget of the whole notebook (each cell may
take what is left), and when it runs out the kernel is interrupted and the
notebook is graded as far as it got.

Then, in that same kernel, the grader re-checks every exercise itself,
trusting neither printed outputs nor the scorecard: it takes each
exercise's last recorded answer (``engine.ANSWERS``, the arguments of the
student's last check call), removes every ``resnet_lab`` module from
``sys.modules``, imports the chapter's exercises afresh from the grader's own
copy of the package (so a checker the student patched, or a ``resnet_lab``
folder the notebook wrote, does not count), and runs each checker again on
the recorded answer (objects of the book's classes, such as a run's
histories, are re-bound to the fresh classes by a pickle round trip). Which
cells pose which exercise is read from the sources (``ex.<name>(``), so an
exercise is:

* ``correct`` (``answered`` for a written one: graded by its rubric, by the
  instructor) or ``not yet``, with ``not yet (book code)`` where the answer
  is the book's own code and ``not yet (patched)`` where the notebook
  replaced a function of torch or Python (below);
* ``error``: its last check cell raised (a syntax error, say), or the kernel
  died before it ran, or the notebook could not be read;
* ``timed out``: the time ran out in or before its last check cell;
* ``missing``: no cell calls it (the cell was deleted).

Written to ``--out`` (default: ``SUBMISSIONS-graded`` beside the folder):
``gradebook.csv`` (one row per student: the count correct, time, a note on
the notebook, one status column and one attempts column per exercise),
``written.csv`` (student, exercise, text of each written answer, for the
instructor to grade by the rubric), ``feedback/<student>.md`` (each
exercise's status, the checker's message, and where not correct its first
hint level only), ``executed/<student>.ipynb`` (the notebook as it ran), and
``README.md`` (what each column means). Attempts are the checker calls in
the graded run of the notebook (top to bottom, once), not the student's
tries in their own session, which a saved notebook does not keep.

What this defends against: edited or monkeypatched checkers, a scorecard or
"Correct!" set by hand, deleted cells, notebooks that do not parse, loop
forever or kill their kernel (each recorded as such; the batch goes on).
Functions defined in the notebook found on ``torch``, ``torch.nn``,
``torch.nn.functional``, ``torch.Tensor``, ``nn.Module``, ``math``,
``builtins``, ``json`` or ``pickle`` are named, and nothing of that notebook
counts as correct. It is not a sandbox: run notebooks you distrust in a
container.

Why our own grader and not otter-grader or nbgrader (otter-grader 7.0 and nbgrader 0.9.6 looked at):
otter-grader grades with tests written in its own format, produced by
``otter assign`` from a notebook in its own format, and ``otter grade`` runs
Docker containers (``python-on-whales`` and ``nbconvert[webpdf]`` are hard
dependencies); ``otter run`` grades one submission without Docker, but
still from an autograder zip of otter tests, so our checkers, with their
named mistakes, gradient checks, hint levels and refusal of the book's code,
would have to be wrapped as otter tests and the chapters rewritten into
otter's assignment format. nbgrader needs a course directory layout
(``source/release/submitted/autograded``), a SQL gradebook database
(sqlalchemy, alembic) and cell metadata written by its own assignment
toolbar, and pins JupyterLab 4.2+ and notebook 7, which is heavy on a
student's laptop and of no use on Colab. What the book needs (run a
notebook, call our checkers on the recorded answers, write a CSV) is
nbclient and ipykernel, which the book's environment already has, plus this
module; its CSV is merged into a learning platform's gradebook as any
spreadsheet is.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import inspect
import json
import math
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from . import settings

__all__ = ["Exercise", "Outcome", "Graded", "CellRun", "chapter_exercises", "find_submissions", "check_cells",
           "exercise_outcome", "kernel_env", "force_profile", "grade_notebook", "grade_folder", "write_gradebook",
           "write_written", "feedback_markdown", "main", "STATUSES"]  # fmt: skip

#: Every status a gradebook cell can hold.
STATUSES = ("correct", "answered", "not yet", "not yet (book code)", "not yet (book solution)", "not yet (patched)",
            "missing", "error", "timed out")  # fmt: skip

#: Environment variables of resnet_lab passed on to the kernels: where the data is, not what the experiment is.
PASSED_ON = ("RESNET_LAB_DATA", "RESNET_LAB_TRANSFER", "RESNET_LAB_CIFAR_SUBSET")

_CALL = re.compile(r"\bex\s*\.\s*([A-Za-z_]\w*)\s*\(")
_PROFILE_LINE = re.compile(r"""^(\s*os\.environ\[\s*(["'])RESNET_LAB_PROFILE\2\s*\]\s*=\s*)(["'])([^"'\n]*)\3""",
                           re.MULTILINE)  # fmt: skip


# --- The chapter's exercises -------------------------------------------------------------------------


@dataclass(frozen=True)
class Exercise:
    """One exercise of the chapter: its checker's name, title and kind (code, number, ..., written, run)."""

    name: str
    title: str
    kind: str


def _chapter_module_name(chapter: str) -> str:
    """``chapter`` as an exercises module name: ``residual``, or a notebook's stem such as ``03_residual_learning``
    or just ``3``."""
    from .chapters import CHAPTERS

    key = chapter.strip().lower().removesuffix(".ipynb")
    if key in CHAPTERS:
        return key
    number = re.match(r"(\d+)", key)
    if number and 1 <= int(number.group(1)) <= len(CHAPTERS):
        return CHAPTERS[int(number.group(1)) - 1]
    raise ValueError(f"unknown chapter {chapter!r}: expected one of {', '.join(CHAPTERS)} (or a notebook's number)")


def chapter_exercises(chapter: str) -> tuple[str, str, list[Exercise]]:
    """``(chapter key, module name, exercises in the module's order)`` for a chapter name."""
    module_name = f"resnet_lab.exercises.{_chapter_module_name(chapter)}"
    module = importlib.import_module(module_name)
    from .exercises.engine import EXERCISES

    key = getattr(module, "CHAPTER", module_name.rsplit(".", 1)[1])
    found = [Exercise(name, title, kind) for (ch, name), (title, kind) in EXERCISES.items() if ch == key]
    if not found:
        raise ValueError(f"the chapter {key!r} has no exercises")
    return key, module_name, found


# --- Submissions -----------------------------------------------------------------------------------


def _notebooks_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.ipynb")
                  if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))  # fmt: skip


def find_submissions(folder: Path, chapter: str = "",
                     exclude: Sequence[Path] = ()) -> list[tuple[str, Path | None, str]]:  # fmt: skip
    """Every submission in ``folder`` as ``(student, notebook or None, note)``, sorted by student.

    A notebook directly in ``folder`` is one student's (the file's stem); a sub-folder is one student's
    (its name), holding one notebook, or several of which the one whose name has the chapter's name is
    taken (else the newest), said in the note; a sub-folder without one gives ``None``. Hidden files and
    folders (``.ipynb_checkpoints``) and ``exclude`` are skipped; a student id met twice gets ``-2``.
    """
    excluded = {p.resolve() for p in exclude}
    found: list[tuple[str, Path | None, str]] = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.resolve() in excluded:
            continue
        if entry.is_file() and entry.suffix == ".ipynb":
            found.append((entry.stem, entry, ""))
        elif entry.is_dir():
            books = _notebooks_in(entry)
            if not books:
                found.append((entry.name, None, "no notebook in the student's folder"))
                continue
            named = [p for p in books if chapter and chapter.lower() in p.stem.lower()]
            chosen = (named or sorted(books, key=lambda p: p.stat().st_mtime))[-1] if len(books) > 1 else books[0]
            note = f"{len(books)} notebooks in the folder; graded {chosen.relative_to(entry)}" if len(books) > 1 else ""
            found.append((entry.name, chosen, note))
    seen: dict[str, int] = {}
    unique = []
    for student, path, note in found:
        seen[student] = seen.get(student, 0) + 1
        unique.append((student if seen[student] == 1 else f"{student}-{seen[student]}", path, note))
    return sorted(unique, key=lambda item: item[0])


# --- Which cells pose which exercise, and what became of them -------------------------------------------


@dataclass
class CellRun:
    """What happened to one code cell: ``ok``, ``error`` (with its first line), ``timeout`` (the time ran out
    in it), ``died`` (the kernel died in it) or ``not run``."""

    state: str
    error: str = ""


def check_cells(sources: Sequence[str], names: Iterable[str]) -> dict[str, list[int]]:
    """For each exercise name, the indices of the cells whose source calls ``ex.<name>(``, in order."""
    wanted = set(names)
    cells: dict[str, list[int]] = {name: [] for name in names}
    for index, source in enumerate(sources):
        for name in dict.fromkeys(_CALL.findall(source or "")):
            if name in wanted:
                cells[name].append(index)
    return cells


_TITLE = re.compile(r"^\s*#\s*@title\s+Solution\b", re.IGNORECASE)


def _normalised(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines() if line.strip())


def book_solutions(cells: Sequence[Mapping], book: Sequence[str] = ()) -> frozenset[int]:
    """Indices of the cells that are the book's own solution cells: tagged ``solution``, opening with the
    folded title ``# @title Solution``, or with the same code as a solution cell of the book's chapter
    (``book``: those cells' sources), so that a submitted full edition (solutions run) does not count."""
    known = {_normalised(b) for b in book}
    out = set()
    for i, cell in enumerate(cells):
        source = str(cell.get("source", ""))
        tags = (cell.get("metadata") or {}).get("tags") or []
        if "solution" in tags or _TITLE.match(source) or (known and _normalised(source) in known):
            out.add(i)
    return frozenset(out)


def _book_solution_sources(chapter: str) -> list[str]:
    """The solution cells of the book's own notebook for ``chapter`` (the one that imports its exercises as
    ``ex``), where this checkout has ``notebooks/``; else none (an installed package has no notebooks)."""
    import nbformat

    import resnet_lab

    folder = Path(resnet_lab.__file__).resolve().parent.parent / "notebooks"
    for path in sorted(folder.glob("*.ipynb")):
        text = path.read_text(encoding="utf-8")
        if f"from resnet_lab.exercises import {chapter} as ex" in text:
            nb = nbformat.reads(text, as_version=4)
            return [c.source for c in nb.cells if "solution" in c.metadata.get("tags", [])]
    return []


def _cell_label(index: int, sources: Sequence[str]) -> str:
    """``cell 12 (`first line`)``: 1-based, as counted in the notebook, with the first line of code."""
    lines = [line.strip() for line in (sources[index] if index < len(sources) else "").splitlines() if line.strip()]
    first = lines[0] if lines else ""
    return f"cell {index + 1}" + (f" (`{first[:60]}{'...' if len(first) > 60 else ''}`)" if first else "")


@dataclass
class Outcome:
    """One exercise of one student: its status, the checker's message, the first hint level, attempts."""

    name: str
    status: str
    message: str = ""
    hint: str = ""
    attempts: int = 0
    text: str | None = None

    @property
    def counts(self) -> bool:
        """Correct, or (written) answered."""
        return self.status in ("correct", "answered")


def exercise_outcome(exercise: Exercise, cells: Sequence[int], runs: Mapping[int, CellRun], record: dict | None,
                     *, graded: bool, stopped: str = "", stopped_at: str = "", problem: str = "",
                     problem_status: str = "error", sources: Sequence[str] = (),
                     solutions: frozenset[int] = frozenset()) -> Outcome:  # fmt: skip
    """The status of one exercise from the cells that call it, what happened to them, and the grader's re-check.

    ``record`` is what the re-check printed for the exercise (None where it printed nothing); ``graded`` is
    False where no re-check ran at all (``problem`` says why; ``problem_status`` is the status then);
    ``stopped`` is ``"timeout"`` or ``"died"`` where the notebook stopped early, at ``stopped_at`` (a cell
    label). The exercise's *last* check cell decides: raised -> error; did not run -> timed out (or error
    where the kernel died); no cell -> missing; else the re-check: correct / answered / not yet.
    """
    attempts = int(record.get("attempts", 0) or 0) if record else 0
    level1 = str(record.get("hint1", "") or "") if record else ""

    def out(status: str, message: str, hint: str = level1) -> Outcome:
        return Outcome(exercise.name, status, message, "" if status in ("correct", "answered") else hint, attempts)

    recorded = bool(record and record.get("recorded"))
    last = cells[-1] if cells else None
    if last is None and not recorded:
        return out("missing", f"No cell calls ex.{exercise.name}(...): the exercise's cell is not in the notebook.")
    run = runs.get(last) if last is not None else None
    where = _cell_label(last, sources) if last is not None else ""
    if run is not None and run.state == "error":
        return out("error", f"{where} raised {run.error}")
    if run is not None and run.state == "timeout":
        return out("timed out", f"The time limit ran out in {where}, this exercise's cell.")
    if run is not None and run.state == "died":
        return out("error", f"The kernel died in {where}, this exercise's cell.")
    if last is not None and (run is None or run.state == "not run"):
        if stopped == "died":
            return out("error", f"The kernel died in {stopped_at}, before {where} ran.")
        if stopped == "timeout":
            return out("timed out", f"The time limit ran out in {stopped_at}, before {where} ran.")
    if not graded:
        return out(problem_status, problem)
    if not recorded:
        return out("not yet", f"{where} ran, but no answer reached the book's checker: call ex.{exercise.name}(...) "
                              "on your answer.")  # fmt: skip
    assert record is not None
    if record.get("grading_error"):
        return out("error", f"The grader could not re-check the answer: {record['grading_error']}")
    message = str(record.get("message", ""))
    if record.get("note"):
        message = f"{message} {record['note']}".strip()
    result = out("not yet", message, str(record.get("hint", "") or level1))
    if record.get("correct"):
        result = out("answered" if exercise.kind == "written" else "correct", message)
    elif record.get("book_code"):
        result.status = "not yet (book code)"
    if result.counts and last in solutions:
        result.status = "not yet (book solution)"
        result.message = (f"Not counted: {where} is the book's own solution cell (from the full edition, not the "
                          "student edition); answer in the exercise's own cell.")  # fmt: skip
    if exercise.kind == "written" and isinstance(record.get("text"), str):
        result.text = record["text"]
    return result


# --- Running one notebook ---------------------------------------------------------------------------


def kernel_env(profile: str, runs_dir: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The kernel's environment: the grader's, less ``RESNET_LAB_*`` other than :data:`PASSED_ON`, with the
    profile, a fresh run folder and ``MPLBACKEND=Agg``."""
    base = settings.child_environment() if base is None else base
    env = {k: v for k, v in base.items() if not k.startswith("RESNET_LAB_") or k in PASSED_ON}
    env.update(RESNET_LAB_PROFILE=profile, RESNET_LAB_RUNS=str(runs_dir), MPLBACKEND="Agg")
    return env


def force_profile(sources: list[str], profile: str) -> str | None:
    """Make every ``os.environ["RESNET_LAB_PROFILE"] = "..."`` line in ``sources`` (edited in place) set
    ``profile``; return the profile the notebook set, where it set another, else None."""
    other = None
    for i, source in enumerate(sources):
        for match in _PROFILE_LINE.finditer(source):
            if match.group(4) != profile:
                other = match.group(4)
        sources[i] = _PROFILE_LINE.sub(lambda m: f"{m.group(1)}{m.group(3)}{profile}{m.group(3)}", source)
    return other


def _kernel_grade(chapter, module_name, package_dir, out_path, check_limit):
    """Run in the student's kernel after the notebook (sent as source): re-check every exercise of ``chapter``
    on the recorded answers with freshly imported checkers; write one JSON line per exercise to ``out_path``."""
    import builtins
    import importlib
    import json
    import math
    import os
    import pickle
    import signal
    import sys

    import torch
    import torch.nn.functional as F
    from torch import nn

    def table(engine, name):
        try:
            items = dict(getattr(engine, name, None) or {}).items()
            return {k[1]: v for k, v in items if isinstance(k, tuple) and len(k) == 2 and k[0] == chapter}
        except Exception:  # noqa: BLE001
            return {}

    old = sys.modules.get("resnet_lab.exercises.engine")
    answers, attempts = table(old, "ANSWERS"), table(old, "ATTEMPTS")
    patched = []
    spaces = (("torch", torch), ("torch.nn", nn), ("torch.nn.functional", F), ("torch.Tensor", torch.Tensor),
              ("nn.Module", nn.Module), ("math", math), ("builtins", builtins), ("json", json),
              ("pickle", pickle))  # fmt: skip
    for label, space in spaces:
        for key, value in list(vars(space).items()):
            try:
                if getattr(value, "__module__", None) == "__main__":
                    patched.append(f"{label}.{key}")
            except Exception:  # noqa: BLE001
                patched.append(f"{label}.{key}")

    def dump(value):  # before the purge: pickle names each book class, resolved to the fresh one by fresh()
        try:
            return (pickle.dumps(value), value)
        except Exception:  # noqa: BLE001 - unpicklable answers are checked as they are
            return (None, value)

    def fresh(dumped):
        try:
            return pickle.loads(dumped[0]) if dumped[0] is not None else dumped[1]
        except Exception:  # noqa: BLE001
            return dumped[1]

    dumped = {}
    for name, answer in answers.items():
        try:
            args, kwargs = answer
            dumped[name] = ([dump(a) for a in args], {str(k): dump(v) for k, v in dict(kwargs).items()})
        except Exception as exc:  # noqa: BLE001
            dumped[name] = exc
    for name in [m for m in list(sys.modules) if m == "resnet_lab" or m.startswith("resnet_lab.")]:
        del sys.modules[name]
    importlib.invalidate_caches()
    sys.path.insert(0, package_dir)
    module = importlib.import_module(module_name)
    engine = importlib.import_module("resnet_lab.exercises.engine")
    origin = os.path.realpath(module.__file__)
    if not origin.startswith(os.path.join(os.path.realpath(package_dir), "resnet_lab") + os.sep):
        raise ImportError(f"the exercises were imported from {origin}, not from the grader's {package_dir}")

    class Overtime(BaseException):
        pass

    def alarm(signum, frame):
        raise Overtime()

    try:
        signal.signal(signal.SIGALRM, alarm)
        use_alarm = True
    except (AttributeError, ValueError):
        use_alarm = False
    with open(out_path, "w", encoding="utf-8") as out:
        out.write(json.dumps({"patched": patched}) + "\n")
        for (ch, name), (_title, kind) in list(engine.EXERCISES.items()):
            if ch != chapter:
                continue
            rec = {"name": name, "attempts": int(attempts.get(name, 0) or 0), "recorded": name in answers}
            try:
                rec["hint1"] = str(engine.hint(name, level=1, chapter=chapter))
            except Exception:  # noqa: BLE001
                rec["hint1"] = ""
            if name in answers:
                try:
                    if isinstance(dumped[name], Exception):
                        raise dumped[name]
                    args = tuple(fresh(a) for a in dumped[name][0])
                    kwargs = {k: fresh(v) for k, v in dumped[name][1].items()}
                    if kind == "written":
                        text = args[0] if args else kwargs.get("answer")
                        rec["text"] = text if isinstance(text, str) else repr(text)[:2000]
                    engine.ANSWERS[(chapter, name)] = (args, kwargs)
                    if use_alarm:
                        signal.setitimer(signal.ITIMER_REAL, check_limit)
                    try:
                        if hasattr(engine, "recheck"):
                            feedback = engine.recheck(chapter, name)
                        else:
                            feedback = getattr(module, name)(*args, **kwargs)
                    finally:
                        if use_alarm:
                            signal.setitimer(signal.ITIMER_REAL, 0)
                    hints = getattr(feedback, "hints", None)
                    rec.update(correct=bool(feedback.correct), message=str(feedback.message),
                               book_code=bool(getattr(feedback, "book_code", False)),
                               note=str(getattr(feedback, "note", "") or ""),
                               hint=str(hints[0]) if hints else str(getattr(feedback, "hint", "") or ""))  # fmt: skip
                except Overtime:
                    rec["grading_error"] = f"re-checking the answer took over {check_limit:g} s"
                except Exception as exc:  # noqa: BLE001
                    rec["grading_error"] = f"{type(exc).__name__}: {str(exc)[:300]}"
            out.write(json.dumps(rec, default=str) + "\n")
            out.flush()
        out.write(json.dumps({"done": True}) + "\n")


def _grading_source(chapter: str, module_name: str, package_dir: str, out_path: str, check_limit: float) -> str:
    """The grading cell: :func:`_kernel_grade`'s source, run in its own namespace (not the student's)."""
    call = f"_kernel_grade({chapter!r}, {module_name!r}, {package_dir!r}, {out_path!r}, {float(check_limit)!r})"
    code = inspect.getsource(_kernel_grade) + "\n" + call + "\n"
    return f"exec(compile({code!r}, '<resnet-lab-grader>', 'exec'), {{'__name__': 'resnet_lab_grader'}})"


def _first_error(cell) -> str:
    """The first error a cell's outputs show, as ``Name: message`` (first line), or ""."""
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            value = (str(output.get("evalue", "")).splitlines() or [""])[0]
            return f"{output.get('ename', 'Error')}: {value}".rstrip(": ")
    return ""


@dataclass
class _Execution:
    runs: dict[int, CellRun] = field(default_factory=dict)
    stopped: str = ""  # "", "timeout" or "died"
    stopped_cell: int | None = None
    graded: bool = False
    problem: str = ""


def _cancel_pending() -> None:
    """Cancel what nbclient left waiting in this thread's event loop after a timeout (the interrupted cell's
    output reader, which would otherwise read the next cell's messages)."""
    import asyncio

    from jupyter_core.utils import ensure_event_loop

    loop = ensure_event_loop()
    if loop.is_running():
        return
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in pending:
        task.cancel()
    if pending:
        loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))


async def _wait(value):
    return await value


def _run_sync_awaitable(value: object) -> None:
    """Wait for ``value`` where it is awaitable (the async kernel manager's methods), outside any event loop."""
    if inspect.isawaitable(value):
        from jupyter_core.utils import run_sync

        run_sync(_wait)(value)


def _execute(nb, workdir: Path, env: dict[str, str], deadline: float, grade_timeout: float, grading: str,
             stop: int | None = None) -> _Execution:  # fmt: skip
    """Run ``nb``'s code cells (those before ``stop``) in a fresh kernel until ``deadline`` (monotonic), then
    the grading cell; never raises."""
    from nbclient import NotebookClient
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    result = _Execution()
    client = NotebookClient(nb, kernel_name="python3", allow_errors=True, interrupt_on_timeout=False,
                            shutdown_kernel="immediate", startup_timeout=120,
                            resources={"metadata": {"path": str(workdir)}})  # fmt: skip
    code = [i for i, c in enumerate(nb.cells) if c.get("cell_type") == "code" and (stop is None or i < stop)]
    try:
        with client.setup_kernel(env=env):
            for i in code:
                left = deadline - time.monotonic()
                if left < 1:
                    result.stopped, result.stopped_cell = "timeout", i
                    break
                client.timeout = max(1, math.ceil(left))
                try:
                    client.execute_cell(nb.cells[i], i)
                except CellTimeoutError:
                    result.runs[i] = CellRun("timeout")
                    result.stopped, result.stopped_cell = "timeout", i
                    _cancel_pending()
                    _run_sync_awaitable(client.km.interrupt_kernel())
                    time.sleep(1)  # let the interrupt land before the grading cell is sent
                    break
                except DeadKernelError:
                    result.runs[i] = CellRun("died")
                    result.stopped, result.stopped_cell = "died", i
                    break
                error = _first_error(nb.cells[i])
                result.runs[i] = CellRun("error", error) if error else CellRun("ok")
            if result.stopped != "died":
                import nbformat

                cell = nbformat.v4.new_code_cell(grading)
                nb.cells.append(cell)
                client.timeout = max(1, math.ceil(grade_timeout))
                try:
                    client.execute_cell(cell, len(nb.cells) - 1)
                    error = _first_error(cell)
                    result.graded, result.problem = not error, f"The grader's re-check failed: {error}" if error else ""
                except CellTimeoutError:
                    result.problem = (f"The grader's re-check did not finish in {grade_timeout:g} s"
                                      + (" (the kernel did not stop when interrupted)."
                                         if result.stopped == "timeout" else "."))  # fmt: skip
                except DeadKernelError:
                    result.problem = "The kernel died during the grader's re-check."
                finally:
                    nb.cells.remove(cell)
    except Exception as exc:  # noqa: BLE001 - one notebook never stops the batch
        result.problem = f"The kernel could not run the notebook: {type(exc).__name__}: {str(exc)[:200]}"
    for i in code:
        result.runs.setdefault(i, CellRun("not run"))
    return result


def _read_records(path: Path) -> tuple[dict[str, dict], list[str], bool]:
    """The grading cell's file: records by exercise, names of patched functions, whether it finished."""
    records: dict[str, dict] = {}
    patched: list[str] = []
    done = False
    if not path.exists():
        return records, patched, done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue
        if "patched" in item:
            patched = [str(p) for p in item["patched"]]
        elif item.get("done"):
            done = True
        elif "name" in item:
            records[str(item["name"])] = item
    return records, patched, done


@dataclass
class Graded:
    """One student's result: an outcome per exercise, the seconds it took, a note on the notebook."""

    student: str
    path: Path | None
    outcomes: list[Outcome]
    seconds: float = 0.0
    note: str = ""
    executed: object = None  # the notebook as it ran (nbformat.NotebookNode), None where it did not

    @property
    def score(self) -> int:
        return sum(o.counts for o in self.outcomes)


def _everything(exercises: Sequence[Exercise], status: str, message: str) -> list[Outcome]:
    return [Outcome(e.name, status, message) for e in exercises]


def grade_notebook(student: str, path: Path | None, chapter: str, module_name: str, exercises: Sequence[Exercise],
                   *, profile: str = "smoke", timeout: float = 600, grade_timeout: float = 180,
                   check_limit: float = 60, student_folder: Path | None = None, note: str = "") -> Graded:  # fmt: skip
    """Run one submission and re-check its exercises (see the module's docstring); never raises.

    ``student_folder``, for a submission in a per-student folder, is copied whole, and the notebook runs in
    its copy's sub-folder where the notebook is; else the notebook alone is copied into an empty folder.
    """
    import nbformat

    start = time.monotonic()
    notes = [note] if note else []

    def finish(outcomes: list[Outcome], executed=None) -> Graded:
        return Graded(student, path, outcomes, time.monotonic() - start, "; ".join(n for n in notes if n), executed)

    if path is None:
        return finish(_everything(exercises, "missing", "No notebook was submitted."))
    try:
        nb = nbformat.reads(path.read_text(encoding="utf-8"), as_version=4)
        if not isinstance(nb.get("cells"), list):
            raise ValueError("it has no list of cells")
        for cell in nb.cells:
            if isinstance(cell.get("source"), list):
                cell["source"] = "".join(cell["source"])
            cell.setdefault("source", "")
            cell.setdefault("metadata", {})
            if cell.get("cell_type") == "code":
                cell.setdefault("outputs", [])
                cell.setdefault("execution_count", None)
    except Exception as exc:  # noqa: BLE001
        text = (str(exc).splitlines() or [""])[0][:200]
        notes.append(f"not a readable notebook ({type(exc).__name__}: {text})")
        return finish(_everything(exercises, "error", f"The notebook could not be read: {type(exc).__name__}: {text}"))
    sources = [str(c.get("source", "")) for c in nb.cells]
    other = force_profile(sources, profile)
    for cell, source in zip(nb.cells, sources):
        cell["source"] = source
    if other:
        notes.append(f"the set-up cell's profile {other!r} was replaced by {profile!r}")
    original = nbformat.from_dict(nb)
    import resnet_lab

    package_dir = str(Path(resnet_lab.__file__).resolve().parent.parent)
    with tempfile.TemporaryDirectory(prefix="resnet-lab-grade-") as tmp:
        root = Path(tmp)
        workdir = root / "work"
        if student_folder is not None:
            shutil.copytree(student_folder, workdir, ignore=shutil.ignore_patterns(".*"))
            workdir = workdir / path.parent.relative_to(student_folder)
        else:
            workdir.mkdir()
            shutil.copy2(path, workdir / path.name)
        (root / "runs").mkdir()
        env = kernel_env(profile, root / "runs")
        out_path = root / "grade.jsonl"
        grading = _grading_source(chapter, module_name, package_dir, str(out_path), check_limit)
        deadline = start + timeout
        run = _execute(nb, workdir, env, deadline, grade_timeout, grading)
        executed = nb
        if run.stopped == "died" and run.stopped_cell is not None and deadline - time.monotonic() > 5:
            # Run the cells before the one that killed the kernel again in a fresh kernel, and grade those.
            died = run.stopped_cell
            notes.append(f"the kernel died in {_cell_label(died, sources)}; the cells before it were run again in "
                         "a fresh kernel and graded")  # fmt: skip
            retry_nb = nbformat.from_dict(original)
            retry = _execute(retry_nb, workdir, env, deadline, grade_timeout, grading, stop=died)
            retry.runs.update({i: r for i, r in run.runs.items() if i >= died})
            if not retry.stopped:
                retry.stopped, retry.stopped_cell = "died", died
            run, executed = retry, retry_nb
        elif run.stopped == "died" and run.stopped_cell is not None:
            notes.append(f"the kernel died in {_cell_label(run.stopped_cell, sources)}")
        if run.stopped == "timeout":
            at = _cell_label(run.stopped_cell, sources) if run.stopped_cell is not None else "the notebook"
            notes.append(f"timed out after {timeout:g} s in {at}")
        records, patched, done = _read_records(out_path)
    if run.problem:
        notes.append(run.problem[0].lower() + run.problem[1:].rstrip("."))
    graded = run.graded or bool(records)
    cells = check_cells(sources, [e.name for e in exercises])
    solutions = book_solutions(original.cells, _book_solution_sources(chapter))
    stopped_at = _cell_label(run.stopped_cell, sources) if run.stopped_cell is not None else ""
    problem_status = "timed out" if run.stopped == "timeout" else "error"
    outcomes = []
    for exercise in exercises:
        record = records.get(exercise.name)
        if graded and record is None and not done:
            record = {"recorded": True, "grading_error": run.problem or "the re-check stopped before this exercise"}
        outcomes.append(exercise_outcome(exercise, cells[exercise.name], run.runs, record, graded=graded,
                                         stopped=run.stopped, stopped_at=stopped_at,
                                         problem=run.problem or "The notebook could not be graded.",
                                         problem_status=problem_status, sources=sources,
                                         solutions=solutions))  # fmt: skip
    if patched:
        shown = ", ".join(patched[:5]) + (f" and {len(patched) - 5} more" if len(patched) > 5 else "")
        notes.append(f"the notebook replaced {shown} with its own code")
        for outcome in outcomes:
            if outcome.counts:
                outcome.status = "not yet (patched)"
                outcome.message = (f"Not counted: the notebook replaced {shown} with its own code, so its checks "
                                   "cannot be trusted.")  # fmt: skip
    return finish(outcomes, executed)


# --- Writing the results ------------------------------------------------------------------------------


def _safe(student: str) -> str:
    return re.sub(r"[^\w.-]+", "_", student).strip("._") or "student"


def write_gradebook(results: Sequence[Graded], exercises: Sequence[Exercise], path: Path) -> None:
    """``gradebook.csv``: student, file, correct (count correct or answered), of, seconds, note, then one
    status column per exercise (named by the exercise) and one attempts column per exercise."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "file", "correct", "of", "seconds", "note",
                         *(e.name for e in exercises), *(f"{e.name} attempts" for e in exercises)])  # fmt: skip
        for r in results:
            by_name = {o.name: o for o in r.outcomes}
            writer.writerow([r.student, r.path.name if r.path else "", r.score, len(exercises), f"{r.seconds:.1f}",
                             r.note, *(by_name[e.name].status for e in exercises),
                             *(by_name[e.name].attempts for e in exercises)])  # fmt: skip


def write_written(results: Sequence[Graded], exercises: Sequence[Exercise], path: Path) -> None:
    """``written.csv``: student, exercise, title, text, one row per written answer given (to grade by hand)."""
    titles = {e.name: e.title for e in exercises}
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "exercise", "title", "text"])
        for r in results:
            for o in r.outcomes:
                if o.text is not None:
                    writer.writerow([r.student, o.name, titles.get(o.name, ""), o.text])


def feedback_markdown(result: Graded, exercises: Sequence[Exercise], chapter: str, profile: str) -> str:
    """One student's feedback: the summary, then each exercise's status, the checker's message and (where not
    correct) the first hint level."""
    by_name = {o.name: o for o in result.outcomes}
    lines = [f"# Feedback for {result.student}: chapter {chapter!r}", "",
             f"{result.score} of {len(exercises)} exercises correct (written answers: answered, graded by their "
             f"rubric). The notebook ran from top to bottom in a fresh kernel under the {profile!r} profile, and "
             "every exercise was checked again on the answer its cell gave.", ""]  # fmt: skip
    if result.note:
        lines += [f"Note: {result.note}.", ""]
    for number, exercise in enumerate(exercises, 1):
        o = by_name[exercise.name]
        lines += [f"## {number}. {exercise.title}: {o.status}", ""]
        if o.message:
            lines += [o.message, ""]
        if o.hint and not o.counts:
            lines += [f"Hint: {o.hint}", ""]
    return "\n".join(lines).rstrip() + "\n"


_README = """# Gradebook of chapter {chapter!r}

Graded {date} with `{command}`: profile `{profile}`, at most {timeout:g} s per notebook to run
its cells, then at most {grade_timeout:g} s to re-check its exercises.

- `gradebook.csv`: one row per student. `correct` counts exercises correct (and written ones
  answered) of `of`; `seconds` is the notebook's wall time; `note` says what happened to the
  notebook as a whole (timed out, kernel died, unreadable, a profile replaced, ...). One column
  per exercise holds its status:
  - `correct` / `answered` (written: graded by its rubric, by you, from `written.csv`);
  - `not yet`, or `not yet (book code)` where the answer was the book's own code;
  - `error`: its check cell raised, the kernel died before it ran, or the notebook is unreadable;
  - `timed out`: the time limit ran out in or before its check cell;
  - `missing`: no cell calls the exercise's checker (the cell was deleted).
  The `<exercise> attempts` columns count the checker's calls in this graded run of the
  notebook (top to bottom, once), not the student's tries in their own session.
- `written.csv`: the text of each written answer (student, exercise, title, text).
- `feedback/<student>.md`: each exercise's status, the checker's message, the first hint level.
- `executed/<student>.ipynb`: the notebook as it ran here, with its outputs.

Exercises:

{exercises}
"""


def _write_student(result: Graded, exercises: Sequence[Exercise], chapter: str, profile: str, out: Path) -> None:
    """Write one student's feedback and executed notebook as soon as they are graded (then let the notebook go)."""
    import nbformat

    name = _safe(result.student)
    (out / "feedback" / f"{name}.md").write_text(feedback_markdown(result, exercises, chapter, profile),
                                                 encoding="utf-8")  # fmt: skip
    if result.executed is not None:
        try:
            nbformat.write(result.executed, out / "executed" / f"{name}.ipynb")
        except Exception:  # noqa: BLE001 - a notebook nbformat cannot write is still graded
            pass
        result.executed = None


def grade_folder(folder: Path, chapter: str, out: Path | None = None, *, profile: str = "smoke",
                 timeout: float = 600, grade_timeout: float = 180, check_limit: float = 60, jobs: int = 1,
                 log=print) -> list[Graded]:  # fmt: skip
    """Grade every submission in ``folder`` and write the results to ``out``; return them, sorted by student."""
    folder = Path(folder)
    out = Path(out) if out is not None else folder.parent / f"{folder.name}-graded"
    key, module_name, exercises = chapter_exercises(chapter)
    submissions = find_submissions(folder, key, exclude=[out])
    lock = threading.Lock()
    started = time.monotonic()
    (out / "feedback").mkdir(parents=True, exist_ok=True)
    (out / "executed").mkdir(exist_ok=True)

    def one(item: tuple[str, Path | None, str]) -> Graded:
        student, path, note = item
        nested = path is not None and path.parent.resolve() != folder.resolve()
        student_folder = folder / path.relative_to(folder).parts[0] if nested and path is not None else None
        result = grade_notebook(student, path, key, module_name, exercises, profile=profile, timeout=timeout,
                                grade_timeout=grade_timeout, check_limit=check_limit,
                                student_folder=student_folder, note=note)  # fmt: skip
        _write_student(result, exercises, key, profile, out)
        counts = {}
        for o in result.outcomes:
            counts[o.status] = counts.get(o.status, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in counts.items())
        with lock:
            log(f"{student}: {result.score}/{len(exercises)} correct ({summary}) in {result.seconds:.1f} s"
                + (f"; {result.note}" if result.note else ""))  # fmt: skip
        return result

    if jobs <= 1:
        results = [one(item) for item in submissions]
    else:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            results = [f.result() for f in as_completed([pool.submit(one, item) for item in submissions])]
    results.sort(key=lambda r: r.student)
    total = time.monotonic() - started
    write_gradebook(results, exercises, out / "gradebook.csv")
    write_written(results, exercises, out / "written.csv")
    listing = "\n".join(f"- `{e.name}` ({e.kind}): {e.title}" for e in exercises)
    command = " ".join(["python -m resnet_lab.grade", str(folder), "--chapter", key, "--profile", profile,
                        "--timeout", f"{timeout:g}"])  # fmt: skip
    date = datetime.now().strftime("%Y-%m-%d %H:%M")
    readme = _README.format(chapter=key, date=date, command=command, profile=profile, timeout=timeout,
                            grade_timeout=grade_timeout, exercises=listing)  # fmt: skip
    (out / "README.md").write_text(readme, encoding="utf-8")
    log(f"graded {len(results)} notebooks in {total:.0f} s"
        + (f" ({total / len(results):.0f} s per notebook, {jobs} at a time)" if results else "")
        + f"; wrote {out / 'gradebook.csv'}, {out / 'written.csv'}, {out / 'feedback'}/")  # fmt: skip
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """The command line (see the module's docstring)."""
    prog = "resnet-lab-grade" if Path(sys.argv[0]).name == "resnet-lab-grade" else "python -m resnet_lab.grade"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("submissions", type=Path, help="a folder of notebooks, or of one folder per student")
    parser.add_argument("--chapter", required=True, help="the chapter: tracing, degradation, residual, fashion, "
                        "cifar, beyond, transfer or keras (or a notebook's number)")  # fmt: skip
    parser.add_argument("--profile", default="smoke", help="the profile the notebooks run under (default: smoke)")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per notebook to run its cells (600)")
    parser.add_argument("--grade-timeout", type=float, default=180,
                        help="seconds per notebook to re-check its exercises afterwards (180)")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=1, help="notebooks run at the same time (1)")
    parser.add_argument("--out", type=Path, default=None, help="where to write (default: SUBMISSIONS-graded)")
    args = parser.parse_args(argv)
    try:
        import ipykernel  # noqa: F401
        import nbclient  # noqa: F401
    except ImportError as error:
        parser.error(f"the grader runs notebooks with nbclient and ipykernel: pip install nbclient ipykernel ({error})")
    if not args.submissions.is_dir():
        parser.error(f"{args.submissions} is not a folder")
    from .profiles import PROFILES

    if args.profile not in PROFILES:
        parser.error(f"unknown profile {args.profile!r}: expected one of {', '.join(PROFILES)}")
    try:
        _chapter_module_name(args.chapter)
    except ValueError as error:
        parser.error(str(error))
    grade_folder(args.submissions, args.chapter, args.out, profile=args.profile, timeout=args.timeout,
                 grade_timeout=args.grade_timeout, jobs=max(1, args.jobs))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Settings: every RESNET_LAB_* variable is read in resnet_lab.settings and nowhere else."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from resnet_lab import settings

PACKAGE = Path(__file__).resolve().parents[1] / "resnet_lab"


def _sources():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path, ast.parse(path.read_text(), str(path))


def test_only_settings_reads_the_environment():
    readers = []
    for path, tree in _sources():
        if path.name == "settings.py":
            continue
        for node in ast.walk(tree):
            reads = (isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv")
                     and isinstance(node.value, ast.Name) and node.value.id == "os")  # fmt: skip
            if reads and not _is_assignment_target(tree, node):
                readers.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert not readers, f"environment read outside resnet_lab/settings.py: {readers}"


def _is_assignment_target(tree: ast.AST, attr: ast.Attribute) -> bool:
    """``os.environ[...] = value`` writes (Keras' backend), it does not read."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Subscript) and target.value is attr:
                    return True
    return False


def test_no_private_name_is_imported_across_modules():
    found = []
    for path, tree in _sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in ("", "resnet_lab"):
                found += [f"{path.relative_to(PACKAGE)}:{node.lineno} {a.name}" for a in node.names
                          if a.name.startswith("_") and a.name != "__version__"]  # fmt: skip
            if isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                base = node.value
                if isinstance(base, ast.Name) and base.id in ("M", "dev", "S", "models", "settings", "chapters"):
                    found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {base.id}.{node.attr}")
    assert not found, f"private names used across modules: {found}"


def test_the_readme_documents_every_variable():
    readme = (PACKAGE.parent / "README.md").read_text()
    for name in settings.VARIABLES:
        assert f"`{name}`" in readme, f"{name} is not in the README's table"


def test_variables_are_read_when_called(monkeypatch, tmp_path):
    for name in settings.VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert (settings.profile_name(), settings.runs_folder(), settings.data_root(), settings.cap()) == (None,) * 4
    assert settings.transfer_mode() == "auto" and settings.full_schedule() is False
    monkeypatch.setenv("RESNET_LAB_PROFILE", " GPU ")
    monkeypatch.setenv("RESNET_LAB_RUNS", str(tmp_path))
    monkeypatch.setenv("RESNET_LAB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("RESNET_LAB_CAP", "64,1")
    monkeypatch.setenv("RESNET_LAB_TRANSFER", "offline")
    monkeypatch.setenv("RESNET_LAB_FULL_SCHEDULE", "Yes")
    assert settings.full_schedule() is True
    assert settings.profile_name() == "gpu" and settings.runs_folder() == tmp_path
    assert settings.data_root() == tmp_path / "data" and settings.cap() == (64, 1)
    assert settings.transfer_mode() == "offline"


def test_a_bad_transfer_mode_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("RESNET_LAB_TRANSFER", "sometimes")
    with pytest.raises(ValueError, match=r"RESNET_LAB_TRANSFER must be one of \('auto', 'offline'\), got 'sometimes'"):
        settings.transfer_mode()


@pytest.mark.parametrize(("value", "full"), [("1", True), ("true", True), ("0", False), ("off", False), ("", False)])
def test_full_schedule_reads_yes_and_no(monkeypatch, value, full):
    monkeypatch.setenv("RESNET_LAB_FULL_SCHEDULE", value)
    assert settings.full_schedule() is full


def test_a_bad_full_schedule_value_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("RESNET_LAB_FULL_SCHEDULE", "always")
    with pytest.raises(ValueError, match=r"RESNET_LAB_FULL_SCHEDULE must be 1 .* or 0 .*, got 'always'"):
        settings.full_schedule()

"""Small helpers for authoring chapter notebooks with nbformat (used by hand, not at run time)."""

from __future__ import annotations

from pathlib import Path

import nbformat
import yaml

REPO = Path(__file__).resolve().parents[1]


def repository_url() -> str:
    """The repository URL set once in _config.yml."""
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    url = (config.get("repository") or {}).get("url")
    if not url:
        raise ValueError("_config.yml has no repository.url")
    return url


def colab_cell_source(url: str | None = None) -> str:
    url = url or repository_url()
    return (
        "# Colab set-up: install resnet_lab and d2l there; does nothing anywhere else.\n"
        "import sys\n"
        "\n"
        'if "google.colab" in sys.modules:\n'
        f'    !pip install -q "resnet-lab @ git+{url}"\n'
        "    !pip install -q --no-deps d2l==1.0.3  # without its old pins, which break numpy"
    )


def new_notebook(cells: list[tuple[str, str, list[str]]]) -> nbformat.NotebookNode:
    """cells: (kind, source, tags) with kind 'md' or 'code'."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, source, tags in cells:
        cell = nbformat.v4.new_markdown_cell(source) if kind == "md" else nbformat.v4.new_code_cell(source)
        if tags:
            cell.metadata["tags"] = tags
        nb.cells.append(cell)
    return nb


def set_colab_url(path: Path, url: str | None = None) -> bool:
    """Rewrite the first code cell of a notebook with the configured URL. True if it changed."""
    nb = nbformat.read(path, as_version=4)
    first = next(c for c in nb.cells if c.cell_type == "code")
    new = colab_cell_source(url)
    if first.source == new:
        return False
    first.source = new
    nbformat.write(nb, path)
    return True


if __name__ == "__main__":
    for nb_path in sorted((REPO / "notebooks").glob("*.ipynb")):
        if set_colab_url(nb_path):
            print(f"updated {nb_path.relative_to(REPO)}")

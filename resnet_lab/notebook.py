"""Helpers that every chapter notebook calls: the set-up cell, figure style, source display, the tracer widget.

``setup()`` is the banner cell of every chapter: it prints the profile in
force, the device, and the torch and resnet_lab versions, applies the
book's figure style (fonts as large as the page's text at the column's
width), lets tables show long cells whole, seeds torch, and returns the :class:`~resnet_lab.profiles.Profile`
whose sizes the chapter reads.
"""

from __future__ import annotations

import inspect

import torch

from .profiles import Profile, banner, get_profile

__all__ = ["setup", "FIGURE_STYLE", "show_source"]

#: Figures at most 7 inches wide at 100 dpi (700 px, the book's column) with
#: every text at 12 points (about 17 px, a little above the page's 16 px body
#: text), so nothing is scaled down in the page and no label is smaller than
#: the text around it.
FIGURE_STYLE = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 100,
    "savefig.dpi": 100,
    "font.size": 12,
    "axes.titlesize": 12,
    "axes.labelsize": 12,
    "xtick.labelsize": 12,
    "ytick.labelsize": 12,
    "legend.fontsize": 12,
    "legend.title_fontsize": 12,
    "lines.linewidth": 1.8,
}


def setup(profile: str | None = None, seed: int = 0) -> Profile:
    """Print the banner, apply the figure style, seed torch, and return the profile in force."""
    import matplotlib as mpl
    import pandas as pd

    chosen = get_profile(profile)
    mpl.rcParams.update(FIGURE_STYLE)
    pd.set_option("display.max_colwidth", None)  # tables show every cell whole, never "grad..."
    try:  # the inline backend keeps its own dpi for figures shown in a notebook
        from matplotlib_inline.backend_inline import set_matplotlib_formats

        set_matplotlib_formats("png")
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None:
            shell.run_line_magic("config", f"InlineBackend.rc = {FIGURE_STYLE!r}")
    except ImportError:
        pass
    torch.manual_seed(seed)
    print(banner(chosen))
    return chosen


def show_source(obj) -> object:
    """The source of a function or class from ``resnet_lab``, as highlighted code in a notebook."""
    from IPython.display import Code

    return Code(inspect.getsource(obj), language="python")

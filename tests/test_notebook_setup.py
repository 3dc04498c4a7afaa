"""The set-up cell every chapter starts with, and the tracer widget's model builder."""

from __future__ import annotations

import matplotlib as mpl
import pandas as pd
import pytest

from resnet_lab import notebook
from resnet_lab.chapters import tracing


def test_setup_prints_the_banner_styles_figures_and_tables_and_returns_the_profile(capsys, monkeypatch):
    monkeypatch.delenv("RESNET_LAB_CAP", raising=False)
    pd.reset_option("display.max_colwidth")
    profile = notebook.setup("smoke")
    assert profile.name == "smoke"
    assert "profile: smoke" in capsys.readouterr().out
    assert mpl.rcParams["font.size"] == notebook.FIGURE_STYLE["font.size"]
    long_cell = "SGD(weight_decay=wd): wd * w added to the gradient, coupled with momentum"
    assert long_cell in pd.DataFrame({"what": [long_cell]})._repr_html_()  # as a notebook shows it


def test_build_model_names_the_families_it_knows():
    assert tracing.build_model("CIFAR plain", 20).arch == "CIFAR plain-20"
    with pytest.raises(ValueError, match="family must be one of"):
        tracing.build_model("VGG", 16)

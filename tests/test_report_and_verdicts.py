"""The summary table, published figures kept apart, and every chapter's computed verdict."""

from __future__ import annotations

import matplotlib
import pytest
import torch

from resnet_lab import models as M
from resnet_lab import report as R
from resnet_lab import verdicts as V
from resnet_lab.chapters import beyond, cifar, degradation, transfer
from resnet_lab.history import RunKey
from tests.helpers import history

matplotlib.use("Agg")


def test_summary_table_has_tracer_macs_and_final_errors():
    runs = {"ResNet-20": history([0.5, 0.2], [0.6, 0.3], params=269_722, seconds=2.0),
            "ResNet-32": history([0.5, 0.1], [0.6, 0.25], params=464_154, seconds=3.0)}  # fmt: skip
    table = R.summary(runs, {"ResNet-20": M.resnet20(), "ResNet-32": M.resnet32()}, (3, 32, 32))
    assert table.loc["ResNet-20", "M MACs"] == 40.6 and table.loc["ResNet-32", "M MACs"] == 68.9
    assert table.loc["ResNet-32", "train error %"] == 10.0 and table.loc["ResNet-32", "test error %"] == 25.0
    assert table.loc["ResNet-20", "train time s"] == 4.0 and table.loc["ResNet-20", "params"] == 269_722


def test_summary_prints_counts_as_integers_and_a_dash_where_a_value_does_not_apply():
    probe = history([0.1], [0.3], params=272_474)
    probe.info.trainable = 325
    runs = {RunKey("from scratch", labels_per_class=10): history([0.1], [0.4], params=272_474),
            RunKey("linear probe", labels_per_class=10): probe}  # fmt: skip
    runs[RunKey("from scratch", labels_per_class=10)].info.trainable = 272_474
    table = R.summary(runs)
    assert list(table.index) == ["from scratch, 10/class", "linear probe, 10/class"]
    assert table.loc["linear probe, 10/class", "trainable"] == 325
    assert str(table["trainable"].dtype) == "int64" and "325.0" not in table.to_string()
    untested = history([0.2], params=1_000)
    untested.records[0].test_error = None
    table = R.summary({"a": untested, "b": history([0.2], params=2_000)})
    assert table.loc["a", "test error %"] == R.DASH and table.loc["b", "test error %"] == 20.0
    assert "NaN" not in table.to_string()


def test_summary_with_seeds_shows_mean_and_spread():
    runs = R.seed_runs([{"net": history([0.10])}, {"net": history([0.20])}])
    table = R.summary(runs)
    assert table.loc["net", "train error %"] == 15.0 and table.loc["net", "train ± (sd)"] == pytest.approx(7.07)
    assert table.loc["net", "seeds"] == 2


def test_published_figures_are_a_table_of_their_own():
    table = R.published_table(["ResNet-20", "CIFAR ResNet-18"])
    assert table.loc["ResNet-20", "He et al. 2015, Table 6"] == 8.75 and table.index.name == "test error % (theirs)"
    assert table.loc["CIFAR ResNet-18", "reproduction"] == 6.98
    assert table.loc["CIFAR ResNet-18", "He et al. 2015, Table 6"] == "—"  # the paper has no such net


def test_plot_curves_draws_one_panel_per_group():
    runs = {"plain-8": history([0.5, 0.4]), "residual-8": history([0.4, 0.3])}
    for h in runs.values():
        h.steps = [{"step": 5, "train_error": 0.5}, {"step": 10, "train_error": 0.4}]
    fig = R.plot_curves(runs, {"plain": ["plain-8"], "residual": ["residual-8"]})
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["plain-8"]
    assert [a.get_title() for a in fig.axes] == ["plain", "residual"]


def test_verdict_renders_as_text_and_markdown():
    v = V.Verdict(True, "word " * 40)
    assert max(map(len, str(v).splitlines())) <= 72 and v._repr_markdown_().startswith("**Shown.**")
    assert V.Verdict(None, "x")._repr_markdown_().startswith("**Undecided.**") and not V.Verdict(False, "x")


def _degradation(p20, r20, p56, r56):
    names = [("plain", 20), ("residual", 20), ("plain", 56), ("residual", 56)]
    per_seed = [{RunKey(k, d): history([e]) for (k, d), e in zip(names, errs)} for errs in zip(p20, r20, p56, r56)]
    return R.seed_runs(per_seed)


def test_degradation_verdict_reads_keys_not_labels():
    with pytest.raises(ValueError, match=r"no runs keyed RunKey\('plain', depth\)"):
        degradation.degradation_verdict({"plain-20": history([0.1]), "plain-56": history([0.2])})


def test_degradation_verdict_shown_with_seed_spread():
    v = degradation.degradation_verdict(_degradation([0.20, 0.22], [0.17, 0.17], [0.45, 0.43], [0.165, 0.16]))
    assert v.holds and v.text.startswith("Degradation shown: plain-56 ended with 44.0% ± 1.4 training error")
    assert "over 2 seeds" in v.text and "trained worse in every seed, by 21.0 to 25.0 points" in v.text
    assert "The deeper residual net ended 0.8 points below the shallower one on average." in v.text


def test_degradation_verdict_compares_seed_by_seed_when_one_deep_plain_run_never_trains():
    v = degradation.degradation_verdict(_degradation([0.23, 0.20], [0.17, 0.17], [0.88, 0.48], [0.164, 0.17]))
    assert v.holds and "plain-56 ended with 68.0% ± 28.3" in v.text and "by 28.0 to 65.0 points" in v.text


def test_degradation_verdict_says_when_depth_cost_the_residual_net_too():
    v = degradation.degradation_verdict(_degradation([0.19], [0.16], [0.39], [0.215]))
    assert not v.holds and "one seed" in v.text
    assert "5.5 points above the shallower one on average, more than the spread between seeds (0.5)" in v.text


def test_degradation_verdict_says_when_the_plain_nets_do_not_degrade():
    v = degradation.degradation_verdict(_degradation([0.10], [0.09], [0.11], [0.10]))
    assert not v.holds and "was not worse by more than 2 points in this run (1.0 points)" in v.text


def test_comparison_verdict_reports_cost_against_gain():
    runs = {"ResNet-20": history([0.1], [0.30], params=269_722, seconds=50),
            "ResNet-32": history([0.1], [0.28], params=464_154, seconds=80)}  # fmt: skip
    v = cifar.comparison_verdict(runs)
    assert v.holds and v.text.startswith("ResNet-32 reached the highest test accuracy, 72.0%")
    assert "1.7x the parameters" in v.text and "1.6x as long" in v.text and "2.0 points above" in v.text
    with pytest.raises(ValueError, match="at least 2 runs"):
        cifar.comparison_verdict({"a": history([0.1])})


def test_preact_and_zero_init_verdicts():
    v = beyond.preact_verdict({"post": history([0.1], [0.2]), "pre": history([0.1], [0.18])}, "post", "pre")
    assert v.holds and "lower by 2.0 points" in v.text and "One seed each" in v.text
    runs = {"zero": history([0.5, 0.3], losses=[1.0, 0.6]), "default": history([0.6, 0.4], losses=[1.2, 0.7])}
    runs["zero"].steps = [{"step": 1, "train_loss": 2.3}, {"step": 2, "train_loss": 1.1}]
    runs["default"].steps = [{"step": 1, "train_loss": 4.5}, {"step": 2, "train_loss": 1.3}]
    v = beyond.zero_init_verdict(runs, "zero", "default")
    assert v.holds and "epoch 1: 1.000 vs 1.200" in v.text and "lower in 2 of 2 epochs" in v.text
    assert "was 2.30 with zero-init and 4.50 without" in v.text


def test_lesion_verdict_contrasts_smooth_and_collapsing_nets():
    study = {"ResNet": {"intact": 0.10, "single": [0.11, 0.12, 0.10]},
             "plain": {"intact": 0.12, "single": [0.85, 0.90, 0.70]}}  # fmt: skip
    v = beyond.lesion_verdict(study, "ResNet", "plain")
    assert v.holds and "by 1.0 points on average" in v.text and "Worst single deletion in plain: 90.0%" in v.text
    flat = {"ResNet": study["ResNet"], "plain": {"intact": 0.12, "single": [0.13, 0.13, 0.13]}}
    assert not beyond.lesion_verdict(flat, "ResNet", "plain").holds


def test_landscape_verdict_counts_minima_and_edge_rise():
    x = torch.linspace(-1, 1, 7)
    bowl = x[None] ** 2 + x[:, None] ** 2
    rough = 3 * bowl + 0.5 * torch.sin(9 * x[None]) * torch.cos(9 * x[:, None])
    v = beyond.landscape_verdict({"res": bowl + 0.1, "plain": rough + 0.1}, "res", "plain")
    assert v.holds and "The plain net's surface is the steeper" in v.text and "local minima" in v.text


def test_transfer_verdict_compares_at_the_fewest_labels():
    runs = {RunKey(w, labels_per_class=k): history([0.0], [err]) for (w, k), err in {
        ("from scratch", 10): 0.50, ("linear probe", 10): 0.30, ("fine-tune", 10): 0.25,
        ("from scratch", 250): 0.15, ("linear probe", 250): 0.20, ("fine-tune", 250): 0.12}.items()}  # fmt: skip
    v = transfer.transfer_verdict(runs)
    assert v.holds and "fine-tune gained 25.0 points" in v.text and "With 250 labels per class" in v.text
    with pytest.raises(ValueError, match=r"run 'scratch' is not keyed RunKey\(way, labels_per_class=k\)"):
        transfer.transfer_verdict({"scratch": history([0.1])})

"""The summary table, published figures kept apart, and the verdicts of the chapters "The degradation
experiment" and "Training on CIFAR-10" (the rules themselves: test_verdicts.py; the beyond and transfer
chapters' verdicts: test_beyond.py and test_transfer.py)."""

from __future__ import annotations

import matplotlib
import pytest

from resnet_lab import models as M
from resnet_lab import report as R
from resnet_lab import verdicts as V
from resnet_lab.chapters import cifar, degradation
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


def _degradation(p20, r20, p56, r56, train_images=None):
    """Runs keyed like the chapter's: one history per seed, final training errors as given (fractions)."""
    names = [("plain", 20), ("residual", 20), ("plain", 56), ("residual", 56)]
    per_seed = [{RunKey(k, d): history([e]) for (k, d), e in zip(names, errs)} for errs in zip(p20, r20, p56, r56)]
    runs = R.seed_runs(per_seed)
    for hs in runs.values():
        for h in hs:
            h.info.train_images = train_images
    return runs


def _statuses(v):
    return {c.name: c.status for c in v.claims}


def test_degradation_verdict_reads_keys_not_labels():
    with pytest.raises(ValueError, match=r"no runs keyed RunKey\('plain', depth\)"):
        degradation.degradation_verdict({"plain-20": history([0.1]), "plain-56": history([0.2])})


def test_degradation_verdict_names_a_missing_run_and_needs_two_depths():
    runs = _degradation([0.2], [0.17], [0.45], [0.16], train_images=1_800)
    del runs[RunKey("residual", 56)]
    with pytest.raises(ValueError, match=r"no runs keyed \['residual-56'\]"):
        degradation.degradation_verdict(runs)
    with pytest.raises(ValueError, match=r"two depths or more to compare, got depths \[20\]"):
        degradation.degradation_verdict({RunKey("plain", 20): history([0.2]), RunKey("residual", 20): history([0.1])})


def test_degradation_verdict_with_seeds_decides_each_claim_on_paired_differences():
    # this chapter's cpu run: plain-56 far above plain-20 and residual-56 in both seeds, residual-56 above residual-20
    v = degradation.degradation_verdict(_degradation([0.195, 0.189], [0.162, 0.149], [0.391, 0.476], [0.169, 0.172]))
    assert _statuses(v) == {degradation.PLAIN_DEGRADES: V.SHOWN, degradation.DEEPER_RESIDUAL_BETTER: V.NOT_SHOWN,
                            degradation.RESIDUAL_FIXES: V.SHOWN}  # fmt: skip
    assert v.holds is False  # one claim not shown: the verdict says which
    plain = v.claim(degradation.PLAIN_DEGRADES).evidence
    assert plain["plain-56 - plain-20 training error per seed (points)"] == [19.6, 28.7]
    assert plain["mean"] == pytest.approx(24.15) and plain["seeds"] == 2
    deeper = v.claim(degradation.DEEPER_RESIDUAL_BETTER).evidence
    assert deeper["residual-20 - residual-56 training error per seed (points)"] == [-0.7, -2.3]
    fix = v.claim(degradation.RESIDUAL_FIXES).evidence
    assert fix["plain-56 - residual-56 training error per seed (points)"] == [22.2, 30.4]
    assert "43.3% ± 6.0" in v.text and "16.9% ± 0.2" not in v.text and "17.1% ± 0.2" in v.text


def test_degradation_verdict_all_shown_when_the_deeper_residual_net_also_ends_lower():
    v = degradation.degradation_verdict(_degradation([0.20, 0.22], [0.17, 0.17], [0.45, 0.43], [0.165, 0.16]))
    assert set(_statuses(v).values()) == {V.SHOWN} and v.holds is True


def test_degradation_verdict_with_seeds_that_disagree_is_undecided():
    # the deeper plain net is worse in one seed and better in the other
    v = degradation.degradation_verdict(_degradation([0.20, 0.30], [0.17, 0.17], [0.25, 0.25], [0.16, 0.16]))
    assert v.claim(degradation.PLAIN_DEGRADES).status == V.UNDECIDED and v.holds is None
    assert v.claim(degradation.PLAIN_DEGRADES).evidence["seeds"] == 2


def test_degradation_verdict_with_one_seed_is_undecided_on_every_claim():
    """A training error is a running average over the training set, not a sample: one seed decides nothing,
    however large the difference."""
    v = degradation.degradation_verdict(_degradation([0.19], [0.16], [0.39], [0.17], train_images=50_000))
    assert set(_statuses(v).values()) == {V.UNDECIDED} and v.holds is None
    ev = v.claim(degradation.PLAIN_DEGRADES).evidence
    assert ev["plain-56 - plain-20 training error per seed (points)"] == [20.0] and ev["seeds"] == 1


def _cifar(acc_small, acc_big, test_images=1_000):
    runs = {RunKey("ResNet", 8): history([0.29], [1 - acc_small], params=75_290, seconds=166.8),
            RunKey("ResNet", 20): history([0.21], [1 - acc_big], params=269_722, seconds=473.5)}  # fmt: skip
    for h in runs.values():
        h.info.test_images = test_images
    return runs


@pytest.mark.parametrize(("small", "big", "status"), [
    (0.673, 0.713, V.UNDECIDED),  # 4.0 points, 2 SE = 4.1 on 1,000 images each (this chapter's cpu run)
    (0.673, 0.720, V.SHOWN), (0.720, 0.673, V.NOT_SHOWN),
])  # fmt: skip
def test_comparison_verdict_decides_on_the_test_image_count(small, big, status):
    v = cifar.comparison_verdict(_cifar(small, big))
    [claim] = v.claims
    assert claim.name == cifar.BIGGER_IS_BETTER and claim.status == status
    assert claim.evidence["ResNet-20 - ResNet-8 test accuracy (points)"] == pytest.approx(100 * (big - small))
    assert claim.evidence["images"] == [1_000, 1_000]
    assert claim.evidence["parameters, ResNet-20 / ResNet-8"] == pytest.approx(269_722 / 75_290)
    assert claim.evidence["training time, ResNet-20 / ResNet-8"] == pytest.approx(473.5 / 166.8)
    assert f"ResNet-8 {100 * small:.1f}%" in v.text and f"ResNet-20 {100 * big:.1f}%" in v.text


def test_comparison_verdict_with_seeds_is_paired():
    per_seed = [_cifar(0.67, 0.72), _cifar(0.66, 0.70), _cifar(0.68, 0.715)]
    runs = R.seed_runs(per_seed)
    [claim] = cifar.comparison_verdict(runs).claims
    assert claim.status == V.SHOWN and claim.evidence["seeds"] == 3
    assert claim.evidence["ResNet-20 - ResNet-8 test accuracy per seed (points)"] == [5.0, 4.0, 3.5]


def test_comparison_verdict_bad_input():
    with pytest.raises(ValueError, match="at least 2 runs"):
        cifar.comparison_verdict({"a": history([0.1])})
    with pytest.raises(ValueError, match=r"test image count of ResNet-\d+ is not recorded"):
        cifar.comparison_verdict(_cifar(0.6, 0.7, test_images=None))
    assert cifar.comparison_verdict(_cifar(0.6, 0.7, test_images=None), test_images=500).claims[0].evidence[
        "images"] == [500, 500]
    same = {"a": history([0.1], [0.3], params=10), "b": history([0.1], [0.2], params=10)}
    with pytest.raises(ValueError, match="same parameter count"):
        cifar.comparison_verdict(same)


def test_a_verdict_on_a_shortened_run_names_it_and_its_epochs():
    """The time budget shortened one ResNet-20 run to 2 of 5 epochs: the CIFAR-10 verdict's text names that
    run and both epoch counts; with no shortened run, there is no note."""
    small, big = history([0.5, 0.4], [0.5, 0.45], params=100), history([0.4, 0.3], [0.4, 0.35], params=300)
    for h in (small, big):
        h.info.test_images = 1_000
    assert V.schedule_notes({"ResNet-8": small, "ResNet-20": big}) == ""
    big.info.epochs, big.info.requested_epochs = 2, 5
    note = V.schedule_notes({"ResNet-8": small, "ResNet-20": big})
    assert "ResNet-20" in note and "ResNet-8" not in note and "2" in note and "5" in note
    assert note in cifar.comparison_verdict({"ResNet-8": small, "ResNet-20": big}).text

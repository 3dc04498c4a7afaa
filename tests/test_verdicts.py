"""The verdict rules of resnet_lab.verdicts: statuses at and around each threshold, the evidence they carry,
the undecided cases, bad input, how claims combine into a verdict, and what the page prints."""

from __future__ import annotations

import math

import pytest

from resnet_lab import verdicts as V
from resnet_lab.history import RunKey
from tests.helpers import history

# --- paired_claim: several seeds, decided on the per-seed differences ---------------------------------------


def test_paired_claim_shown_when_every_seed_agrees_and_the_mean_exceeds_the_spread():
    c = V.paired_claim("a beats b", [3.0, 4.0, 5.0], [1.0, 1.0, 1.0], what="a - b")
    assert c.status == V.SHOWN and c.holds is True
    assert c.evidence == {"a - b per seed (points)": [2.0, 3.0, 4.0], "mean": 3.0, "sd": 1.0, "seeds": 3}


@pytest.mark.parametrize(("last", "status"), [(4.9, V.SHOWN), (5.0, V.UNDECIDED), (5.1, V.UNDECIDED)])
def test_paired_claim_threshold_is_mean_strictly_above_sd(last, status):
    # differences 1, 1, 1, last: mean 1.975 / sd 1.95 (4.9), mean = sd = 2 (5.0), mean 2.025 / sd 2.05 (5.1)
    diffs = [1.0, 1.0, 1.0, last]
    c = V.paired_claim("x", diffs, [0.0] * 4)
    assert c.status == status
    assert c.evidence["mean"] == pytest.approx(sum(diffs) / 4)
    assert c.evidence["sd"] == pytest.approx({4.9: 1.95, 5.0: 2.0, 5.1: 2.05}[last])


@pytest.mark.parametrize(("last", "status"), [(4.9, V.NOT_SHOWN), (5.0, V.UNDECIDED), (5.1, V.UNDECIDED)])
def test_paired_claim_not_shown_mirrors_shown(last, status):
    c = V.paired_claim("x", [0.0] * 4, [1.0, 1.0, 1.0, last])
    assert c.status == status and c.holds is {V.NOT_SHOWN: False, V.UNDECIDED: None}[status]
    assert c.evidence["a - b per seed (points)"] == [-1.0, -1.0, -1.0, -last]


def test_paired_claim_undecided_when_one_seed_disagrees_even_with_a_large_mean():
    c = V.paired_claim("x", [5.0, 5.0, 5.0, -0.01], [0.0] * 4)
    assert c.evidence["mean"] > c.evidence["sd"]  # the mean alone would pass
    assert c.status == V.UNDECIDED


def test_paired_claim_with_one_seed_is_undecided_and_says_how_many():
    c = V.paired_claim("x", [10.0], [1.0], what="gap", unit="%")
    assert c.status == V.UNDECIDED and c.holds is None
    assert c.evidence == {"gap per seed (%)": [9.0], "mean": 9.0, "sd": 0.0, "seeds": 1}


def test_paired_claim_rounds_the_per_seed_differences_in_its_evidence():
    c = V.paired_claim("x", [1.23456, 2.0], [0.0, 0.5])
    assert c.evidence["a - b per seed (points)"] == [1.235, 1.5] and c.evidence["seeds"] == 2


@pytest.mark.parametrize(("a", "b"), [([1.0, 2.0], [1.0]), ([], [])])
def test_paired_claim_needs_one_value_per_seed_on_each_side(a, b):
    with pytest.raises(ValueError, match=rf"got {len(a)} and {len(b)}"):
        V.paired_claim("x", a, b)


# --- proportions_claim: one seed, two accuracies on n images ------------------------------------------------


def test_proportions_claim_evidence_is_the_difference_and_its_unpooled_standard_error_in_points():
    c = V.proportions_claim("x", 0.6, 1000, 0.5, 1000, what="a - b")
    se = math.sqrt(0.6 * 0.4 / 1000 + 0.5 * 0.5 / 1000)
    assert c.status == V.SHOWN
    assert c.evidence["a - b (points)"] == pytest.approx(10.0)
    assert c.evidence["standard error (points)"] == pytest.approx(100 * se)
    assert c.evidence["images"] == [1000, 1000]


@pytest.mark.parametrize(("n", "status"), [(1000, V.UNDECIDED), (1100, V.SHOWN)])
def test_proportions_claim_counts_a_difference_only_beyond_two_standard_errors(n, status):
    # 71% vs 67%: 2 SE is 4.13 points on 1,000 images each, 3.94 points on 1,100
    c = V.proportions_claim("x", 0.71, n, 0.67, n)
    assert 2 * c.evidence["standard error (points)"] == pytest.approx({1000: 4.133, 1100: 3.941}[n], abs=1e-3)
    assert c.status == status
    mirrored = V.proportions_claim("x", 0.67, n, 0.71, n)
    assert mirrored.status == {V.UNDECIDED: V.UNDECIDED, V.SHOWN: V.NOT_SHOWN}[status]


@pytest.mark.parametrize(("z", "status"), [(4.5, V.SHOWN), (4.55, V.UNDECIDED)])
def test_proportions_claim_threshold_follows_z(z, status):
    # 0.6 vs 0.5 on 1,000 images each: the difference is 4.52 standard errors
    assert V.proportions_claim("x", 0.6, 1000, 0.5, 1000, z=z).status == status
    mirrored = V.NOT_SHOWN if status == V.SHOWN else V.UNDECIDED
    assert V.proportions_claim("x", 0.5, 1000, 0.6, 1000, z=z).status == mirrored


def test_proportions_claim_equal_or_degenerate_proportions():
    assert V.proportions_claim("x", 0.5, 100, 0.5, 100).status == V.UNDECIDED
    both_perfect = V.proportions_claim("x", 1.0, 100, 1.0, 100)
    assert both_perfect.status == V.UNDECIDED and both_perfect.evidence["standard error (points)"] == 0.0
    assert V.proportions_claim("x", 1.0, 100, 0.0, 100).status == V.SHOWN


def test_proportions_claim_uses_each_side_its_own_image_count():
    c = V.proportions_claim("x", 0.8, 400, 0.7, 100)
    assert c.evidence["images"] == [400, 100]
    assert c.evidence["standard error (points)"] == pytest.approx(100 * math.sqrt(0.16 / 400 + 0.21 / 100))


@pytest.mark.parametrize(("args", "match"), [
    ((71.0, 1000, 0.67, 1000), r"p_a must be a proportion in \[0, 1\].*71\.0"),
    ((0.71, 1000, -0.1, 1000), r"p_b must be a proportion"),
    ((0.71, 0, 0.67, 1000), r"image counts must be positive, got 0 for p_a"),
    ((0.71, 1000, 0.67, -5), r"got -5 for p_b"),
])  # fmt: skip
def test_proportions_claim_rejects_percentages_and_empty_counts(args, match):
    with pytest.raises(ValueError, match=match):
        V.proportions_claim("x", *args)


# --- counts_claim ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("a", "b", "status"), [(0, 0, V.UNDECIDED), (3, 1, V.SHOWN), (1, 3, V.NOT_SHOWN),
                                                (0, 2, V.NOT_SHOWN), (2, 2, V.NOT_SHOWN), (1, 0, V.SHOWN)])  # fmt: skip
def test_counts_claim_zero_and_zero_prove_nothing(a, b, status):
    c = V.counts_claim("x", a, b, what="local minimum")
    assert c.status == status and c.evidence == {"local minimums": [a, b]}


# --- Claim and Verdict ----------------------------------------------------------------------------------------


def test_claim_rejects_an_unknown_status():
    with pytest.raises(ValueError, match=r"status must be one of \['shown', 'not shown', 'undecided'\]"):
        V.Claim("x", "proven", "a rule")


def _claim(name: str, status: V.Status) -> V.Claim:
    return V.Claim(name, status, f"rule of {name}.", {"n": 1})


@pytest.mark.parametrize(("statuses", "holds"), [
    ((V.SHOWN,), True), ((V.SHOWN, V.SHOWN), True), ((V.NOT_SHOWN,), False), ((V.UNDECIDED,), None),
    ((V.SHOWN, V.UNDECIDED), None), ((V.SHOWN, V.NOT_SHOWN), False), ((V.UNDECIDED, V.NOT_SHOWN), False),
])  # fmt: skip
def test_verdict_holds_only_when_every_claim_is_shown_and_fails_when_any_is_not(statuses, holds):
    v = V.Verdict([_claim(f"c{i}", s) for i, s in enumerate(statuses)])
    assert v.holds is holds and bool(v) is (holds is True)


def test_verdict_needs_a_claim_and_finds_claims_by_name():
    with pytest.raises(ValueError, match="at least one claim"):
        V.Verdict([])
    v = V.Verdict([_claim("first", V.SHOWN), _claim("second", V.UNDECIDED)])
    assert v.claim("second").status == V.UNDECIDED
    with pytest.raises(KeyError, match=r"'third'.*\['first', 'second'\]"):
        v.claim("third")


def test_evidence_text_formats_counts_with_separators_and_floats_to_three_figures():
    c = V.Claim("x", V.SHOWN, "r.", {"images": 50_000, "gap": 4.04567, "big": 12_345.6, "per seed": [1.2345, -0.5],
                                     "flag": True, "none": None})  # fmt: skip
    assert c.evidence_text() == ("images = 50,000; gap = 4.05; big = 12,346; per seed = [1.23, -0.5]; flag = True; "
                                 "none = None")


def test_markdown_is_a_table_with_each_claims_status_rule_and_evidence():
    claims = [V.proportions_claim("bigger is better", 0.713, 1000, 0.673, 1000, what="big - small"),
              V.paired_claim("plain degrades", [43.0, 47.6], [19.5, 18.9], what="deep - shallow"),
              V.counts_claim("rougher", 0, 0, what="minimum")]  # fmt: skip
    v = V.Verdict(claims, "Numbers in words.")
    md = v._repr_markdown_()
    assert md.startswith("Numbers in words.\n\n")
    rows = [line for line in md.splitlines() if line.startswith("| ") and not line.startswith("| Claim")]
    assert len(rows) == 3
    cells = [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]
    assert [c[0] for c in cells] == ["bigger is better", "plain degrades", "rougher"]
    assert [c[1] for c in cells] == ["**Undecided**", "**Shown**", "**Undecided**"]
    assert [c[2] for c in cells] == [c.rule for c in claims]
    assert [c[3] for c in cells] == [c.evidence_text() for c in claims]
    # the numbers themselves: 4.0 points against a standard error of 2.06 on 1,000 images each
    assert "= 4;" in cells[0][3] and "= 2.06;" in cells[0][3] and "[1,000, 1,000]" in cells[0][3]
    assert "[23.5, 28.7]" in cells[1][3] and "seeds = 2" in cells[1][3]
    assert "[0, 0]" in cells[2][3]


def test_markdown_escapes_pipes_and_omits_an_empty_text():
    v = V.Verdict([V.Claim("a | b", V.NOT_SHOWN, "x | y.", {"k": 1})])
    md = v._repr_markdown_()
    assert md.startswith("| Claim |") and "a \\| b" in md and "x \\| y." in md and "**Not shown**" in md


def test_text_rendering_wraps_to_72_columns_and_carries_every_claim():
    claims = [V.paired_claim(f"claim {i}", [3.0, 4.0], [1.0, 1.5], what="a long name for a difference") for i in
              range(3)]  # fmt: skip
    text = str(V.Verdict(claims, "word " * 40))
    assert max(map(len, text.splitlines())) <= 72
    assert [text.count(f"claim {i}: SHOWN") for i in range(3)] == [1, 1, 1]


# --- helpers --------------------------------------------------------------------------------------------------


def test_mean_and_spread_is_the_sample_standard_deviation():
    assert V.mean_and_spread([1.0, 2.0, 3.0]) == (2.0, 1.0) and V.mean_and_spread([5.0]) == (5.0, 0.0)


def test_final_errors_and_keys_of_kind():
    runs = {RunKey("plain", 56): [history([0.5, 0.4]), history([0.5, 0.2])], RunKey("plain", 20): history([0.1]),
            "other": history([0.3])}  # fmt: skip
    errors = V.final_errors(runs)
    assert errors[RunKey("plain", 56)] == pytest.approx((30.0, math.sqrt(200), 2))
    assert errors[RunKey("plain", 20)] == pytest.approx((10.0, 0.0, 1))
    assert list(V.keys_of_kind(runs, "plain")) == [20, 56]
    assert all(len(hs) == n for hs, n in zip(V.as_lists(runs).values(), (2, 1, 1)))
    with pytest.raises(ValueError, match=r"no runs keyed RunKey\('residual', depth\)"):
        V.keys_of_kind(runs, "residual")

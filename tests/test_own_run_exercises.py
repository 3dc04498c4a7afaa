"""Exercises on the student's own run, and written interpretations.

An own-run checker computes its expected answer from the run object passed in: the value computed from a
synthetic run passes, a wrong one does not, another run moves the answer (nothing is stored), and the
untouched placeholder gets feedback. A written answer counts once it is long enough, and its feedback shows
the rubric it will be graded on.
"""

from __future__ import annotations

import statistics

import pytest
import torch

from resnet_lab.chapters import beyond as B
from resnet_lab.data import FASHION_CLASSES
from resnet_lab.exercises import (
    EXERCISES,
    beyond,
    cifar,
    degradation,
    distributed,
    fashion,
    keras,
    residual,
    tracing,
    transfer,
)
from resnet_lab.exercises.own_run import check_run_number
from resnet_lab.history import RunKey
from resnet_lab.report import seed_runs
from tests.helpers import history

CHAPTERS = {"tracing": tracing, "degradation": degradation, "residual": residual, "fashion": fashion,
            "cifar": cifar, "beyond": beyond, "transfer": transfer, "keras": keras,
            "distributed": distributed}  # fmt: skip
TRAINING_CHAPTERS = ("degradation", "fashion", "cifar", "beyond", "transfer")


def _names(kind: str, chapter: str) -> list[str]:
    return [name for (ch, name), (_, k) in EXERCISES.items() if ch == chapter and k == kind]


def test_every_training_chapter_has_an_own_run_exercise_and_every_chapter_a_written_one():
    for chapter in TRAINING_CHAPTERS:
        assert _names("run", chapter), chapter
    for chapter in CHAPTERS:
        assert _names("written", chapter), chapter


# --- Degradation: the deep plain net's extra training error, paired over seeds -------------------------------


def _degradation_runs(plain: dict[int, list[float]], residual: dict[int, list[float]] | None = None) -> dict:
    """``seed_runs`` of per-seed dicts, final training errors (fractions) given per depth and seed."""
    residual = residual or {d: [0.1] * len(v) for d, v in plain.items()}
    seeds = len(next(iter(plain.values())))
    per_seed = [{**{RunKey("plain", d): history([0.9, e[s]]) for d, e in plain.items()},
                 **{RunKey("residual", d): history([0.9, e[s]]) for d, e in residual.items()}}
                for s in range(seeds)]  # fmt: skip
    return seed_runs(per_seed)


def test_plain_gap_is_the_mean_per_seed_difference_of_the_runs_passed_in():
    runs = _degradation_runs({20: [0.238, 0.222], 56: [0.431, 0.488]})
    expected = statistics.fmean([43.1 - 23.8, 48.8 - 22.2])  # 22.95
    assert degradation.plain_gap(expected, runs).correct
    assert degradation.plain_gap(23.0, runs).correct  # as the verdict prints it, to 3 significant figures
    assert degradation.plain_gap(22.9, runs).correct
    assert not degradation.plain_gap(22.7, runs).correct
    assert not degradation.plain_gap(19.3, runs).correct  # one seed's difference only
    assert "sign" in degradation.plain_gap(-22.95, runs).message
    assert "fraction" in degradation.plain_gap(0.2295, runs).message

    other = _degradation_runs({20: [0.20, 0.30], 56: [0.25, 0.31]})  # another run: another answer
    assert degradation.plain_gap(3.0, other).correct and not degradation.plain_gap(expected, other).correct
    # one seed (the gpu profile), three depths: deepest minus shallowest
    single = _degradation_runs({20: [0.10], 32: [0.50], 56: [0.15]})
    assert degradation.plain_gap(5.0, single).correct and not degradation.plain_gap(40.0, single).correct


def test_plain_gap_gives_feedback_for_a_placeholder_or_a_wrong_run_object():
    runs = _degradation_runs({20: [0.238], 56: [0.431]})
    fb = degradation.plain_gap(..., runs)
    assert not fb.correct and "No answer yet" in fb.message and fb.hint
    assert "Run section" in degradation.plain_gap(19.3, ...).message
    assert not degradation.plain_gap(19.3, [1, 2]).correct
    assert "two depths" in degradation.plain_gap(1.0, _degradation_runs({20: [0.2]})).message
    assert "Expected a number" in degradation.plain_gap("twenty", runs).message


# --- Fashion-MNIST: the pair of classes the network confuses most ---------------------------------------


def _confusion(pairs: dict[tuple[int, int], int], classes: int = 10, right: int = 900) -> torch.Tensor:
    confusion = torch.eye(classes, dtype=torch.long) * right
    for (t, p), n in pairs.items():
        confusion[t, p] = n
    return confusion


def test_most_confused_counts_both_directions_in_the_matrix_passed_in():
    shirt, tshirt, coat, pullover = (FASHION_CLASSES.index(c) for c in ("Shirt", "T-shirt/top", "Coat", "Pullover"))
    confusion = _confusion({(shirt, tshirt): 104, (tshirt, shirt): 85, (shirt, coat): 75, (coat, shirt): 20,
                            (pullover, coat): 100, (coat, pullover): 60})  # fmt: skip
    assert fashion.most_confused(("Shirt", "T-shirt/top"), confusion).correct
    assert fashion.most_confused(["t-shirt/top", " shirt "], confusion).correct  # any order, any case
    assert fashion.most_confused((shirt, tshirt), confusion).correct  # indices
    assert not fashion.most_confused(("Coat", "Pullover"), confusion).correct  # 160 < 189
    fb = fashion.most_confused(("Shirt", "Coat"), confusion)
    assert not fb.correct and "another pair" in fb.message

    # one direction's largest count is not the largest pair: named as such
    lopsided = _confusion({(shirt, tshirt): 104, (pullover, coat): 100, (coat, pullover): 60})
    assert fashion.most_confused(("Coat", "Pullover"), lopsided).correct
    fb = fashion.most_confused(("Shirt", "T-shirt/top"), lopsided)
    assert not fb.correct and "both ways" in fb.message
    # ties: either pair is right
    tied = _confusion({(0, 1): 10, (2, 3): 10})
    assert fashion.most_confused((0, 1), tied).correct and fashion.most_confused((3, 2), tied).correct
    # class names of another data set
    assert fashion.most_confused(("a", "c"), _confusion({(0, 2): 5}, classes=3), ("a", "b", "c")).correct


def test_most_confused_gives_feedback_for_bad_answers_and_run_objects():
    confusion = _confusion({(0, 6): 50})
    assert "No answer yet" in fashion.most_confused(..., confusion).message
    assert "two class names" in fashion.most_confused("Shirt", confusion).message
    assert "not a class" in fashion.most_confused(("Shirt", "Boot"), confusion).message
    assert "twice" in fashion.most_confused(("Shirt", "shirt"), confusion).message
    assert "confusion matrix" in fashion.most_confused(("Shirt", "Coat"), ...).message
    assert "class names" in fashion.most_confused(("a", "b"), torch.eye(3), FASHION_CLASSES).message


# --- CIFAR-10: the deeper ResNet's test-error gap --------------------------------------------------------


def test_depth_gap_is_deepest_minus_shallowest_test_error_of_the_runs_passed_in():
    runs = {RunKey("ResNet", 8): history([0.281], [0.347]), RunKey("ResNet", 20): history([0.216], [0.297])}
    assert cifar.depth_gap(-5.0, runs).correct and cifar.depth_gap(-5, runs).correct
    assert not cifar.depth_gap(-4.8, runs).correct
    assert "sign" in cifar.depth_gap(5.0, runs).message
    assert "fraction" in cifar.depth_gap(-0.05, runs).message
    deeper = {**runs, RunKey("ResNet", 56): history([0.1], [0.251]), RunKey("CIFAR ResNet-18"): history([0.1], [0.2])}
    assert cifar.depth_gap(-9.6, deeper).correct and not cifar.depth_gap(-5.0, deeper).correct
    assert "No answer yet" in cifar.depth_gap(..., runs).message
    assert "two depths" in cifar.depth_gap(1.0, {RunKey("ResNet", 8): history([0.2])}).message
    assert not cifar.depth_gap(-5.0, {"ResNet-8": 0.3}).correct


# --- Beyond: deletions above the margin --------------------------------------------------------------------


def _study(intact: float, single: list[float]) -> dict:
    blocks = [(1, i) for i in range(len(single))]
    return {"blocks": blocks, "intact": intact, "single": single, "order_intact": intact, "order_single": single,
            "order": blocks, "cumulative": sorted(single), "images": 1_000, "order_images": 128}  # fmt: skip


def test_lesions_over_margin_counts_the_rises_beyond_the_chapters_margin():
    assert B.BARELY_CHANGES == 2.0
    residual = _study(0.164, [0.835, 0.170, 0.190, 0.183, 0.165])  # rises 67.1, 0.6, 2.6, 1.9, 0.1
    study = {RunKey("ResNet", 32): residual, RunKey("plain", 32): _study(0.238, [0.9] * 5)}
    assert beyond.lesions_over_margin(2, study).correct
    assert not beyond.lesions_over_margin(1, study).correct and not beyond.lesions_over_margin(3, study).correct
    assert beyond.lesions_over_margin(5, study, RunKey("plain", 32)).correct  # another net of the study
    other = {RunKey("ResNet", 32): _study(0.10, [0.101, 0.104, 0.10]), RunKey("plain", 32): _study(0.2, [0.9] * 3)}
    assert beyond.lesions_over_margin(0, other).correct and not beyond.lesions_over_margin(2, other).correct
    # a rise exactly at the margin may be counted either way
    edge = {RunKey("ResNet", 8): _study(0.164, [0.184, 0.5])}
    assert beyond.lesions_over_margin(1, edge).correct and beyond.lesions_over_margin(2, edge).correct


def test_lesions_over_margin_gives_feedback_for_bad_answers_and_run_objects():
    study = {RunKey("ResNet", 32): _study(0.164, [0.835, 0.17])}
    assert "No answer yet" in beyond.lesions_over_margin(..., study).message
    assert "whole number" in beyond.lesions_over_margin(1.5, study).message
    assert "2 single deletions" in beyond.lesions_over_margin(7, study).message
    assert "lesion study" in beyond.lesions_over_margin(1, None).message
    assert "Which net" in beyond.lesions_over_margin(1, {"a": _study(0.1, [0.2]), "b": _study(0.1, [0.2])}).message


# --- Transfer: fine-tune minus scratch at the fewest labels ---------------------------------------------------


def _transfer_runs(accuracies: dict[tuple[str, int], list[float]]) -> dict:
    return {RunKey(way, labels_per_class=k): [history([0.0], [1 - a / 100]) for a in accs]
            for (way, k), accs in accuracies.items()}  # fmt: skip


def test_fine_tune_gain_is_the_mean_per_draw_difference_at_the_fewest_labels():
    runs = _transfer_runs({("from scratch", 10): [74.0, 76.0, 76.0], ("fine-tune", 10): [80.8, 82.5, 88.6],
                           ("linear probe", 10): [70.0, 74.5, 83.1], ("from scratch", 50): [91.2],
                           ("fine-tune", 50): [91.6]})  # fmt: skip
    expected = statistics.fmean([6.8, 6.5, 12.6])  # 8.633
    assert transfer.fine_tune_gain(8.63, runs).correct and transfer.fine_tune_gain(8.6, runs).correct
    assert not transfer.fine_tune_gain(8.4, runs).correct and not transfer.fine_tune_gain(0.4, runs).correct
    assert "sign" in transfer.fine_tune_gain(-expected, runs).message
    other = _transfer_runs({("from scratch", 2): [50.0], ("fine-tune", 2): [45.0], ("from scratch", 5): [60.0],
                            ("fine-tune", 5): [70.0]})  # fmt: skip
    assert transfer.fine_tune_gain(-5, other).correct and not transfer.fine_tune_gain(expected, other).correct
    assert "No answer yet" in transfer.fine_tune_gain(..., runs).message
    assert "RunKey(way" in transfer.fine_tune_gain(1.0, {RunKey("ResNet", 20): [history([0.1])]}).message
    assert "same draws" in transfer.fine_tune_gain(
        1.0, _transfer_runs({("from scratch", 10): [70.0], ("fine-tune", 10): [80.0, 81.0]})).message


def test_check_run_number_hides_the_expected_value_from_a_wrong_answer():
    fb = check_run_number(3.0, 12.345, "the gap", tol=0.1)
    assert not fb.correct and "12.3" not in fb.message and "too low" in fb.message
    assert "12.35" in check_run_number(12.3, 12.345, "the gap", tol=0.1).message


# --- Written questions -------------------------------------------------------------------------------------


def _written():
    for chapter, module in CHAPTERS.items():
        for name in _names("written", chapter):
            yield chapter, name, getattr(module, name)


@pytest.mark.parametrize("chapter,name,checker", list(_written()), ids=lambda v: v if isinstance(v, str) else "")
def test_written_questions_count_long_enough_answers_and_show_their_rubric(chapter, name, checker):
    module = CHAPTERS[chapter]
    rubrics = [v for k, v in vars(module).items() if k.startswith("RUBRIC_")]
    assert rubrics, f"{chapter} keeps no rubric as data"
    for placeholder in ("", "   \n  ", ..., None, "Shown."):
        fb = checker(placeholder)
        assert not fb.correct, (name, placeholder)
    long = " ".join(["the evidence and the rule decide it"] * 20)
    fb = checker(long)
    assert fb.correct, fb
    shown = str(fb) + fb._repr_html_()
    rubric = next(r for r in rubrics if any(text[:40] in shown for text, _ in r))
    assert 3 <= len(rubric) <= 4 and all(isinstance(points, int) and points > 0 for _, points in rubric)
    for text, _ in rubric:
        assert text[:40] in shown, (name, text[:40])


def _run_checkers():
    for chapter in TRAINING_CHAPTERS:
        for name in _names("run", chapter):
            yield chapter, name


@pytest.mark.parametrize("chapter,name", list(_run_checkers()), ids=lambda v: v)
def test_own_run_checkers_answer_a_missing_run_with_feedback_not_a_traceback(chapter, name):
    checker = getattr(CHAPTERS[chapter], name)
    for answer, run in ((..., ...), (..., None), (1, ...), (1, {}), (1, "runs"), (1, 42)):
        fb = checker(answer, run)
        assert not fb.correct and fb.hint, (answer, run)
        assert "could not run" not in fb.message, fb.message
        assert "Pass" in fb.message or "Expected" in fb.message, fb.message

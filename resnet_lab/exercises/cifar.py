"""Exercises of the chapter "Training on CIFAR-10"."""

from __future__ import annotations

import statistics

import torch
import torch.nn.functional as F

from .. import models as M
from ..history import RunKey
from ..trace import trace
from ..train import lr_at
from . import own_run
from .engine import Feedback, Mistake, check_choice, check_function, check_number, check_written, exercise
from .engine import hint as hint  # re-exported: ex.hint(ex.<exercise>) or ex.hint("<exercise>", level=2)

CHAPTER = "cifar"

#: Iterations at which the schedule is checked: both sides of both boundaries.
SCHEDULE_CASES = [(i,) for i in (0, 1, 16_000, 31_999, 32_000, 32_001, 40_000, 47_999, 48_000, 63_999)]


def _reference_step_schedule(iteration: int) -> float:
    """He et al. (2015), section 4.2: 0.1, divided by 10 at 32k and at 48k iterations (of 64k)."""
    return lr_at(iteration, 64_000, 0.1, "step")


STEP_SCHEDULE_MISTAKES = (
    Mistake("the rate drops one iteration late (> instead of >=)",
            lambda i: 0.1 if i <= 32_000 else 0.01 if i <= 48_000 else 0.001,
            "At iteration 32,000 itself the rate is already the lower one: each boundary belongs to the rate after "
            "it."),
    Mistake("the rate is divided by 10 only once", lambda i: 0.1 if i < 32_000 else 0.01,
            "The rate is divided by 10 twice: at 32k and again at 48k."),
)


@exercise(CHAPTER, "The paper's step learning-rate schedule", "code")
def step_schedule(student: object) -> Feedback:
    """A function ``(iteration) -> learning rate`` for the paper's 64k-iteration schedule."""
    return check_function(
        student, _reference_step_schedule, SCHEDULE_CASES, "your schedule", STEP_SCHEDULE_MISTAKES,
        hint=("See \"The learning-rate schedule\" (Build): the rate is constant between two boundaries and is "
              "divided by 10 at each boundary.",
              "Three pieces: 0.1 up to the first boundary, then a tenth of it, then a hundredth. Mind the boundary "
              "iterations themselves: at 32,000 the rate has already dropped. A smaller example, boundaries at 10 "
              "and 20 of 30 iterations: iteration 9 has 0.1, 10 has 0.01, 20 has 0.001."),
    )  # fmt: skip


def _crops_of(padded: torch.Tensor, out: torch.Tensor, size: int) -> list[tuple[int, int] | None]:
    """For each image, the (dy, dx) offset at which ``out`` is a crop of ``padded``, or None."""
    found = []
    for i in range(len(out)):
        match = None
        for dy in range(padded.shape[-2] - size + 1):
            for dx in range(padded.shape[-1] - size + 1):
                if torch.equal(padded[i, :, dy : dy + size, dx : dx + size], out[i]):
                    match = (dy, dx)
                    break
            if match:
                break
        found.append(match)
    return found


@exercise(CHAPTER, "Pad-and-crop augmentation as a batch operation", "code")
def pad_and_crop(student: object) -> Feedback:
    """A function ``(x, pad, generator) -> batch``: zero-pad each image of x (N, C, H, W) by ``pad``
    pixels and take a random HxW crop per image, chosen with ``generator``."""
    hint = ("See \"Augmentation, as in the paper\" (Build): pad with zeros, then cut out a window of the "
            "original size at a random offset, a different one for each image.",
            "Padded by pad on every side, an image is (H + 2 pad) x (W + 2 pad), so the crop's top-left corner can "
            "lie anywhere from 0 to 2 pad in each direction, both ends included. Draw the two offsets of every "
            "image with the generator, then take each image's window; a loop over the images is fine.")
    if not callable(student):
        return Feedback(False, f"Expected a function (x, pad, generator), got {type(student).__name__}.", hint)
    x = torch.rand(32, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    try:
        out = student(x.clone(), 2, torch.Generator().manual_seed(1))
    except Exception as exc:  # noqa: BLE001
        return Feedback(False, f"Your function failed: {type(exc).__name__}: {exc}.", hint)
    if not isinstance(out, torch.Tensor):
        return Feedback(False, f"Your function should return a tensor; it returned {type(out).__name__}.", hint)
    if out.shape != x.shape:
        return Feedback(False, f"The output should keep the input's shape {tuple(x.shape)}; got {tuple(out.shape)}."
                               " Crop back to HxW after padding.", hint)  # fmt: skip
    offsets = _crops_of(F.pad(x, (2, 2, 2, 2)), out, 8)
    if None in offsets:
        i = offsets.index(None)
        return Feedback(False, f"Image {i} of the output is not an 8x8 crop of the zero-padded image {i}.", hint)
    if len(set(offsets)) == 1:
        same = "the centre" if offsets[0] == (2, 2) else f"offset {offsets[0]}"
        return Feedback(False, f"Every image was cropped at {same}: the crop must be random, and drawn per image.",
                        hint)  # fmt: skip
    if len(set(offsets)) < 8:
        return Feedback(False, f"Only {len(set(offsets))} different offsets among 32 images: draw one per image.",
                        hint)  # fmt: skip
    return Feedback(True, f"each of 32 images is a crop of its padded self, at {len(set(offsets))} different "
                          "offsets.")  # fmt: skip


@exercise(CHAPTER, "Epochs in the paper's 64k iterations", "number")
def epochs_of_paper(answer: object) -> Feedback:
    """The paper trains for 64,000 iterations of batch 128. How many epochs of 50,000 images is that?"""
    return check_number(
        answer, 64_000 * 128 / 50_000, "epochs in 64k iterations of batch 128 on 50,000 images",
        hint=("An epoch is one pass over all 50,000 training images. How many images does the paper's run see in "
              "all?",
              "Images seen = iterations x batch size; divide by the number of images in one epoch. A smaller "
              "example: 1,000 iterations of batch 100 on 20,000 images are 5 epochs."),
    )  # fmt: skip


@exercise(CHAPTER, "MACs of the CIFAR ResNet-18 against ResNet-20", "number")
def macs_ratio(answer: object) -> Feedback:
    """How many times the multiply-accumulates of ResNet-20 does the CIFAR ResNet-18 need per 32x32 image?"""
    ratio = trace(M.cifar_resnet18(), (1, 3, 32, 32)).total_macs / trace(M.resnet20(), (1, 3, 32, 32)).total_macs
    return check_number(
        answer, ratio, "the MAC ratio CIFAR ResNet-18 / ResNet-20",
        hint=("The tracer counts a network's multiply-accumulates (see \"The networks\", Build); count both "
              "networks on one 32x32 colour image.",
              "Trace each network on a batch of one 3-channel 32x32 image, read its total MACs, and divide the CIFAR "
              "ResNet-18's total by ResNet-20's. The ratio is well above 1."),
    )  # fmt: skip


AUGMENT_OPTIONS = {
    "A": "to make the images larger, so the network sees more pixels",
    "B": "to show the network the same object shifted by a few pixels, so it learns that position does not matter",
    "C": "to remove the borders of the images, which carry no information",
}


@exercise(CHAPTER, "Why pad and crop", "choice")
def why_pad_and_crop(answer: object) -> Feedback:
    """Why pad by 4 pixels and take a random 32x32 crop?"""
    return check_choice(
        answer, "B", AUGMENT_OPTIONS, "the purpose of pad-and-crop",
        hint=("See \"Augmentation, as in the paper\" (Build): compare the crop's size with the original image's.",
              "The crop is exactly as large as the original image; only where it sits changes, by up to 4 pixels "
              "each way. What does the network see differently from one epoch to the next?"),
    )  # fmt: skip


# --- Your own run ---------------------------------------------------------------------------

DEPTH_GAP_HINT = (
    "Look at the final test errors of your ResNet-n runs: the summary table's 'test error %' column, or the "
    "verdict's first line, which gives the test accuracies.",
    "Take the deepest ResNet-n's final test error minus the shallowest's, in percentage points: negative where "
    "the deeper net ends with the lower error. From the verdict's first line, which lists every network's "
    "accuracy, it is the shallowest ResNet-n's accuracy minus the deepest's.",
)


@exercise(CHAPTER, "Your run: what the deeper ResNet gained", "run", hint=DEPTH_GAP_HINT)
def depth_gap(answer: object, runs: object) -> Feedback:
    """In ``runs`` (``{RunKey("ResNet", depth): History, ...}`` as ``train_all`` returns them): the deepest
    ResNet-n's final test error minus the shallowest's, in percentage points (the mean over seeds where a key
    has several). Computed from ``runs``; within 0.1 points (the summary table prints two decimals, the
    verdict's evidence three significant figures)."""
    lists = own_run.histories(runs, "your runs (the dict train_all returned)", DEPTH_GAP_HINT)
    if isinstance(lists, Feedback):
        return lists
    nets = {k.depth: hs for k, hs in lists.items() if isinstance(k, RunKey) and k.kind == "ResNet"
            and k.depth is not None}  # fmt: skip
    if len(nets) < 2:
        return Feedback(False, f"Your runs hold ResNet-n at depth(s) {sorted(nets)}; the question compares the "
                               "deepest with the shallowest, so it needs two depths or more.", DEPTH_GAP_HINT)
    lo, hi = min(nets), max(nets)
    if any(h.final.test_error is None for h in nets[lo] + nets[hi]):
        return Feedback(False, "Your runs have no test error: train them with a test set, as the chapter does.",
                        DEPTH_GAP_HINT)  # fmt: skip

    def mean_error(hs: list) -> float:
        return statistics.fmean(100 * h.final.test_error for h in hs)

    return own_run.check_run_number(
        answer, mean_error(nets[hi]) - mean_error(nets[lo]), f"ResNet-{hi} minus ResNet-{lo} final test error",
        tol=0.1, order=f"ResNet-{hi} minus ResNet-{lo} (negative where the deeper net errs less)",
        hint=DEPTH_GAP_HINT,
    )  # fmt: skip


#: What a written interpretation of the chapter's comparison verdict is graded on, with the points for each.
RUBRIC_COMPARISON = (
    ("Quotes the verdict's status and evidence: the accuracy difference, its standard error, and the rule "
     "(a difference beyond 2 standard errors, one seed per network).", 1),
    ("Says what the status is about: these two trained networks on these test images, not the two architectures "
     "in general (one seed each); the standard error treats the two accuracies as independent, so with both nets "
     "scored on the same images it is usually conservative (as long as they tend to get the same images right "
     "or wrong).", 1),
    ("Keeps the run apart from the published figures: the run's data and short schedule (a 5,000-image subset on "
     "cpu; the full data set but 30 epochs on gpu) against the full data set and 164 epochs or more, so runs are "
     "compared with each other, not with the table.", 1),
    ("Reads the cost from the evidence: the bigger network's parameters and training time as multiples of the "
     "smaller's.", 1),
)


@exercise(CHAPTER, "Interpret the verdict: the bigger network", "written")
def bigger_network(answer: object) -> Feedback:
    """A few sentences on the chapter's verdict in your run: its status and evidence, what it is about and what
    it is not, how it relates to the published figures, and what the bigger network cost."""
    return check_written(
        answer, "the question on the comparison verdict", own_run.rubric_lines(RUBRIC_COMPARISON), min_words=50,
        hint=("Read the verdict under the summary table: its status, rule and evidence, and the paragraph before "
              "it; then 'What to look for' under the published table.",
              "Cover what the rubric asks: the numbers and the rule, what one seed and shared test images mean "
              "for the status, why the published figures are not comparable, and the cost in the evidence."),
    )  # fmt: skip

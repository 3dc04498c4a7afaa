"""Exercises of the chapter "Training on CIFAR-10"."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import models as M
from ..trace import trace
from ..train import lr_at
from .engine import Feedback, Mistake, check_choice, check_function, check_number, exercise

CHAPTER = "cifar"

#: Iterations at which the schedule is checked: both sides of both boundaries.
SCHEDULE_CASES = [(i,) for i in (0, 1, 16_000, 31_999, 32_000, 32_001, 40_000, 47_999, 48_000, 63_999)]


def reference_step_schedule(iteration: int) -> float:
    """He et al. (2015), section 4.2: 0.1, divided by 10 at 32k and at 48k iterations (of 64k)."""
    return lr_at(iteration, 64_000, 0.1, "step")


@exercise(CHAPTER, "The paper's step learning-rate schedule", "code")
def step_schedule(student: object) -> Feedback:
    """A function ``(iteration) -> learning rate`` for the paper's 64k-iteration schedule."""
    return check_function(
        student, reference_step_schedule, SCHEDULE_CASES, "your schedule",
        [Mistake("the rate drops one iteration late (> instead of >=)",
                 lambda i: 0.1 if i <= 32_000 else 0.01 if i <= 48_000 else 0.001,
                 "At iteration 32,000 the rate is already 0.01: use iteration >= 32_000."),
         Mistake("the rate is divided by 10 only once", lambda i: 0.1 if i < 32_000 else 0.01,
                 "There are two divisions: at 32k (to 0.01) and at 48k (to 0.001).")],
        hint="return 0.1 if iteration < 32_000 else 0.01 if iteration < 48_000 else 0.001",
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
    hint = ("padded = F.pad(x, (pad, pad, pad, pad)); draw dy, dx per image with "
            "torch.randint(0, 2 * pad + 1, (n,), generator=generator); gather the crops (a loop over images is "
            "fine to start with; resnet_lab.loader.random_crop_flip does it without one).")
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
        hint="Images seen = iterations x batch size; divide by the images in one epoch.",
    )  # fmt: skip


@exercise(CHAPTER, "MACs of the CIFAR ResNet-18 against ResNet-20", "number")
def macs_ratio(answer: object) -> Feedback:
    """How many times the multiply-accumulates of ResNet-20 does the CIFAR ResNet-18 need per 32x32 image?"""
    ratio = trace(M.cifar_resnet18(), (1, 3, 32, 32)).total_macs / trace(M.resnet20(), (1, 3, 32, 32)).total_macs
    return check_number(
        answer, ratio, "the MAC ratio CIFAR ResNet-18 / ResNet-20",
        hint="Trace both at (1, 3, 32, 32) and divide the total MACs.",
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
        hint="The crop is as large as the original image; only its position changes.",
    )  # fmt: skip

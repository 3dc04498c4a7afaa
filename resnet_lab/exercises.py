"""Checkers for the book's exercises: instant, specific, friendly feedback.

Every checker takes the student's answer (a number, a shape, a module class
or instance), never raises (broken student code is reported, not crashed
on) and returns a :class:`Feedback`, which shows as a coloured box in a
notebook and as one line of text elsewhere. ``Feedback.correct`` tells a
test or an autograder the verdict.

Generic checkers (:func:`check_number`, :func:`check_shape`,
:func:`check_choice`, :func:`check_block`) are used by the per-chapter
exercises below; each exercise says which chapter poses it.
"""

from __future__ import annotations

import html
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from . import models as M

__all__ = [
    "Feedback",
    "check_number",
    "check_shape",
    "check_choice",
    "check_block",
    "shapes_stage_output",
    "shapes_bottleneck_params",
    "shapes_basic_block",
    "shapes_find_the_bug",
    "mystery_network",
    "theory_residual_gradient",
    "theory_plain_gradient",
    "theory_shattered",
    "degradation_plain_params",
    "degradation_which_deeper",
    "degradation_explain",
    "fashion_steps_per_epoch",
    "fashion_most_confused",
    "fashion_resume",
    "cifar_epochs_of_paper",
    "cifar_macs_ratio",
    "cifar_augment",
]


@dataclass
class Feedback:
    """A checker's verdict: right or not, what was expected, what came back, a hint."""

    correct: bool
    message: str
    hint: str = ""

    def __str__(self) -> str:
        mark = "Correct!" if self.correct else "Not yet."
        return f"{mark} {self.message}" + (f" Hint: {self.hint}" if self.hint and not self.correct else "")

    __repr__ = __str__

    def __bool__(self) -> bool:
        return self.correct

    def _repr_html_(self) -> str:
        colour, border, mark = (
            ("#e8f5e9", "#2e7d32", "✔ Correct!") if self.correct else ("#fff3e0", "#ef6c00", "✘ Not yet.")
        )
        hint = f"<br><i>Hint:</i> {html.escape(self.hint)}" if self.hint and not self.correct else ""
        return (
            f"<div style='background:{colour};border-left:4px solid {border};padding:0.5em 0.8em;margin:0.3em 0'>"
            f"<b>{mark}</b> {html.escape(self.message)}{hint}</div>"
        )


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.6g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return repr(value)


def check_number(answer: object, expected: float, what: str, hint: str = "", rel_tol: float = 0.0) -> Feedback:
    """Is ``answer`` the number ``expected`` (within ``rel_tol``)?"""
    if answer is None or answer is ...:
        return Feedback(False, f"No answer yet for {what}: replace the placeholder with a number.", hint)
    try:
        value = float(answer.item() if isinstance(answer, torch.Tensor) else answer)  # type: ignore[arg-type]
    except (TypeError, ValueError, RuntimeError):
        return Feedback(False, f"Expected a number for {what}, got {type(answer).__name__} {answer!r}.", hint)
    if abs(value - expected) <= rel_tol * abs(expected):
        return Feedback(True, f"{what}: {_fmt(expected)}.")
    direction = "too high" if value > expected else "too low"
    return Feedback(False, f"You gave {_fmt(answer)} for {what}: {direction}.", hint)


def check_shape(answer: object, expected: Sequence[int], what: str, hint: str = "") -> Feedback:
    """Is ``answer`` the shape ``expected``? Accepts tuples, lists and ``torch.Size``."""
    expected = tuple(expected)
    if answer is None or answer is ...:
        return Feedback(False, f"No answer yet for {what}: give a tuple of {len(expected)} ints.", hint)
    try:
        given = tuple(int(v) for v in answer)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        return Feedback(False, f"Expected a shape (a tuple of ints) for {what}, got {answer!r}.", hint)
    if given == expected:
        return Feedback(True, f"{what}: {expected}.")
    if len(given) != len(expected):
        return Feedback(False, f"{what} has {len(expected)} dimensions; you gave {len(given)}: {given}.", hint)
    wrong = [i for i, (g, e) in enumerate(zip(given, expected)) if g != e]
    return Feedback(False, f"You gave {given} for {what}; dimension(s) {wrong} are off.", hint)


def check_choice(answer: object, expected: str, options: dict[str, str], what: str, hint: str = "") -> Feedback:
    """Multiple choice: ``answer`` is one key of ``options`` (case-insensitive)."""
    if answer is None or answer is ...:
        return Feedback(False, f"No answer yet for {what}: answer with one of {', '.join(options)}.", hint)
    key = str(answer).strip().upper()
    if key not in options:
        return Feedback(False, f"Answer with one of {', '.join(options)} for {what}; you gave {answer!r}.", hint)
    if key == expected:
        return Feedback(True, f"{key}: {options[key]}")
    return Feedback(False, f"{key} ({options[key]}) is not it.", hint)


def _build(student: object, args: tuple) -> nn.Module:
    if isinstance(student, nn.Module):
        return student
    if callable(student):
        return student(*args)
    raise TypeError(f"expected an nn.Module class or instance, got {type(student).__name__}")


def _first_error_line(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (line {frames[-1].lineno} of {frames[-1].name})" if frames else ""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}{where}"


def check_block(
    student: object,
    reference: Callable[..., nn.Module],
    args: tuple,
    input_shape: Sequence[int],
    what: str,
    hint: str = "",
    identity_args: tuple | None = None,
) -> Feedback:
    """Build ``student(*args)`` and ``reference(*args)``; compare output shape and parameter count.

    With ``identity_args`` (arguments for which the shortcut is the identity,
    first one = input channels) it also checks that the block is residual.
    """
    try:
        block = _build(student, args)
    except Exception as exc:  # noqa: BLE001 - the student's code may raise anything
        return Feedback(False, f"Building {what}{args} failed: {_first_error_line(exc)}.", hint)
    if not isinstance(block, nn.Module):
        return Feedback(False, f"{what}{args} should give an nn.Module, gave {type(block).__name__}.", hint)
    ref = reference(*args).eval()
    x = torch.randn(*input_shape)
    try:
        with torch.no_grad():
            out = block.eval()(x)
    except Exception as exc:  # noqa: BLE001
        shape = tuple(x.shape)
        return Feedback(False, f"Running {what} on an input of shape {shape} failed: {_first_error_line(exc)}.", hint)
    with torch.no_grad():
        expected = ref(x)
    if not isinstance(out, torch.Tensor) or out.shape != expected.shape:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        return Feedback(False, f"{what} should output {tuple(expected.shape)} for input {tuple(x.shape)}; got {got}.",
                        hint)  # fmt: skip
    n_student = sum(p.numel() for p in block.parameters())
    n_ref = sum(p.numel() for p in ref.parameters())
    if n_student != n_ref:
        return Feedback(False, f"{what} has {n_student:,} parameters; the reference has {n_ref:,}.", hint)
    if identity_args is not None:
        # With every weight zero, F(x) = 0, so a residual block with an identity
        # shortcut returns relu(x) = x for x >= 0; a plain block returns zeros.
        try:
            same = _build(student, identity_args).eval()
            channels = identity_args[0]
            x = torch.relu(torch.randn(1, channels, 8, 8))
            with torch.no_grad():
                for p in same.parameters():
                    p.zero_()
                out = same(x)
        except Exception as exc:  # noqa: BLE001
            return Feedback(False, f"{what}{identity_args} failed: {_first_error_line(exc)}.", hint)
        if not torch.allclose(out, x):
            message = (f"{what}{identity_args} does not add its input back: with all weights zero it should "
                       "return its input unchanged (the shortcut is missing or misplaced).")  # fmt: skip
            return Feedback(False, message, hint)
    shape = tuple(expected.shape)
    return Feedback(True, f"{what} outputs {shape} with {n_ref:,} parameters, and adds its input back.")


# --- Chapter "Inside the blocks: tracing shapes" ----------------------------------


def shapes_stage_output(answer: object) -> Feedback:
    """D2L's ResNet-18 on 1x96x96: the output shape (C, H, W) of the third stage (``layer3``)."""
    return check_shape(
        answer, (256, 6, 6), "layer3's output (C, H, W) on a 1x96x96 input",
        hint="The stem divides the size by 4 (stride-2 conv, stride-2 pool): 96 -> 24. "
        "layer1 keeps it, layer2 and layer3 each halve it; layer3 has 256 channels.",
    )  # fmt: skip


def shapes_bottleneck_params(answer: object) -> Feedback:
    """Parameters of ResNet-50's first Bottleneck in ``layer1`` (64 -> 256 channels, with its projection)."""
    block = M.resnet50().layer1[0]
    return check_number(
        answer, sum(p.numel() for p in block.parameters()), "the parameters of resnet50.layer1[0]",
        hint="Count each convolution as in x out x k x k (no bias), each BatchNorm as 2 x channels: "
        "1x1 64->64, 3x3 64->64, 1x1 64->256, and the projection shortcut 1x1 64->256 with its BN.",
    )  # fmt: skip


def shapes_basic_block(student: object) -> Feedback:
    """A BasicBlock class taking ``(inplanes, planes, stride)``, with a projection where the shape changes."""

    def reference(inplanes: int, planes: int, stride: int) -> nn.Module:
        down = None
        if stride != 1 or inplanes != planes:
            down = nn.Sequential(M.conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))
        return M.BasicBlock(inplanes, planes, stride, down)

    return check_block(
        student, reference, (32, 64, 2), (2, 32, 16, 16), "your block", identity_args=(16, 16, 1),
        hint="Two 3x3 convolutions (the first with the stride), BN after each, ReLU after the first and after "
        "the sum; the shortcut needs a 1x1 convolution with the same stride, plus BN, when shapes change.",
    )  # fmt: skip


FIND_THE_BUG_OPTIONS = {
    "A": "the 1x1 convolutions are padded, so the map grows by 2 pixels per block",
    "B": "the shortcut is added before the second BatchNorm",
    "C": "the head pools with a fixed 4x4 window, which is only right for 32x32 inputs",
    "D": "the network has 6 blocks per stage, so it is a 38-layer net, not ResNet-20",
}


def mystery_network() -> nn.Module:
    """A network posted online as "ResNet-20 for CIFAR-10". Trace it and find its bug."""
    model = M.ResNet(M.BasicBlock, [6, 6, 6], (16, 32, 64), stem="cifar", shortcut="A", num_classes=10)
    model.arch = "mystery 'ResNet-20'"
    return model


def shapes_find_the_bug(answer: object) -> Feedback:
    """The mystery network of the chapter's last exercise: which bug does it have?"""
    return check_choice(
        answer, "D", FIND_THE_BUG_OPTIONS, "the mystery network's bug",
        hint="Trace it with depth='blocks' and count the blocks in each stage; then count weighted layers.",
    )  # fmt: skip


# --- Chapter "Residual learning" ---------------------------------------------------


def theory_residual_gradient(answer: object) -> Feedback:
    """Scalar toy: 10 residual blocks, each with dF/dx = 0.1. What is d output / d input?"""
    return check_number(
        answer, 1.1**10, "the gradient through 10 residual blocks with dF/dx = 0.1", rel_tol=1e-3,
        hint="Each block is y = x + F(x), so dy/dx = 1 + dF/dx; the chain rule multiplies the 10 factors.",
    )  # fmt: skip


def theory_plain_gradient(answer: object) -> Feedback:
    """The same 10 layers without shortcuts: each layer's derivative is 0.1."""
    return check_number(
        answer, 0.1**10, "the gradient through 10 plain layers with derivative 0.1", rel_tol=1e-3,
        hint="Without the shortcut, dy/dx = dF/dx for each layer; multiply ten of them (it is tiny).",
    )  # fmt: skip


SHATTERED_OPTIONS = {
    "A": "the shallow network",
    "B": "the deep plain network",
    "C": "the deep residual network",
}


def theory_shattered(answer: object) -> Feedback:
    """Whose input-gradient looks most like white noise (autocorrelation falls fastest)?"""
    return check_choice(
        answer, "B", SHATTERED_OPTIONS, "the network with the most shattered gradients",
        hint="Look at the autocorrelation plot: which curve drops to about zero after a lag of one or two?",
    )  # fmt: skip


# --- Chapter "The degradation experiment" ---------------------------------------------


def degradation_plain_params(answer: object) -> Feedback:
    """Parameters of the plain 56-layer CIFAR network."""
    return check_number(
        answer, M.count_parameters(M.plain_cifar(56)), "the parameters of plain-56",
        hint="Option A shortcuts have no parameters, so plain-56 has exactly as many as ResNet-56 (option A).",
    )  # fmt: skip


WHICH_DEEPER_OPTIONS = {
    "X": "net X (final training error 6.1%)",
    "Y": "net Y (final training error 11.4%)",
}


def degradation_which_deeper(answer: object) -> Feedback:
    """Two plain nets, same recipe, 20 and 56 layers: which one is the 56-layer net?"""
    return check_choice(
        answer, "Y", WHICH_DEEPER_OPTIONS, "the deeper plain net",
        hint="Degradation: in plain nets, more layers gave higher *training* error, not lower.",
    )  # fmt: skip


EXPLAIN_CURVE_OPTIONS = {
    "A": "plain-56 overfits: it memorises the training set and fails on the test set",
    "B": "plain-56 is harder to optimise: even its training error stays higher than plain-20's",
    "C": "plain-56 has more parameters than ResNet-56, so it needs more data",
    "D": "plain-56 uses a different learning-rate schedule",
}


def degradation_explain(answer: object) -> Feedback:
    """Why does plain-56 end above plain-20 in the figure?"""
    return check_choice(
        answer, "B", EXPLAIN_CURVE_OPTIONS, "the explanation of the plain-56 curve",
        hint="Overfitting would show low training error and high test error. Look at the thin lines.",
    )  # fmt: skip


# --- Chapter "Training on Fashion-MNIST" -------------------------------------------------


def fashion_steps_per_epoch(answer: object) -> Feedback:
    """Training steps in one epoch of 60,000 images with batch 128 (the last batch is partial)."""
    return check_number(
        answer, -(-60_000 // 128), "steps per epoch (60,000 images, batch 128)",
        hint="Divide and round up: the last, smaller batch is still a step.",
    )  # fmt: skip


def fashion_most_confused(answer: object, confusion: torch.Tensor, classes: Sequence[str],
                          true_class: str = "Shirt") -> Feedback:  # fmt: skip
    """From this run's confusion matrix: which class are ``true_class`` images most often mistaken for?"""
    from .evaluation import most_confused_with

    expected = classes[most_confused_with(confusion, list(classes).index(true_class))]
    options = {c.upper(): c for c in classes}
    if answer is None or answer is ...:
        return Feedback(False, f"No answer yet: name one of the classes, e.g. {classes[0]!r}.",
                        f"Read the '{true_class}' row of the confusion matrix, ignoring the diagonal.")  # fmt: skip
    key = str(answer).strip().upper()
    if key not in options:
        return Feedback(False, f"{answer!r} is not a class name; use one of {list(classes)}.")
    if options[key] == expected:
        return Feedback(True, f"'{true_class}' images are most often taken for '{expected}' in this run.")
    return Feedback(False, f"'{options[key]}' is not the most frequent confusion for '{true_class}' in this run.",
                    f"Read the '{true_class}' row of the confusion matrix, ignoring the diagonal.")  # fmt: skip


RESUME_OPTIONS = {
    "A": "re-seeding torch with the same seed when the run restarts",
    "B": "restoring weights, optimizer state and step, and drawing each epoch's batches from (seed, epoch)",
    "C": "saving only the model's weights every epoch",
}


def fashion_resume(answer: object) -> Feedback:
    """What makes a resumed run end with exactly the weights of an uninterrupted one?"""
    return check_choice(
        answer, "B", RESUME_OPTIONS, "exact resumption",
        hint="Momentum buffers and the learning-rate schedule matter too, and so does the order of the batches.",
    )  # fmt: skip


# --- Chapter "Training on CIFAR-10" ----------------------------------------------------


def cifar_epochs_of_paper(answer: object) -> Feedback:
    """The paper trains for 64,000 iterations of batch 128. How many epochs of 50,000 images is that?"""
    return check_number(
        answer, 64_000 * 128 / 50_000, "epochs in 64k iterations of batch 128 on 50,000 images", rel_tol=0.01,
        hint="Images seen = iterations x batch size; divide by the images in one epoch.",
    )  # fmt: skip


def cifar_macs_ratio(answer: object) -> Feedback:
    """How many times the multiply-accumulates of ResNet-20 does the CIFAR ResNet-18 need per 32x32 image?"""
    from .trace import trace

    ratio = trace(M.cifar_resnet18(), (1, 3, 32, 32)).total_macs / trace(M.resnet20(), (1, 3, 32, 32)).total_macs
    return check_number(
        answer, ratio, "the MAC ratio CIFAR ResNet-18 / ResNet-20", rel_tol=0.05,
        hint="Trace both at (1, 3, 32, 32) and divide the total MACs.",
    )  # fmt: skip


AUGMENT_OPTIONS = {
    "A": "to make the images larger, so the network sees more pixels",
    "B": "to show the network the same object shifted by a few pixels, so it learns that position does not matter",
    "C": "to remove the borders of the images, which carry no information",
}


def cifar_augment(answer: object) -> Feedback:
    """Why pad by 4 pixels and take a random 32x32 crop?"""
    return check_choice(
        answer, "B", AUGMENT_OPTIONS, "the purpose of pad-and-crop",
        hint="The crop is as large as the original image; only its position changes.",
    )  # fmt: skip

"""Quick checks answered in the page: multiple-choice questions with feedback, per chapter.

Rendered by jupyterquiz (``display_quiz``), whose scripts and questions are
embedded in the cell's output, so a reader of the HTML book answers them
without a kernel and without network; in a notebook (Colab, Jupyter) they
work the same way. :func:`show` displays a chapter's questions.

The answers are shown in the order they are stored here, and that order puts
the right answer in different places from question to question (first,
second or third; ``tests/test_quiz.py`` fails when one place holds most of
them). Where the answers have a natural order (numbers, shapes) they keep it.
The order is fixed, not shuffled per page load (jupyterquiz's
``shuffle_answers``), so the page, its committed output and the browser test
show the same quiz every time; after reordering, refresh the notebooks' quiz
outputs with ``python tools/nbtools.py refresh-quizzes notebooks/*.ipynb``.
"""

from __future__ import annotations

import json

__all__ = ["QUIZZES", "show", "rendered", "embedded_questions", "right_positions"]


def _q(question: str, *answers: tuple[str, bool, str]) -> dict:
    """A multiple-choice question; ``answers`` are ``(answer, correct, feedback)`` in the order shown."""
    return {
        "question": question,
        "type": "multiple_choice",
        "answers": [{"answer": a, "correct": ok, "feedback": fb} for a, ok, fb in answers],
    }


QUIZZES: dict[str, list[dict]] = {
    "tracing": [
        _q("A BasicBlock at stride 1 receives a 64x56x56 tensor. What shape does it return?",
           ("64x54x54", False, "A 3x3 convolution without padding would shrink the map; ResNet pads by 1."),
           ("64x56x56", True, "Right: padding 1 keeps the size, the channels stay, the shortcut is the identity."),
           ("128x28x28", False, "That is the first block of the next stage, which has stride 2 and doubles "
                                "the channels.")),
        _q("Which shortcut option adds no parameters at all?",
           ("B: project where the shape changes", False, "B adds a 1x1 convolution (and BN) at each change of shape."),
           ("C: project in every block", False, "C adds a 1x1 convolution to every block: the most parameters."),
           ("A: subsample and pad with zeros", True, "Right: option A is an identity with zero channels added.")),
    ],
    "degradation": [
        _q("Degradation means that a deeper plain network ends with a higher ... error than a shallower one.",
           ("test, but not training", False, "Higher test error with lower training error would be overfitting; "
                                            "degradation shows in the training error itself."),
           ("training", True, "Right: the deeper net fits its own training data worse, so it is not overfitting.")),
        _q("With option-A shortcuts, how do the parameter counts of plain-56 and ResNet-56 compare?",
           ("They are equal", True, "Right: option A's shortcuts have no parameters, so only the addition differs."),
           ("ResNet-56 has more", False, "Not with option A: zero-padding has nothing to learn."),
           ("plain-56 has more", False, "Both have the same convolutions, BNs and head.")),
    ],
    "residual": [
        _q("For a residual block y = x + F(x), what is dy/dx?",
           ("dF/dx", False, "That is a plain layer's derivative; the shortcut adds the identity."),
           ("1", False, "Only if F's derivative is zero."),
           ("1 + dF/dx", True, "Right: the identity contributes 1, whatever F does.")),
        _q("In the 2015 blocks this book builds, what comes right after the addition?",
           ("Nothing", False, "That is the pre-activation block of He et al. (2016), not the 2015 one."),
           ("A ReLU", True, "Right: so the path from block to block is not a pure identity; the 2016 "
                            "pre-activation block removes it.")),
    ],
    "fashion": [
        _q("D2L trains its ResNet-18 on Fashion-MNIST resized from 28x28 to 96x96. What does that do to the "
           "multiply-accumulates per image?",
           ("Nothing: the network is the same", False, "The weights are the same; the maps they slide over are "
                                                         "larger."),
           ("About 3.4 times as many", False, "That is the ratio of the sides; convolutions scale with the area."),
           ("About 10 times as many", True, "Right: the tracer counts 319 M against 33 M, a ratio of 9.7. The area "
                                           "grows by (96/28)^2 = 11.8, but at 28x28 the strides round the deeper "
                                           "maps up (7, 4, 2, 1 pixels).")),
        _q("Why does the training loop call optimizer.zero_grad() every step?",
           ("Because backward() adds to the gradients already stored", True,
            "Right: without it, each step would use the sum of all earlier batches' gradients."),
           ("To reset the learning rate", False, "The learning rate lives in the optimizer's parameter groups."),
           ("To free the model's weights", False, "zero_grad touches the .grad tensors only.")),
    ],
    "cifar": [
        _q("The paper divides the learning rate by 10 at 32k and at 48k of 64k iterations. At which fractions "
           "of training is that?",
           ("25% and 50%", False, "32k of 64k is half of the run."),
           ("50% and 75%", True, "Right: 32/64 and 48/64."),
           ("75% and 90%", False, "Compute 32,000 / 64,000.")),
        _q("Which augmentation does the paper use for CIFAR-10?",
           ("Pad by 4, random 32x32 crop, horizontal flip", True, "Right: section 4.2."),
           ("Random rotations and colour jitter", False, "Not in the paper: it uses only shifts and flips."),
           ("None", False, "Section 4.2 describes pad-crop-flip.")),
    ],
    "beyond": [
        _q("In a pre-activation block (He et al. 2016), what follows the addition?",
           ("A ReLU", False, "That is the 2015 block."),
           ("A BatchNorm", False, "No: in a unit that keeps the shape, every BN sits inside the residual branch."),
           ("Nothing", True, "Right: BN and ReLU move before each convolution, so x_{l+1} = x_l + F(x_l).")),
        _q("What does zero_init_residual set to zero?",
           ("The weight of the last BN in every residual branch", True,
            "Right: F(x) starts at 0, so every block starts as the identity (Goyal et al. 2017)."),
           ("Every convolution's weights", False, "Then the network could not learn at all."),
           ("The shortcuts", False, "The shortcuts are what carries the signal at the start.")),
    ],
    "transfer": [
        _q("In a linear probe, which parameters train?",
           ("All of them, the backbone more slowly", False, "That is fine-tuning."),
           ("Only the BatchNorm layers'", False, "BN-only tuning exists, but it is not a linear probe."),
           ("Only the new head's", True, "Right: the pretrained features stay fixed.")),
        _q("Why keep a frozen backbone's BatchNorm layers in eval mode?",
           ("Because eval mode is faster", False, "Speed is not the reason; consistency of the features is."),
           ("So their running statistics stay the pretrained ones", True,
            "Right: in training mode, every batch of the new task would move them towards its own."),
           ("It makes no difference", False, "It changes the network: in training mode the running statistics "
                                             "move towards the new task's, and the chapter prints how far, layer "
                                             "by layer.")),
    ],
    "keras": [
        _q("PyTorch's BatchNorm momentum 0.1 corresponds to which Keras momentum?",
           ("0.1", False, "Same number, opposite meaning: Keras would then keep only 10% of its average."),
           ("0.9", True, "Right: Keras weights the old average by momentum, PyTorch the new batch."),
           ("0.99", False, "That is Keras' default, which averages far more slowly than PyTorch's.")),
        _q("A PyTorch convolution weight of shape (64, 32, 3, 3) becomes a Keras kernel of which shape?",
           ("(64, 32, 3, 3)", False, "That is PyTorch's (out, in, height, width)."),
           ("(3, 3, 64, 32)", False, "In and out are swapped."),
           ("(3, 3, 32, 64)", True, "Right: Keras stores (height, width, in, out).")),
    ],
    "distributed": [
        _q("Each of N ranks computes the mean loss over its own equal share of the batch. Why are the ranks' "
           "gradients averaged rather than summed?",
           ("Averaging sends fewer bytes than summing", False, "Both move the same bytes: an average is the "
                                                               "all-reduced sum divided by N."),
           ("A sum of N gradients would overflow float32", False, "It would not overflow; it would be N times "
                                                                  "too large for the learning rate."),
           ("So that N ranks take the step one process takes on the combined batch", True,
            "Right: the combined batch's mean loss is the mean of the ranks' mean losses, so its gradient is the "
            "mean of their gradients; a sum would be N times it, as if the learning rate were multiplied by N.")),
        _q("With plain BatchNorm, why does training on N processes differ from one process on the combined "
           "batch?",
           ("Each rank normalises with the mean and variance of its own share", True,
            "Right: the statistics, and so the outputs and gradients, are those of a smaller batch; SyncBatchNorm "
            "computes them over the whole batch, across ranks, and the two agree."),
           ("The ranks start from different random weights", False, "DistributedDataParallel broadcasts rank 0's "
                                                                    "weights when it wraps the model."),
           ("The gradients are averaged, not summed", False, "The average is the combined batch's gradient; "
                                                             "BatchNorm's statistics are what differ.")),
        _q("Goyal et al. (2017) train with a minibatch k times as large. What does their linear scaling rule do "
           "to the learning rate?",
           ("Keeps it: the averaged gradient is already right", False, "With k times fewer steps per epoch, "
                                                                       "each step has to go about k times as "
                                                                       "far."),
           ("Multiplies it by k", True,
            "Right: section 2.1 of the paper. A separate gradual warm-up (section 2.2: from the small batch's "
            "rate to k times it over the first 5 epochs) avoids the instability of the large rate at the start "
            "of training."),
           ("Multiplies it by the square root of k", False, "That is another rule that has been proposed; "
                                                            "Goyal et al.'s is linear: k times the batch, k times "
                                                            "the rate.")),
    ],
}  # fmt: skip


#: Runs jupyterquiz's script (in place of ``QUIZ_SCRIPT``) once MathJax is ready. The book defines
#: ``window.MathJax`` as a configuration object and loads MathJax itself later (deferred);
#: jupyterquiz reads ``MathJax.version[0]`` as soon as ``MathJax`` is defined, which throws a
#: TypeError in the page whenever MathJax has not finished loading (seen on a busy machine), and
#: a MathJax 3 without ``typeset`` yet makes it fetch MathJax from a CDN. So the script waits at
#: most 5 s for a ready MathJax (3: ``typeset``; 2: ``Hub``) and sees MathJax only if it is ready.
AFTER_MATHJAX = """(function start(waited) {
  var mj = window.MathJax, ready = mj && mj.version && (mj.typeset || mj.Hub);
  if (mj && !ready && waited < 5000) {
    setTimeout(function () { start(waited + 100); }, 100);
    return;
  }
  (function (MathJax) {
QUIZ_SCRIPT
  })(ready ? mj : undefined);
})(0);
"""



def rendered(chapter: str) -> list[tuple[dict, dict]]:
    """``chapter``'s quiz as the cell shows it: ``(data, metadata)`` per display output (the HTML, then the
    script wrapped in :data:`AFTER_MATHJAX`). Needs an IPython shell to capture into (a notebook has one)."""
    if chapter not in QUIZZES:
        raise ValueError(f"unknown chapter {chapter!r}; quizzes exist for {list(QUIZZES)}")
    from IPython.utils.capture import capture_output
    from jupyterquiz import display_quiz

    with capture_output(stdout=False, stderr=False) as captured:
        # shuffle_answers=False: the stored order, the same on every page load (see the module's docstring)
        display_quiz(QUIZZES[chapter], shuffle_answers=False, colors="fdsp", max_width=640)
    shown = []
    for output in captured.outputs:
        data = dict(output.data)
        if "application/javascript" in data:
            data["application/javascript"] = AFTER_MATHJAX.replace("QUIZ_SCRIPT", data["application/javascript"])
        shown.append((data, dict(output.metadata or {})))
    return shown


def show(chapter: str) -> None:
    """Display ``chapter``'s questions, each with its answers in the stored order."""
    from IPython.display import display

    for data, metadata in rendered(chapter):
        display(data, raw=True, metadata=metadata)


def embedded_questions(script: str) -> list[dict]:
    """The questions a rendered quiz script carries (jupyterquiz embeds them as ``var questions<id>=[...]``)."""
    marker = script.index("var questions")
    start = script.index("=", marker) + 1
    questions, _ = json.JSONDecoder().raw_decode(script, start)
    return questions


def right_positions(questions: list[dict]) -> list[int]:
    """The place (0 = first) of each question's right answer, in the order shown."""
    return [[a["correct"] for a in q["answers"]].index(True) for q in questions]

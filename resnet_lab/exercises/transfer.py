"""Exercises of the chapter "Transfer learning"."""

from __future__ import annotations

import copy
import statistics

import torch
from torch import nn

from .. import models as M
from ..history import RunKey
from . import own_run
from .engine import Feedback, check_choice, check_number, check_written, exercise
from .engine import hint as hint  # re-exported: ex.hint(ex.<exercise>) or ex.hint("<exercise>", level=2)

CHAPTER = "transfer"


def _pretrained() -> M.ResNet:
    torch.manual_seed(0)
    return M.cifar_resnet(8, in_channels=1, num_classes=5)


@exercise(CHAPTER, "Freeze the backbone for a linear probe", "code")
def freeze_backbone(student: object) -> Feedback:
    """A function ``(model) -> model`` that leaves only the head ``fc`` trainable."""
    hint = ("See \"Build\": a linear probe trains only the head, fc. Which flag of a parameter decides whether "
            "backpropagation computes a gradient for it?",
            "Go over the model's parameters with their names: switch gradients off for every parameter outside the "
            "head and leave them on for the head's, whose names begin with the head's name. Return the model.")
    if not callable(student):
        return Feedback(False, f"Expected a function (model), got {type(student).__name__}.", hint)
    model = _pretrained()
    try:
        got = student(model)
    except Exception as exc:  # noqa: BLE001
        return Feedback(False, f"your function failed: {type(exc).__name__}: {exc}.", hint)
    got = model if got is None else got
    if not isinstance(got, nn.Module):
        return Feedback(False, f"your function should return the model; it returned {type(got).__name__}.", hint)
    trainable = {n for n, p in got.named_parameters() if p.requires_grad}
    head = {n for n, _ in got.named_parameters() if n.startswith("fc.")}
    if not trainable:
        return Feedback(False, "nothing is trainable any more, not even the head: the probe could not learn.", hint)
    if trainable == {n for n, _ in got.named_parameters()}:
        return Feedback(False, "every parameter is still trainable: that is fine-tuning, not a linear probe.", hint)
    if trainable != head:
        extra = sorted(trainable - head)[:3]
        return Feedback(False, f"besides the head, {len(trainable - head)} backbone tensors still train, e.g. "
                               f"{extra}.", hint)  # fmt: skip
    count = sum(p.numel() for p in got.parameters() if p.requires_grad)
    return Feedback(True, f"only the head trains: {count:,} of {M.count_parameters(got):,} parameters.")


@exercise(CHAPTER, "A new head for k classes", "code")
def replace_head(student: object) -> Feedback:
    """A function ``(model, k) -> model`` that gives the network a fresh classifier for ``k`` classes."""
    hint = ("The head is the network's last layer, fc: a linear map from the features to one output per class. "
            "For k classes, what has to change and what has to stay?",
            "Build a new linear layer with as many inputs as the old head has (it says how many) and k outputs, "
            "and put it in the old head's place; the layers before it stay as they are. Return the model.")
    if not callable(student):
        return Feedback(False, f"Expected a function (model, k), got {type(student).__name__}.", hint)
    for k in (3, 17):
        model = _pretrained()
        body = copy.deepcopy({n: v for n, v in model.state_dict().items() if not n.startswith("fc.")})
        try:
            got = student(model, k)
        except Exception as exc:  # noqa: BLE001
            return Feedback(False, f"your function failed for k={k}: {type(exc).__name__}: {exc}.", hint)
        got = model if got is None else got
        if not isinstance(got, nn.Module):
            return Feedback(False, f"your function should return the model; it returned {type(got).__name__}.",
                            hint)  # fmt: skip
        with torch.no_grad():
            out = got.eval()(torch.randn(2, 1, 12, 12))
        if out.shape != (2, k):
            return Feedback(False, f"for k={k} the network outputs {tuple(out.shape)}; expected (2, {k}).", hint)
        changed = [n for n, v in got.state_dict().items() if n in body and not torch.equal(v, body[n])]
        if changed:
            return Feedback(False, f"the features changed too ({changed[0]} ...): only the head should be new.", hint)
    return Feedback(True, "the network now ends in k outputs, with its pretrained features untouched.")


@exercise(CHAPTER, "Trainable parameters of a linear probe", "number")
def probe_parameters(answer: object) -> Feedback:
    """ResNet-18 (512 features) as a linear probe for Flowers102's 102 classes: how many parameters train?"""
    return check_number(answer, 512 * 102 + 102, "the trainable parameters of the probe",
                        hint=("In a linear probe only the new head trains. What goes into it, and what comes "
                              "out, here?",
                              "A linear layer from n features to c classes has an n x c weight matrix and one bias "
                              "per class. For 64 features and 10 classes that is 650."))  # fmt: skip


BN_OPTIONS = {
    "A": "so its running statistics stay the pretrained ones, and the features the head learns on stay fixed",
    "B": "because BatchNorm cannot run in training mode on a GPU",
    "C": "to save memory",
}


@exercise(CHAPTER, "BatchNorm in a frozen backbone", "choice")
def frozen_batchnorm(answer: object) -> Feedback:
    """Why keep a frozen backbone's BatchNorm layers in eval mode while the head trains?"""
    return check_choice(answer, "A", BN_OPTIONS, "BatchNorm in a frozen backbone",
                        hint=("See \"Frozen BatchNorm: eval or training mode\" (Read the result): what changes "
                              "in a BatchNorm layer in training mode, even with its weights frozen?",
                              "In training mode, BN normalises with each batch's statistics and updates its "
                              "running averages, even when its weights are frozen. What does the head then learn "
                              "on?"))  # fmt: skip


# --- Your own run ---------------------------------------------------------------------------

FINE_TUNE_GAIN_HINT = (
    "Look at the test accuracies at the fewest labels per class in your run: the verdict's first line gives "
    "them per way, and its claim on fine-tuning against training from scratch at that count gives the "
    "difference for each draw.",
    "At the fewest labels per class, for each draw take the final test accuracy after fine-tuning minus that of "
    "the network trained from scratch on the same draw, in percentage points, and average over the draws "
    "(accuracy is 100 minus the test error in percent).",
)


@exercise(CHAPTER, "Your run: what fine-tuning gains with the fewest labels", "run", hint=FINE_TUNE_GAIN_HINT)
def fine_tune_gain(answer: object, runs: object) -> Feedback:
    """In ``runs`` (``{RunKey(way, labels_per_class=k): [History per draw]}``, the chapter's
    ``transfer_runs``): at the fewest labels per class, the mean over the draws of the fine-tuned network's
    final test accuracy minus the one trained from scratch, in percentage points. Computed from ``runs``;
    within 0.1 points (the verdict prints the mean to three significant figures, the accuracies to one
    decimal)."""
    hint = FINE_TUNE_GAIN_HINT
    lists = own_run.histories(runs, "your transfer_runs (the dict the chapter fills draw by draw)", hint)
    if isinstance(lists, Feedback):
        return lists
    ways: dict[str, dict[int, list]] = {}
    for k, hs in lists.items():
        if isinstance(k, RunKey) and k.labels_per_class is not None:
            ways.setdefault(k.kind, {})[k.labels_per_class] = hs
    if not {"fine-tune", "from scratch"} <= set(ways):
        return Feedback(False, f"Your runs need networks after fine-tuning and from scratch, keyed RunKey(way, "
                               f"labels_per_class=k); they hold {', '.join(map(str, lists))}.", hint)  # fmt: skip
    common = set(ways["fine-tune"]) & set(ways["from scratch"])
    if not common:
        return Feedback(False, "Your runs with fine-tuning and from scratch share no label count.", hint)
    fewest = min(common)
    tuned, scratch = ways["fine-tune"][fewest], ways["from scratch"][fewest]
    if len(tuned) != len(scratch):
        return Feedback(False, f"At {fewest}/class there are {len(tuned)} runs with fine-tuning and {len(scratch)} "
                               "from scratch: every way trains on the same draws.", hint)  # fmt: skip
    if any(h.final.test_error is None for h in tuned + scratch):
        return Feedback(False, "Your runs have no test error: train them with a test set, as the chapter does.", hint)
    gains = [100 * (b.final.test_error - a.final.test_error) for a, b in zip(tuned, scratch)]
    draws = f"mean over {len(gains)} draws" if len(gains) > 1 else "one draw"
    return own_run.check_run_number(
        answer, statistics.fmean(gains),
        f"the test accuracy of fine-tuning minus that of training from scratch at {fewest} labels per class "
        f"({draws})", tol=0.1, order="fine-tuning minus from scratch", hint=hint,
    )  # fmt: skip


#: What a written interpretation of the transfer verdict is graded on, with the points for each.
RUBRIC_TRANSFER = (
    ("Quotes the two claims at the fewest labels from your verdict with their evidence: fine-tuning against "
     "training from scratch and the linear probe against it, the differences draw by draw, their mean and sd, "
     "and the status.", 1),
    ("Applies the paired rule: shown only where every draw's difference has the same sign and the mean exceeds "
     "the sd; a draw that disagrees in sign leaves a claim undecided.", 1),
    ("Explains why the two ways can differ, as a likely reason the run does not "
     "test: the source classes are clothing, the target classes mostly shoes and a bag; a probe can only weigh "
     "the frozen features, fine-tuning can change them.", 1),
    ("Says what would decide further or test the reason: more draws where a claim rests on one draw (whose rule "
     "covers only the test images); a paired claim whose draws already disagree in sign cannot be decided by "
     "adding draws under the rule; a source task that contains shoes would test the reason.", 1),
)


@exercise(CHAPTER, "Interpret the verdict: fine-tune, probe or scratch?", "written")
def ways_with_few_labels(answer: object) -> Feedback:
    """A few sentences on the transfer verdict in your run at the fewest labels per class: what decided the
    fine-tuning and the linear-probe claims, why the two ways can differ, and what would decide further."""
    return check_written(
        answer, "the question on the transfer verdict", own_run.rubric_lines(RUBRIC_TRANSFER), min_words=50,
        hint=("Read the transfer verdict's first lines and its two claims at the fewest labels per class, then "
              "the paragraph after it on why the linear probe can fall behind.",
              "Cover what the rubric asks: the numbers draw by draw and the status of both claims, the rule that "
              "decided them, a reason the two ways differ, and what more runs could decide under that rule and "
              "what they could not."),
    )  # fmt: skip

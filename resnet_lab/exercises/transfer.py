"""Exercises of the chapter "Transfer learning"."""

from __future__ import annotations

import copy

import torch
from torch import nn

from .. import models as M
from .engine import Feedback, check_choice, check_number, exercise

CHAPTER = "transfer"


def _pretrained() -> M.ResNet:
    torch.manual_seed(0)
    return M.cifar_resnet(8, in_channels=1, num_classes=5)


@exercise(CHAPTER, "Freeze the backbone for a linear probe", "code")
def freeze_backbone(student: object) -> Feedback:
    """A function ``(model) -> model`` that leaves only the head ``fc`` trainable."""
    hint = "for name, p in model.named_parameters(): p.requires_grad = name.startswith('fc.'); return model"
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
    hint = "model.fc = nn.Linear(model.fc.in_features, k); return model"
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
                        hint="Only the new nn.Linear(512, 102) trains: its weight matrix and its bias.")


BN_OPTIONS = {
    "A": "so its running statistics stay the pretrained ones, and the features the head learns on stay fixed",
    "B": "because BatchNorm cannot run in training mode on a GPU",
    "C": "to save memory",
}


@exercise(CHAPTER, "BatchNorm in a frozen backbone", "choice")
def frozen_batchnorm(answer: object) -> Feedback:
    """Why keep a frozen backbone's BatchNorm layers in eval mode while the head trains?"""
    return check_choice(answer, "A", BN_OPTIONS, "BatchNorm in a frozen backbone",
                        hint="In training mode, BN normalises with each batch's statistics and updates its "
                        "running averages, even when its weights are frozen.")  # fmt: skip

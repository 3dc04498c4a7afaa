"""Transfer learning: freezing, heads, the pretrained-weights path, single-image prediction, the plan with its
draws, the verdicts, and how far BatchNorm in training mode moves the running statistics."""

from __future__ import annotations

import copy
import dataclasses
import math
from collections import Counter

import pytest
import torch
import torchvision
from PIL import Image

from resnet_lab import models as M
from resnet_lab import verdicts as V
from resnet_lab.chapters import transfer as T
from resnet_lab.history import RunKey
from resnet_lab.profiles import PROFILES
from resnet_lab.train import load_model, save_model, set_train_mode
from tests.helpers import history, synthetic_set


def test_freeze_backbone_leaves_the_head_and_marks_batchnorm():
    model = T.freeze_backbone(M.cifar_resnet(20, in_channels=1, num_classes=5))
    assert T.trainable_parameters(model) == 64 * 5 + 5
    assert all(m.frozen_eval for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    loose = T.freeze_backbone(M.cifar_resnet(20, in_channels=1, num_classes=5), bn_eval=False)
    assert not any(m.frozen_eval for m in loose.modules() if isinstance(m, torch.nn.BatchNorm2d))


def test_replace_head_keeps_features_and_refuses_nonsense():
    model = M.resnet18()
    body = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fc.")}
    T.replace_head(model, 102)
    assert model.fc.out_features == 102 and model.num_classes == 102
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in body.items())
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        T.replace_head(model, 0)
    copy = T.pretrained_copy(model, 5)
    assert copy.fc.out_features == 5 and model.fc.out_features == 102


def test_epochs_for_steps_gives_enough_steps_with_few_labels():
    assert T.epochs_for_steps(50, 64, 150) == 150 and T.epochs_for_steps(1250, 64, 150) == 8


def test_offline_the_pretrained_weights_fail_with_a_reason_and_print_nothing_else(monkeypatch, capsys):
    def offline(self, *args, **kwargs):
        print('Downloading: "https://example.org/w.pth" to /home/someone/.cache/w.pth')  # as torch.hub does
        raise OSError("Name or service not known")

    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", offline)
    with pytest.raises(OSError, match="cannot download ResNet18_Weights.IMAGENET1K_V1: OSError: Name or service"):
        T.imagenet_weights("resnet18")
    printed = capsys.readouterr()
    assert printed.out == "" and printed.err == ""


def test_online_the_pretrained_weights_load_strictly_into_our_resnet(monkeypatch):
    theirs = torchvision.models.resnet18()
    monkeypatch.setattr(torchvision.models.WeightsEnum, "get_state_dict", lambda self, **kw: theirs.state_dict())
    weights, state = T.imagenet_weights("resnet18")
    ours = M.resnet18()
    ours.load_state_dict(state, strict=True)
    pre = T.Preprocess.of_weights(weights)
    assert (pre.size, pre.resize, pre.channels) == (224, 256, 3) and pre.mean == pytest.approx((0.485, 0.456, 0.406))


def _png(path, mode="L", size=(28, 28), value=200):
    Image.new(mode, size, value if mode == "L" else (value, 0, 0)).save(path)
    return path


def test_predict_image_gives_top_k_with_the_training_preprocessing(tmp_path):
    data = synthetic_set(32, size=28, classes=4)
    torch.manual_seed(0)
    model = M.cifar_resnet(8, in_channels=1, num_classes=4)
    save_model(model, tmp_path / "m.pt")
    loaded = load_model(M.cifar_resnet(8, in_channels=1, num_classes=4), tmp_path / "m.pt")
    pre = T.Preprocess.of(data)
    top = T.predict_image(loaded, _png(tmp_path / "shirt.png"), pre, data.classes, k=3)
    assert len(top) == 3 and [c for c, _ in top] == sorted([c for c, _ in top], key=lambda c: -dict(top)[c])
    assert sum(p for _, p in top) <= 1.0 + 1e-6 and all(c in data.classes for c, _ in top)
    x = pre(Image.open(tmp_path / "shirt.png"))
    assert x.shape == (1, 1, 28, 28) and x[0, 0, 0, 0].item() == pytest.approx((200 / 255 - 0.5) / 0.3, rel=1e-5)
    assert loaded.training  # eval mode only inside predict_image


def test_predict_image_refuses_bad_input_clearly(tmp_path):
    model, data = M.resnet18(), synthetic_set(8, size=28, channels=3)
    pre = T.Preprocess(224, 3, (0.5,) * 3, (0.2,) * 3, 256)
    with pytest.raises(FileNotFoundError, match="no image at .*missing.png: give the path of a PNG or JPEG"):
        T.predict_image(model, tmp_path / "missing.png", pre, data.classes)
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ValueError, match="is not an image file that PIL can read \\(expected PNG or JPEG\\)"):
        T.predict_image(model, tmp_path / "notes.png", pre, data.classes)
    with pytest.raises(ValueError, match="expects 3-channel colour \\(RGB\\) images; this image has mode 'L'.*"
                                         "convert\\('RGB'\\)"):
        T.predict_image(model, _png(tmp_path / "grey.png"), pre, data.classes)


# --- The plan: every draw the notebook trains ---------------------------------------------------------


@pytest.mark.parametrize("profile", ["smoke", "cpu", "gpu", "paper"])
def test_plan_lists_every_draw_at_the_fewest_labels_and_one_elsewhere(profile):
    s = PROFILES[profile].sizes("transfer")
    fewest = min(s.labels_per_class)
    pretrained = M.cifar_resnet(8, in_channels=1, num_classes=5)
    built = Counter()  # what the notebook's loop builds, draw by draw
    for k in s.labels_per_class:
        for draw in T.draws_of(s, k):
            ways, tuned = T.target_networks(pretrained, k, bn_probe=k == fewest and draw == 0)
            built.update(str(key) for key in ways | tuned)
    planned = Counter(r.label for r in T.plan(s) if not r.label.startswith(("source", "Flowers102")))
    assert planned == built
    assert planned[f"fine-tune, {fewest}/class"] == planned[f"from scratch, {fewest}/class"] == s.draws
    assert planned[f"{T.BN_PROBE}, {fewest}/class"] == 1
    assert all(planned[f"{w}, {k}/class"] == 1 for w in T.WAYS for k in s.labels_per_class if k != fewest)


def test_draws_are_three_on_the_real_profiles_and_two_when_capped():
    assert {p: PROFILES[p].sizes("transfer").draws for p in ("cpu", "gpu", "paper")} == dict.fromkeys(
        ("cpu", "gpu", "paper"), 3)
    assert PROFILES["cpu"].capped(64, 1).sizes("transfer").draws == 2
    s = T.SIZES["cpu"]
    assert list(T.draws_of(s, 10)) == [0, 1, 2] and list(T.draws_of(s, 250)) == [0]
    assert len({T.draw_seed(10, d) for d in range(3)} | {T.draw_seed(50, 0), T.draw_seed(250, 0)}) == 5
    with pytest.raises(ValueError, match=r"labels_per_class=7 is not one of the sizes' \(10, 50, 250\)"):
        T.draws_of(s, 7)
    with pytest.raises(ValueError, match="draws must be at least 1, got 0"):
        T.draws_of(dataclasses.replace(s, draws=0), 10)


# --- Verdicts on synthetic runs -----------------------------------------------------------------------


def _run(accuracy: float, train_error: float = 0.0, test_images: int = 2_000):
    h = history([train_error], [1 - accuracy / 100])
    h.info.test_images = test_images
    return h


def _runs(per_way: dict[tuple[str, int], list[float]], train_errors: dict | None = None) -> dict:
    """RunKey(way, k) -> one history per draw, from test accuracies in percent."""
    train_errors = train_errors or {}
    return {RunKey(w, labels_per_class=k): [_run(a, train_errors.get((w, k), 0.0)) for a in accs]
            for (w, k), accs in per_way.items()}  # fmt: skip


def test_transfer_verdict_pairs_the_draws_and_uses_two_standard_errors_for_one_draw():
    runs = _runs({("from scratch", 10): [78.0, 75.0, 80.0], ("linear probe", 10): [73.0, 71.0, 74.0],
                  ("fine-tune", 10): [83.0, 81.0, 84.0],
                  ("from scratch", 250): [92.0], ("linear probe", 250): [80.0], ("fine-tune", 250): [92.5]},
                 train_errors={("linear probe", 250): 0.18, ("from scratch", 250): 0.04})  # fmt: skip
    v = T.transfer_verdict(runs)
    status = {c.name: c.status for c in v.claims}
    assert status == {"fine-tune beats from scratch, 10/class": V.SHOWN,
                      "linear probe beats from scratch, 10/class": V.NOT_SHOWN,
                      "fine-tune beats from scratch, 250/class": V.UNDECIDED,  # 0.5 points < 2 x 0.84
                      "linear probe beats from scratch, 250/class": V.NOT_SHOWN}  # fmt: skip
    assert v.holds is False
    paired = v.claim("fine-tune beats from scratch, 10/class").evidence
    assert paired["fine-tune - from scratch per draw (points)"] == pytest.approx([5.0, 6.0, 4.0])
    assert paired["mean"] == pytest.approx(5.0) and paired["sd"] == pytest.approx(1.0) and paired["draws"] == 3
    one = v.claim("fine-tune beats from scratch, 250/class").evidence
    se = 100 * math.sqrt(0.925 * 0.075 / 2000 + 0.92 * 0.08 / 2000)
    assert one["fine-tune - from scratch (points)"] == pytest.approx(0.5)
    assert one["standard error (points)"] == pytest.approx(se) and one["images"] == [2000, 2000]
    probe = v.claim("linear probe beats from scratch, 250/class").evidence
    assert probe["linear probe - from scratch (points)"] == pytest.approx(-12.0)


def test_transfer_verdict_is_undecided_where_the_draws_disagree_and_with_one_draw_everywhere():
    mixed = _runs({("from scratch", 10): [78.0, 75.0, 80.0], ("linear probe", 10): [79.0, 74.0, 79.0],
                   ("fine-tune", 10): [90.0, 74.0, 81.0]})  # fmt: skip
    v = T.transfer_verdict(mixed)
    assert [c.status for c in v.claims] == [V.UNDECIDED, V.UNDECIDED] and v.holds is None
    assert v.claim("fine-tune beats from scratch, 10/class").evidence["draws"] == 3
    smoke = _runs({("from scratch", 2): [40.0], ("linear probe", 2): [41.0], ("fine-tune", 2): [60.0]})
    v = T.transfer_verdict(smoke)
    assert [c.status for c in v.claims] == [V.SHOWN, V.UNDECIDED]
    assert v.claim("fine-tune beats from scratch, 2/class").evidence["images"] == [2000, 2000]


def test_transfer_verdict_refuses_runs_it_cannot_judge():
    good = {("from scratch", 10): [78.0, 75.0], ("linear probe", 10): [73.0, 71.0], ("fine-tune", 10): [83.0, 81.0]}
    with pytest.raises(ValueError, match=r"run 'scratch' is not keyed RunKey\(way, labels_per_class=k\)"):
        T.transfer_verdict({"scratch": history([0.1])})
    with pytest.raises(ValueError, match=r"runs for \['fine-tune'\] are missing"):
        T.transfer_verdict(_runs({k: v for k, v in good.items() if k[0] != "fine-tune"}))
    with pytest.raises(ValueError, match="fine-tune has 1 draws at 10/class but from scratch has 2"):
        T.transfer_verdict(_runs({**good, ("fine-tune", 10): [83.0]}))
    untold = _runs({k: v[:1] for k, v in good.items()})
    untold[RunKey("fine-tune", labels_per_class=10)][0].info.test_images = None
    with pytest.raises(ValueError, match=r"does not record how many images it was tested on"):
        T.transfer_verdict(untold)


def test_batchnorm_verdict_is_one_draw_against_two_standard_errors():
    runs = _runs({("linear probe", 10): [72.8, 71.0], (T.BN_PROBE, 10): [70.5]})
    claim = T.batchnorm_verdict(runs).claims[0]
    assert claim.status == V.UNDECIDED  # 2.3 points on 2,000 images: 2 SE = 2.85 points
    assert claim.evidence["eval mode - training mode (points)"] == pytest.approx(2.3)
    assert claim.evidence["standard error (points)"] == pytest.approx(
        100 * math.sqrt(0.728 * 0.272 / 2000 + 0.705 * 0.295 / 2000))
    runs = _runs({("linear probe", 10): [80.0], (T.BN_PROBE, 10): [70.0]})
    assert T.batchnorm_verdict(runs).claims[0].status == V.SHOWN
    assert "(shortened" not in T.batchnorm_verdict(runs).text
    # a run the time budget shortened is named beside the numbers, with the epochs it trained
    info = runs[RunKey(T.BN_PROBE, labels_per_class=10)][0].info
    info.epochs, info.requested_epochs = 3, 5
    assert "trained 3 of the 5 planned epochs" in T.batchnorm_verdict(runs).text
    with pytest.raises(ValueError, match="are needed"):
        T.batchnorm_verdict(_runs({("linear probe", 10): [80.0]}))


# --- The mechanism: how far BatchNorm in training mode moves the running statistics -------------------


def test_running_stat_drift_is_in_pretrained_standard_deviations_and_relative_variance():
    before = M.cifar_resnet(8, in_channels=1, num_classes=2)
    after = copy.deepcopy(before)
    bn = after.layer1[0].bn1
    bn.running_mean += 0.5 * (before.layer1[0].bn1.running_var + bn.eps).sqrt()
    bn.running_var *= 3.0
    drift = {d.layer: d for d in T.running_stat_drift(before, after)}
    assert len(drift) == 7 and list(drift)[:2] == ["bn1", "layer1.0.bn1"]
    assert drift["layer1.0.bn1"].mean_shift == pytest.approx(0.5)
    assert drift["layer1.0.bn1"].var_change == pytest.approx(2.0 / (1 + bn.eps))
    assert all(d.mean_shift == 0 and d.var_change == 0 for name, d in drift.items() if name != "layer1.0.bn1")
    with pytest.raises(ValueError, match="must have the same BatchNorm layers; got 7"):
        T.running_stat_drift(before, M.cifar_resnet(14, in_channels=1, num_classes=2))


def test_training_moves_the_running_statistics_only_where_frozen_batchnorm_runs_in_training_mode():
    torch.manual_seed(0)
    pretrained = M.cifar_resnet(8, in_channels=1, num_classes=2)
    data = synthetic_set(64, size=16, classes=2)
    x = (data.images.float() / 255 - 0.5) / 0.3 + 1.0  # not the statistics BN has seen
    probes = {b: T.freeze_backbone(T.pretrained_copy(pretrained, 2), bn_eval=b) for b in (True, False)}
    for probe in probes.values():
        opt = torch.optim.SGD([p for p in probe.parameters() if p.requires_grad], lr=0.1)
        set_train_mode(probe)
        for _ in range(3):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(probe(x), data.labels).backward()
            opt.step()
    frozen, moving = (T.running_stat_drift(pretrained, probes[b]) for b in (True, False))
    assert all(d.mean_shift == 0 and d.var_change == 0 for d in frozen)
    assert all(d.mean_shift > 0 and d.var_change > 0 for d in moving)
    weights = {k: v for k, v in pretrained.state_dict().items() if k.endswith(".weight") and not k.startswith("fc.")}
    assert all(torch.equal(v, probes[b].state_dict()[k]) for b in probes for k, v in weights.items())  # frozen

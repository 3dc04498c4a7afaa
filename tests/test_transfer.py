"""Transfer learning: freezing, heads, the pretrained-weights path, and single-image prediction."""

from __future__ import annotations

import pytest
import torch
import torchvision
from PIL import Image

from resnet_lab import models as M
from resnet_lab.chapters import transfer as T
from resnet_lab.train import load_model, save_model
from tests.helpers import synthetic_set


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

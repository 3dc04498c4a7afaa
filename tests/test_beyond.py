"""The chapter "Beyond the original ResNet": lesions, loss landscapes, zero-init's first steps, its plan,
and its verdicts (statuses and evidence on synthetic runs, lesion studies and surfaces)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from resnet_lab import models as M
from resnet_lab import verdicts as V
from resnet_lab.chapters import beyond as B
from resnet_lab.recipes import LAPTOP, PAPER
from tests.helpers import history


def _batches(n=16, channels=1, size=12, classes=4):
    g = torch.Generator().manual_seed(0)
    return [(torch.randn(n, channels, size, size, generator=g), torch.arange(n) % classes)]


def test_deletable_blocks_are_the_shape_preserving_ones():
    model = M.cifar_resnet(20)
    assert B.deletable_blocks(model) == [(1, 0), (1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (3, 2)]
    assert len(B.deletable_blocks(M.cifar_resnet(20, plain=True))) == 7


def test_deleting_a_block_gives_a_working_copy_and_leaves_the_original_alone():
    model = M.cifar_resnet(14, in_channels=1, num_classes=4).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    lesioned = B.delete_block(model, 2, 1)
    assert isinstance(lesioned.layer2[1], nn.Identity) and isinstance(model.layer2[1], M.BasicBlock)
    x = torch.randn(2, 1, 12, 12)
    with torch.no_grad():
        assert lesioned(x).shape == (2, 4)
        expected = model.fc(model.avgpool(model.layer3(model.layer2[0](model.layer1(
            model.relu(model.bn1(model.conv1(x))))))).flatten(1))  # fmt: skip
        torch.testing.assert_close(lesioned(x), expected)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    with pytest.raises(ValueError, match="changes the shape"):
        B.delete_block(model, 2, 0)


def test_lesion_study_deletes_one_at_a_time_then_cumulatively_in_an_order_set_on_other_images():
    torch.manual_seed(0)
    model = M.cifar_resnet(14, in_channels=1, num_classes=4)
    test, order = _batches(), _batches(n=24, size=12)
    order = [(order[0][0] * 3 + 1, order[0][1])]  # other images than the test batch
    study = B.lesion_study(model, test, order_batches=order)
    n = len(B.deletable_blocks(model))
    assert len(study["single"]) == len(study["cumulative"]) == len(study["order_single"]) == n == 4
    assert study["blocks"] == [(1, 0), (1, 1), (2, 1), (3, 1)]
    assert (study["images"], study["order_images"]) == (16, 24)
    # the order is the one the order images give, least harmful first, ties by position
    rank = sorted(range(n), key=lambda j: (study["order_single"][j], j))
    assert study["order"] == [study["blocks"][j] for j in rank]
    assert study["order_intact"] == pytest.approx(B._error(model, order))
    # the test images never change the order
    other = B.lesion_study(model, [(test[0][0].flip(0), test[0][1])], order_batches=order)
    assert other["order"] == study["order"]
    everything = model
    for s, i in study["order"]:
        everything = B.delete_block(everything, s, i)
    assert study["cumulative"][-1] == pytest.approx(B._error(everything, test))
    # per image: which the intact net and each deletion get wrong, on the test images in order
    assert study["wrong_intact"].dtype == torch.bool and study["wrong_intact"].shape == (16,)
    assert study["intact"] == pytest.approx(study["wrong_intact"].float().mean().item())
    assert [w.float().mean().item() for w in study["wrong_single"]] == pytest.approx(study["single"])
    with pytest.raises(ValueError, match="order batches"):
        B.lesion_study(model, test, order_batches=[])


def test_zero_init_blocks_are_the_identity_at_initialisation():
    assert max(B.identity_gap(M.cifar_resnet(20, zero_init_residual=True), (3, 16, 16))) == 0.0
    assert min(B.identity_gap(M.cifar_resnet(20), (3, 16, 16))) > 0.1


def test_loss_surface_at_the_origin_is_the_models_loss():
    torch.manual_seed(0)
    model = M.cifar_resnet(8, in_channels=1, num_classes=4)
    batches = _batches()
    coords, losses = B.loss_surface(model, batches, points=3, span=0.5)
    assert coords.tolist() == [-0.5, 0.0, 0.5] and losses.shape == (3, 3)
    assert losses[1, 1].item() == pytest.approx(B.batch_loss(model, batches), rel=1e-6)
    assert not torch.allclose(losses[0, 0], losses[1, 1])


def test_loss_along_line_ends_at_both_models():
    torch.manual_seed(0)
    start, end = M.cifar_resnet(8, in_channels=1, num_classes=4), M.cifar_resnet(8, in_channels=1, num_classes=4)
    batches = _batches()
    alphas, losses = B.loss_along_line(end, start, batches, points=5, extend=0.0)
    assert alphas == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert losses[-1] == pytest.approx(B.batch_loss(end, batches), rel=1e-6)
    mixed = M.cifar_resnet(8, in_channels=1, num_classes=4)
    mixed.load_state_dict(end.state_dict())  # the end's BN statistics, the start's weights
    with torch.no_grad():
        for p, q in zip(mixed.parameters(), start.parameters()):
            p.copy_(q)
    assert losses[0] == pytest.approx(B.batch_loss(mixed, batches), rel=1e-5)


def test_filter_normalised_direction_has_the_weights_filter_norms():
    model = M.cifar_resnet(8, in_channels=1, num_classes=4)
    direction = B.filter_normalized_direction(model, seed=0)
    for p, d in zip(model.parameters(), direction):
        if p.dim() > 1:
            torch.testing.assert_close(d.flatten(1).norm(dim=1), p.detach().flatten(1).norm(dim=1), rtol=1e-4,
                                       atol=1e-6)  # fmt: skip
        else:
            assert not d.any()


def test_line_alphas_hit_both_ends_exactly():
    assert B.line_alphas(9) == [i / 8 for i in range(-2, 11)] and B.line_alphas(9)[2] == 0.0
    assert B.line_alphas(9)[10] == 1.0 and len(B.line_alphas(21)) == 31 and B.line_alphas(3) == [0.0, 0.5, 1.0]
    with pytest.raises(ValueError, match="points >= 2"):
        B.line_alphas(1)


def test_line_profile_reads_the_line_between_alpha_0_and_1():
    alphas = [-0.25, 0.0, 0.25, 0.5, 0.75, 1.0, 1.25]
    profile = B.line_profile(alphas, [9.0, 2.3, 1.5, 1.7, 0.8, 0.4, 3.0])
    assert profile == {"start": 2.3, "end": 0.4, "highest": 2.3, "rises": 1, "steps": 4}
    with pytest.raises(ValueError, match="alpha = 0 and 1"):
        B.line_profile([1.5, 2.0], [1.0, 2.0])


def test_batch_loss_with_batch_statistics_leaves_the_running_ones_alone():
    torch.manual_seed(0)
    model = M.cifar_resnet(8, in_channels=1, num_classes=4).train()
    batches = _batches()
    with torch.no_grad():
        model(batches[0][0] * 2 + 1)  # running statistics far from this batch's
    before = {k: v.clone() for k, v in model.state_dict().items()}
    running, own = B.batch_loss(model, batches), B.batch_loss(model, batches, "batch")
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items()) and model.training
    probe = M.cifar_resnet(8, in_channels=1, num_classes=4)
    probe.load_state_dict(model.state_dict())
    with torch.no_grad():
        expected = nn.functional.cross_entropy(probe.train()(batches[0][0]), batches[0][1]).item()
    assert own == pytest.approx(expected, rel=1e-5) and running != pytest.approx(own, rel=1e-3)
    with pytest.raises(ValueError, match="'running' or 'batch'"):
        B.batch_loss(model, batches, "mixed")


def _bowl(points=5, scale=1.0, offset=0.1):
    x = torch.linspace(-1, 1, points)
    return scale * (x[None] ** 2 + x[:, None] ** 2) + offset


def test_describe_surface_centre_edge_and_minima():
    bowl = _bowl()  # edge values: 1.1 (mid-sides), 1.35 (next), 2.1 (corners)
    stats = B.describe_surface(bowl)
    assert stats["centre"] == pytest.approx(0.1) and stats["minima"] == 0
    assert stats["edge"] == pytest.approx(1.35) and stats["rise"] == pytest.approx(1.25)
    assert stats["ratio"] == pytest.approx(13.5)
    dented = bowl.clone()
    dented[1, 1] = -1.0  # an interior point below its eight neighbours: one local minimum besides the centre
    assert B.describe_surface(dented)["minima"] == 1
    cornered = bowl.clone()
    cornered[0, 0] = -1.0  # a border point is not compared with the unmeasured outside: not counted
    assert B.describe_surface(cornered)["minima"] == 0
    with pytest.raises(ValueError, match="odd side"):
        B.describe_surface(torch.ones(4, 4))


def test_landscape_verdict_across_pairs_of_directions():
    res = [_bowl(), _bowl(), _bowl()]
    steep = [_bowl(scale=s) for s in (3.0, 4.0, 2.0)]
    v = B.landscape_verdict({"res": res, "plain": steep}, "res", "plain")
    steeper, minima = v.claims
    assert steeper.status == V.SHOWN and minima.status == V.UNDECIDED and v.holds is None  # 0 and 0 minima
    assert steeper.evidence["pairs"] == 3 and steeper.evidence["res edge/centre per pair"] == pytest.approx([13.5] * 3)
    assert steeper.evidence["plain edge/centre per pair"] == pytest.approx([38.5, 51.0, 26.0])  # (1.25 s + 0.1) / 0.1
    assert steeper.evidence["res edge - centre per pair"] == pytest.approx([1.25] * 3)
    assert steeper.evidence["plain edge - centre per pair"] == pytest.approx([3.75, 5.0, 2.5])  # 1.25 s
    # judged on edge - centre: a plain net with a higher centre and a lower ratio still rises more
    high = [_bowl(scale=2.0, offset=1.0)] * 3  # rise 2.5, ratio 3.5 against the residual's 1.25 and 13.5
    assert B.landscape_verdict({"res": res, "plain": high}, "res", "plain").claims[0].status == V.SHOWN
    assert minima.evidence == {"local-minima counts": [0, 0]}
    mixed = [_bowl(scale=3.0), _bowl(scale=0.5), _bowl(scale=3.0)]
    assert B.landscape_verdict({"res": res, "plain": mixed}, "res", "plain").claims[0].status == V.UNDECIDED
    flatter = [_bowl(scale=0.5)] * 3
    assert B.landscape_verdict({"res": res, "plain": flatter}, "res", "plain").claims[0].status == V.NOT_SHOWN
    one = B.landscape_verdict({"res": res[:1], "plain": steep[:1]}, "res", "plain")
    assert one.claims[0].status == V.UNDECIDED and one.claims[0].evidence["pairs"] == 1
    rough = [s.clone() for s in steep]
    for s in rough:
        s[1, 1] = -1.0
    v = B.landscape_verdict({"res": res, "plain": rough}, "res", "plain")
    assert v.claims[1].status == V.SHOWN and v.claims[1].evidence == {"local-minima counts": [3, 0]}
    with pytest.raises(ValueError, match="same number of surfaces"):
        B.landscape_verdict({"res": res, "plain": steep[:2]}, "res", "plain")


def _study(intact, single, blocks=None, images=1_000, cumulative=None):
    blocks = blocks or [(1, i) for i in range(len(single))]
    return {"blocks": blocks, "intact": intact, "single": single, "order_intact": intact, "order_single": single,
            "order": blocks, "cumulative": cumulative or sorted(single), "images": images, "order_images": 128}


def _paired(study, flips):
    """``study`` with per-image results on its images: the intact net wrong on the first ``intact * n``
    images; each deletion ``j`` additionally wrong on ``b`` images it was right on and right on ``c`` it was
    wrong on (``flips[j] = (b, c)``), which sets its error."""
    n = study["images"]
    base = torch.zeros(n, dtype=torch.bool)
    base[: round(study["intact"] * n)] = True
    wrong_single = []
    for b, c in flips:
        w = base.clone()
        w[round(study["intact"] * n) : round(study["intact"] * n) + b] = True
        w[:c] = False
        wrong_single.append(w)
    single = [w.float().mean().item() for w in wrong_single]
    return {**study, "single": single, "wrong_intact": base, "wrong_single": wrong_single}


def test_lesion_verdict_pairs_blocks_and_tests_veits_claim_per_deletion():
    residual = _study(0.10, [0.101, 0.104, 0.10, 0.102], images=10_000)
    plain = _study(0.12, [0.85, 0.90, 0.70, 0.60], images=10_000)
    v = B.lesion_verdict({"ResNet": residual, "plain": plain}, "ResNet", "plain")
    paired, veit = v.claims
    assert paired.status == V.SHOWN and veit.status == V.SHOWN and v.holds is True
    diffs = paired.evidence["plain rise - ResNet rise per block (points)"]
    assert diffs == pytest.approx([72.9, 77.6, 58.0, 47.8]) and paired.evidence["blocks"] == 4
    # no per-image results: the standard error of two independent proportions
    se = 100 * math.sqrt(0.104 * 0.896 / 10_000 + 0.10 * 0.90 / 10_000)
    assert veit.evidence["margin (points)"] == B.BARELY_CHANGES == 2.0
    assert veit.evidence["deletions below the margin"] == 4 and veit.evidence["deletions above the margin"] == 0
    assert veit.evidence["highest rise + 2 SE: block"] == "layer1[1]"
    assert veit.evidence["its rise (points)"] == pytest.approx(0.4)
    assert veit.evidence["its standard error (points)"] == pytest.approx(se)

    # one deletion takes the residual net towards chance (the cpu run's worst case): Veit's claim not shown,
    # and that block's rise beats the plain net's there, so the paired claim is undecided
    broken = _study(0.164, [0.835, 0.17, 0.18, 0.165])
    v = B.lesion_verdict({"ResNet": broken, "plain": _study(0.238, [0.70, 0.98, 0.95, 0.90])}, "ResNet", "plain")
    assert [c.status for c in v.claims] == [V.UNDECIDED, V.NOT_SHOWN] and v.holds is False
    assert v.claims[1].evidence["deletions above the margin"] == 1
    assert v.claims[1].evidence["highest rise + 2 SE: block"] == "layer1[0]"

    # no significant rise is not enough: a rise of 0.5 points with 2 SE of about 2.7 on 1,000 independent
    # images could be above the margin, so the claim is undecided, not shown
    near = _study(0.15, [0.155, 0.15])
    assert B.lesion_verdict({"r": near, "p": _study(0.15, [0.9, 0.9])}, "r", "p").claims[1].status == V.UNDECIDED
    # the same rises measured per image: the two nets disagree on few images, so the paired SE is small
    # (sqrt(b + c) / n: sqrt(5) / 1000 and 0) and the rises are shown to stay under the margin
    tight = _paired(_study(0.15, [0.155, 0.15]), [(5, 0), (0, 0)])
    claim = B.lesion_verdict({"r": tight, "p": _study(0.15, [0.9, 0.9])}, "r", "p").claims[1]
    assert claim.status == V.SHOWN and claim.evidence["its rise (points)"] == pytest.approx(0.5)
    assert claim.evidence["its standard error (points)"] == pytest.approx(100 * math.sqrt(5) / 1000)
    # many disagreements in both directions: the same mean rise, a large paired SE, undecided
    loose = _paired(_study(0.15, [0.155, 0.15]), [(60, 55), (0, 0)])
    claim = B.lesion_verdict({"r": loose, "p": _study(0.15, [0.9, 0.9])}, "r", "p").claims[1]
    assert claim.status == V.UNDECIDED and claim.evidence["its standard error (points)"] == pytest.approx(
        100 * math.sqrt(115) / 1000)
    # a paired rise of 4 points (40 images worse, none better): 2 SE = 1.26, beyond the margin
    worse = _paired(_study(0.15, [0.19, 0.15]), [(40, 0), (0, 0)])
    assert B.lesion_verdict({"r": worse, "p": _study(0.15, [0.9, 0.9])}, "r", "p").claims[1].status == V.NOT_SHOWN
    # a wider margin turns the undecided case into shown
    assert B.lesion_verdict({"r": near, "p": _study(0.15, [0.9, 0.9])}, "r", "p",
                            margin=4.0).claims[1].status == V.SHOWN  # fmt: skip

    # the training runs, where given, name a shortened schedule
    runs = {"r": history([0.1]), "p": history([0.1])}
    runs["r"].info.epochs, runs["r"].info.requested_epochs = 6, 10
    assert "trained 6 of the 10 planned epochs" in B.lesion_verdict({"r": near, "p": near}, "r", "p", runs=runs).text

    # the plain net hurt less at every block: not shown; one block only: undecided
    v = B.lesion_verdict({"r": _study(0.1, [0.5, 0.6]), "p": _study(0.1, [0.2, 0.2])}, "r", "p")
    assert v.claims[0].status == V.NOT_SHOWN
    v = B.lesion_verdict({"r": _study(0.1, [0.1]), "p": _study(0.1, [0.9])}, "r", "p")
    assert v.claims[0].status == V.UNDECIDED and v.claims[0].evidence["blocks"] == 1
    with pytest.raises(ValueError, match="same deletable blocks"):
        B.lesion_verdict({"r": _study(0.1, [0.1, 0.2]), "p": _study(0.1, [0.9])}, "r", "p")
    with pytest.raises(ValueError, match="margin must be positive"):
        B.lesion_verdict({"r": near, "p": near}, "r", "p", margin=0)


def _runs(pre_test, post_test, pre_train, post_train, test_images=1_000):
    runs = {"pre": [history([tr], [te]) for tr, te in zip(pre_train, pre_test)],
            "post": [history([tr], [te]) for tr, te in zip(post_train, post_test)]}  # fmt: skip
    for hs in runs.values():
        for h in hs:
            h.info.test_images = test_images
    return runs


def test_preact_verdict_one_seed_uses_two_proportions_on_the_test_images():
    # the cpu run before the fix: pre-act 20.5% test error, post-act 16.4%, 1,000 test images
    v = B.preact_verdict(_runs([0.205], [0.164], [0.144], [0.085]), "post", "pre")
    (claim,) = v.claims
    assert claim.status == V.NOT_SHOWN
    assert claim.evidence["pre - post test accuracy (points)"] == pytest.approx(-4.1)
    se = 100 * math.sqrt(0.795 * 0.205 / 1000 + 0.836 * 0.164 / 1000)
    assert claim.evidence["standard error (points)"] == pytest.approx(se) and claim.evidence["images"] == [1000, 1000]
    assert B.preact_verdict(_runs([0.17], [0.18], [0.1], [0.1]), "post", "pre").claims[0].status == V.UNDECIDED
    assert B.preact_verdict(_runs([0.12], [0.18], [0.1], [0.1]), "post", "pre").claims[0].status == V.SHOWN
    # the count of test images can be given where the runs did not record it
    runs = _runs([0.12], [0.18], [0.1], [0.1], test_images=None)
    with pytest.raises(ValueError, match="test_images"):
        B.preact_verdict(runs, "post", "pre")
    assert B.preact_verdict(runs, "post", "pre", test_images=50).claims[0].status == V.UNDECIDED


def test_preact_verdict_several_seeds_uses_paired_differences():
    v = B.preact_verdict(_runs([0.10, 0.11, 0.12], [0.13, 0.15, 0.14], [0.05] * 3, [0.05] * 3), "post", "pre")
    (claim,) = v.claims
    assert claim.status == V.SHOWN and claim.evidence["seeds"] == 3
    assert claim.evidence["pre - post test accuracy per seed (points)"] == pytest.approx([3.0, 4.0, 2.0])
    mixed = _runs([0.10, 0.16], [0.13, 0.14], [0.05] * 2, [0.05] * 2)
    assert B.preact_verdict(mixed, "post", "pre").claims[0].status == V.UNDECIDED
    with pytest.raises(ValueError, match="one run per seed"):
        B.preact_verdict({"pre": [history([0.1])], "post": [history([0.1])] * 2}, "post", "pre")


def test_first_steps_and_warm_up_of_the_zero_init_runs():
    runs = {"zero": history([0.5, 0.3]), "default": history([0.6, 0.4])}
    runs["zero"].steps = [{"step": 3, "train_loss": 2.3}, {"step": 6, "train_loss": 1.1}]
    runs["default"].steps = [{"step": 3, "train_loss": 4.5}, {"step": 6, "train_loss": 1.3}]
    table = B.first_steps(runs, "zero", "default")
    assert table.index.tolist() == [3, 6] and table["zero"].tolist() == [2.3, 1.1]
    assert table["default"].tolist() == [4.5, 1.3]
    runs["default"].steps = runs["default"].steps[:1]
    with pytest.raises(ValueError, match="same steps"):
        B.first_steps(runs, "zero", "default")
    assert B.warmup_steps(LAPTOP, 32, 16) == 8  # one-cycle: the rate climbs over the first quarter
    assert B.warmup_steps(PAPER, 32, 16) == 15  # one warm-up epoch: the 16th step reaches the peak


def test_plan_counts_every_evaluation_of_the_lesions_and_landscapes():
    sizes = B.Sizes(dataset="fashion_mnist", depth=14, train=200, test=100, epochs=1, zero_init_epochs=1,
                    gradient_depth=20, landscape_points=3, landscape_images=10, landscape_pairs=2)  # fmt: skip
    last = B.plan(sizes)[-1]
    # 4 deletable blocks; lesions 2 x (9 x 100 + 5 x 10); landscapes 2 x (3 on the line + 2 x 9 + 4) x 10
    assert last.label == "lesions and landscapes" and last.trained == 0 and last.evaluated == 1_900 + 500
    assert B.SIZES["cpu"].landscape_pairs >= 2 and B.SIZES["smoke"].landscape_pairs == 2


def test_preact_exercise_names_a_projection_of_x():
    from resnet_lab.exercises import beyond as ex
    from resnet_lab.exercises import engine

    with engine.book_code_allowed():  # the reference and the mistake's version are the book's own code
        assert ex.preact_block(ex._reference_preact_block).correct
        wrong = ex.preact_block(ex._preact(ex._ShortcutFromInput))
    assert not wrong.correct and ex.PREACT_MISTAKES[1].name in str(wrong)

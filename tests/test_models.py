"""The model zoo: exact parameter counts, torchvision parity, shapes, bad input."""

import pytest
import torch
import torchvision
from torch import nn

from resnet_lab import models as M

IMAGENET_PARAMS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808}
CIFAR_PARAMS_A = {20: 269_722, 32: 464_154, 44: 658_586, 56: 853_018, 110: 1_727_962}
CIFAR_PARAMS_B = {20: 272_474, 32: 466_906, 44: 661_338, 56: 855_770, 110: 1_730_714}


@pytest.mark.parametrize("depth", sorted(IMAGENET_PARAMS))
def test_imagenet_parameter_counts_and_keys_match_torchvision(depth):
    ours = getattr(M, f"resnet{depth}")()
    theirs = getattr(torchvision.models, f"resnet{depth}")()
    assert M.count_parameters(ours) == IMAGENET_PARAMS[depth]
    assert M.count_parameters(theirs) == IMAGENET_PARAMS[depth]
    assert list(ours.state_dict()) == list(theirs.state_dict())
    ours.load_state_dict(theirs.state_dict(), strict=True)


@pytest.mark.parametrize("depth", [18, 50])
def test_imagenet_outputs_equal_torchvision_in_eval_mode(depth):
    torch.manual_seed(0)
    theirs = getattr(torchvision.models, f"resnet{depth}")()
    # Non-trivial BN statistics, so a mix-up of running stats would show.
    with torch.no_grad():
        for m in theirs.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    ours = getattr(M, f"resnet{depth}")()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ours.eval(), theirs.eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("depth", sorted(CIFAR_PARAMS_A))
def test_cifar_family_parameter_counts(depth):
    assert M.count_parameters(M.cifar_resnet(depth, "A")) == CIFAR_PARAMS_A[depth]
    assert M.count_parameters(M.cifar_resnet(depth, "B")) == CIFAR_PARAMS_B[depth]
    assert M.count_parameters(getattr(M, f"resnet{depth}")()) == CIFAR_PARAMS_A[depth]
    plain = M.cifar_resnet(depth, plain=True)
    assert M.count_parameters(plain) == CIFAR_PARAMS_A[depth]
    assert not any(isinstance(m, (M.BasicBlock, M.ShortcutA)) for m in plain.modules())
    # Pre-activation: BN moves from the stem to after the last stage and onto each block's input; with
    # option A the count is the same (He et al. 2016 compare nets of equal size).
    assert M.count_parameters(M.cifar_resnet(depth, preact=True)) == CIFAR_PARAMS_A[depth]


@pytest.mark.parametrize("depth", sorted(CIFAR_PARAMS_A))
def test_cifar_depth_is_six_n_plus_two_weighted_layers(depth):
    model = M.cifar_resnet(depth)
    n = (depth - 2) // 6
    assert [len(s) for s in model.stages()] == [n, n, n]
    assert M.weighted_layers(model) == depth


def test_resnet20_has_three_blocks_per_stage_not_six():
    # The circulating bug: "ResNet-20" with 6 blocks per stage is a 38-layer net.
    model = M.resnet20()
    assert [len(s) for s in model.stages()] == [3, 3, 3]
    assert M.weighted_layers(M.ResNet(M.BasicBlock, [6, 6, 6], (16, 32, 64), stem="cifar")) == 38


def test_option_a_shortcut_is_parameter_free_and_pads_zeros():
    sc = M.ShortcutA(16, 32, stride=2)
    x = torch.randn(2, 16, 8, 8)
    y = sc(x)
    assert y.shape == (2, 32, 4, 4)
    assert sum(p.numel() for p in sc.parameters()) == 0
    torch.testing.assert_close(y[:, 8:24], x[:, :, ::2, ::2])
    assert y[:, :8].abs().sum() == 0 and y[:, 24:].abs().sum() == 0


def test_option_c_projects_in_every_block():
    model = M.cifar_resnet(20, "C")
    blocks = [b for s in model.stages() for b in s]
    assert all(isinstance(b.downsample, nn.Sequential) for b in blocks)
    assert M.count_parameters(model) > CIFAR_PARAMS_B[20]


def test_plain_block_is_the_basic_block_without_its_addition():
    torch.manual_seed(0)
    plain = M.PlainBlock(8, 8).eval()
    residual = M.BasicBlock(8, 8).eval()
    residual.load_state_dict(plain.state_dict())  # same names, same shapes
    x = torch.randn(1, 8, 6, 6)
    with torch.no_grad():
        branch = residual.bn2(residual.conv2(torch.relu(residual.bn1(residual.conv1(x)))))
        torch.testing.assert_close(plain(x), torch.relu(branch))
        torch.testing.assert_close(residual(x), torch.relu(branch + x))


def test_preact_block_adds_its_input_with_nothing_after():
    torch.manual_seed(0)
    block = M.PreActBlock(8, 8).eval()
    assert block.preact_shortcut is False  # no downsample: the shortcut carries x itself
    x = torch.randn(2, 8, 6, 6)
    with torch.no_grad():
        branch = block.conv2(torch.relu(block.bn2(block.conv1(torch.relu(block.bn1(x))))))
        torch.testing.assert_close(block(x), branch + x)
        assert (block(x) < 0).any()  # no ReLU after the sum: negative outputs survive


def _randomise_bn(model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model.eval()


def _shortcut_inputs(model, x):
    """{(stage, index): what the unit's shortcut received} for every unit with a downsample."""
    seen = {}
    for s, stage in enumerate(model.stages(), start=1):
        for i, block in enumerate(stage):
            if block.downsample is not None:
                def keep(module, args, out, key=(s, i)):
                    seen.setdefault(key, args[0].detach().clone())  # returns None: the output is unchanged

                block.downsample.register_forward_hook(keep)
    with torch.no_grad():
        model(x)
    return seen


def test_preact_network_pre_activates_before_the_split_where_the_shape_changes_and_after_the_stem():
    # He et al. (2016), resnet-pre-act.lua: "common BN, ReLU" before the split in the units for increasing
    # dimensions; their section 4.1: the first unit's activation comes right after conv1, before the split.
    torch.manual_seed(0)
    model = _randomise_bn(M.cifar_resnet(14, preact=True))
    flags = [[b.preact_shortcut for b in stage] for stage in model.stages()]
    assert flags == [[True, False], [True, False], [True, False]]
    x = torch.randn(2, 3, 16, 16)
    inputs, seen = {}, _shortcut_inputs(model, x)
    for s, stage in enumerate(model.stages(), start=1):
        def keep_input(module, args, key=s):
            inputs.setdefault(key, args[0].detach().clone())

        stage[0].register_forward_pre_hook(keep_input)
    with torch.no_grad():
        model(x)
        for s in (2, 3):
            block = getattr(model, f"layer{s}")[0]
            torch.testing.assert_close(seen[(s, 0)], torch.relu(block.bn1(inputs[s])))  # BN-ReLU output, not x
        first = model.layer1[0]  # identity shortcut of the pre-activated input
        branch = first.conv2(torch.relu(first.bn2(first.conv1(torch.relu(first.bn1(inputs[1]))))))
        torch.testing.assert_close(first(inputs[1]), branch + torch.relu(first.bn1(inputs[1])))
        second = model.layer1[1]  # an ordinary unit: the shortcut carries x
        y = first(inputs[1])
        branch = second.conv2(torch.relu(second.bn2(second.conv1(torch.relu(second.bn1(y))))))
        torch.testing.assert_close(second(y), branch + y)


def test_preact_network_has_bn_relu_after_the_last_stage_not_after_the_stem():
    model = M.cifar_resnet(20, preact=True)
    assert isinstance(model.bn1, nn.Identity) and isinstance(model.relu, nn.Identity)
    assert isinstance(model.final_norm[0], nn.BatchNorm2d) and model.final_norm[0].num_features == 64
    assert isinstance(model.final_norm[1], nn.ReLU)
    assert model.arch == "CIFAR pre-act ResNet-20 (option A)"
    with pytest.raises(ValueError, match="plain=True or preact=True"):
        M.cifar_resnet(20, plain=True, preact=True)


#: The pre-activation bottleneck nets of He et al. (2016) with every parameter, and without BN's scale and
#: shift, counted by hand from resnet-pre-act.lua (KaimingHe/resnet-1k-layers; no conv biases, a biased
#: linear layer): the paper's Table 4 says 1.7M and 10.2M, which the counts without BN round to.
PREACT_BOTTLENECK_PARAMS = {164: (1_703_258, 1_679_034), 1001: (10_327_706, 10_178_490)}


@pytest.mark.parametrize("depth", sorted(PREACT_BOTTLENECK_PARAMS))
def test_preact_bottleneck_nets_have_the_authors_parameter_counts(depth):
    model = getattr(M, f"preact_resnet{depth}")()
    bn = sum(p.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d) for p in m.parameters())
    assert (M.count_parameters(model), M.count_parameters(model) - bn) == PREACT_BOTTLENECK_PARAMS[depth]
    assert M.weighted_layers(model) == depth
    assert round(M.count_parameters(model) - bn, -5) == {164: 1_700_000, 1001: 10_200_000}[depth]


def test_preact_bottleneck_units_follow_the_released_code():
    torch.manual_seed(0)
    model = _randomise_bn(M.cifar_preact_bottleneck(20))  # n = 2
    units = [b for s in model.stages() for b in s]
    assert [b.preact_shortcut for b in units] == [True, False, True, False, True, False]
    first = model.layer1[0]
    assert first.conv1.stride == (1, 1) and first.conv3.out_channels == 64
    assert isinstance(first.downsample, nn.Conv2d) and first.downsample.bias is None  # 1x1, no BN
    assert model.layer2[0].conv1.stride == (2, 2) and model.layer2[0].conv2.stride == (1, 1)  # stride on the 1x1
    assert all(c.bias is None for c in model.modules() if isinstance(c, nn.Conv2d)) and model.fc.bias is not None
    x = torch.randn(2, 3, 16, 16)
    seen = _shortcut_inputs(model, x)
    with torch.no_grad():
        stem = model.conv1(x)
        torch.testing.assert_close(seen[(1, 0)], torch.relu(first.bn1(stem)))
    assert model(x).shape == (2, 10)
    with pytest.raises(ValueError, match="9n \\+ 2"):
        M.cifar_preact_bottleneck(32)  # 6n + 2, a basic-block depth


def test_resnet50_v1_moves_the_stride_to_the_first_1x1_and_costs_fewer_macs():
    from resnet_lab.trace import trace

    v15, v1 = M.resnet50(), M.resnet50_v1()
    assert M.count_parameters(v1) == M.count_parameters(v15) == IMAGENET_PARAMS[50]
    assert v1.layer2[0].conv1.stride == (2, 2) and v1.layer2[0].conv2.stride == (1, 1)
    assert v15.layer2[0].conv1.stride == (1, 1) and v15.layer2[0].conv2.stride == (2, 2)
    macs_v1 = trace(v1, (1, 3, 224, 224)).total_macs
    assert macs_v1 == 3_857_973_248  # the paper's Table 1 says 3.8e9 FLOPs (multiply-adds)
    assert trace(v15, (1, 3, 224, 224)).total_macs - macs_v1 == 231_211_008


def test_d2l_resnet18_stage_shapes_on_224():
    model = M.d2l_resnet18().eval()
    x = torch.zeros(1, 1, 224, 224)
    shapes = []
    with torch.no_grad():
        h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        shapes.append(tuple(h.shape[1:]))
        for stage in model.stages():
            h = stage(h)
            shapes.append(tuple(h.shape[1:]))
        h = model.avgpool(h)
        shapes.append(tuple(h.shape[1:]))
        h = torch.flatten(h, 1)
        shapes.append(tuple(h.shape[1:]))
        shapes.append(tuple(model.fc(h).shape[1:]))
    assert shapes == [(64, 56, 56), (64, 56, 56), (128, 28, 28), (256, 14, 14), (512, 7, 7), (512, 1, 1), (512,), (10,)]


def _d2l_chapter_resnet18():
    """D2L's section 8.6 network, built from d2l's own Residual class."""
    d2l = pytest.importorskip("d2l.torch")

    def stage(channels, first):
        return nn.Sequential(
            d2l.Residual(channels, use_1x1conv=not first, strides=1 if first else 2), d2l.Residual(channels)
        )

    b1 = nn.Sequential(nn.LazyConv2d(64, 7, 2, 3), nn.LazyBatchNorm2d(), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
    net = nn.Sequential(
        b1,
        stage(64, True),
        stage(128, False),
        stage(256, False),
        stage(512, False),
        nn.AdaptiveAvgPool2d((1, 1)),
        nn.Flatten(),
        nn.LazyLinear(10),
    )
    net(torch.zeros(1, 1, 96, 96))
    return net


def test_d2l_resnet18_equals_d2ls_own_network():
    torch.manual_seed(0)
    theirs = _d2l_chapter_resnet18().eval()
    ours = M.d2l_resnet18().eval()
    assert M.count_parameters(ours) == M.count_parameters(theirs) == 11_178_378
    # Map d2l's names onto ours and compare outputs.
    mapped = {}
    sd = theirs.state_dict()
    stem = {"0.0": "conv1", "0.1": "bn1"}
    for key, value in sd.items():
        top, rest = key.split(".", 1)
        if top == "0":
            idx, leaf = rest.split(".", 1)
            mapped[f"{stem['0.' + idx]}.{leaf}"] = value
        elif top in "1234":
            block, name, leaf = rest.split(".", 2)
            name = {"conv3": "downsample"}.get(name, name)
            mapped[f"layer{top}.{block}.{name}.{leaf}"] = value
        else:
            mapped[f"fc.{rest}"] = value
    ours.load_state_dict(mapped, strict=True)
    x = torch.randn(2, 1, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), atol=1e-5, rtol=1e-5)


def test_cifar_resnet18_parameter_count():
    assert M.count_parameters(M.cifar_resnet18()) == 11_173_962


@pytest.mark.parametrize("size", [28, 32, 40, 64])
def test_cifar_models_accept_any_input_size(size):
    # A head that hard-codes avg_pool2d(out, 4) is only right at 32x32.
    model = M.resnet20(in_channels=1, num_classes=7).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 1, size, size))
    assert out.shape == (2, 7)
    assert isinstance(model.avgpool, nn.AdaptiveAvgPool2d)


def test_head_pools_over_the_whole_map():
    # Global average pooling: the output equals fc(mean over H, W) at any size.
    model = M.resnet20().eval()
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        for s in model.stages():
            h = s(h)
        assert h.shape[-1] == 12  # a fixed 4x4 pool would leave 3x3 here
        torch.testing.assert_close(model(x), model.fc(h.mean(dim=(2, 3))))


@pytest.mark.parametrize("size", [7, 8, 9, 14, 15, 56])
@pytest.mark.parametrize("stride", [1, 2])
def test_bottleneck_keeps_or_halves_the_map_never_grows_it(size, stride):
    # A 1x1 convolution with padding=1 would grow the map by 2 pixels.
    down = nn.Sequential(M.conv1x1(64, 256, stride), nn.BatchNorm2d(256))
    block = M.Bottleneck(64, 64, stride, downsample=down).eval()
    with torch.no_grad():
        out = block(torch.randn(1, 64, size, size))
    expected = size if stride == 1 else (size + 1) // 2
    assert out.shape == (1, 256, expected, expected)
    for conv in (block.conv1, block.conv3):
        assert conv.kernel_size == (1, 1) and conv.padding == (0, 0)


def test_all_one_by_one_convolutions_are_unpadded():
    for model in (M.resnet50(), M.resnet20(shortcut="B"), M.d2l_resnet18()):
        for m in model.modules():
            if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1):
                assert m.padding == (0, 0)


@pytest.mark.parametrize("depth", [0, 19, 21, 18, 51, -4])
def test_bad_cifar_depth_lists_valid_depths(depth):
    with pytest.raises(ValueError, match=r"6n \+ 2.*20, 26, 32"):
        M.cifar_resnet(depth)


def test_wrong_rank_input_names_expected_and_given_shape():
    model = M.resnet20()
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3, H, W\), got \(3, 32, 32\).*unsqueeze"):
        model(torch.randn(3, 32, 32))


def test_wrong_channel_count_names_expected_and_given_shape():
    model = M.d2l_resnet18()
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\), got \(2, 3, 96, 96\)"):
        model(torch.randn(2, 3, 96, 96))


def test_configurable_channels_and_classes_everywhere():
    for ctor in (M.resnet18, M.resnet50, M.resnet20, M.resnet56):
        model = ctor(in_channels=1, num_classes=5).eval()
        with torch.no_grad():
            assert model(torch.randn(1, 1, 64, 64)).shape == (1, 5)


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="shortcut must be"):
        M.cifar_resnet(20, "D")
    with pytest.raises(ValueError, match="num_classes must be a positive int"):
        M.resnet20(num_classes=0)
    with pytest.raises(ValueError, match="one entry per stage"):
        M.ResNet(M.BasicBlock, [2, 2], (16, 32, 64))


@pytest.mark.parametrize("preact", [False, True])
def test_zero_init_residual_makes_blocks_start_as_identity(preact):
    model = M.cifar_resnet(20, preact=preact, zero_init_residual=True).eval()
    x = torch.relu(torch.randn(1, 16, 8, 8))
    with torch.no_grad():
        for i, block in enumerate(model.layer1):
            # A pre-activation net's first unit passes on its pre-activated input, relu(bn1(x)).
            expected = torch.relu(block.bn1(x)) if preact and i == 0 else x
            torch.testing.assert_close(block(x), expected)
    with pytest.raises(ValueError, match="PlainBlock has no shortcut"):
        M.cifar_resnet(20, plain=True, zero_init_residual=True)


def test_evaluating_restores_the_mode_it_found():
    model = M.resnet20().train()
    with M.evaluating(model):
        assert not model.training and not model.layer1[0].bn1.training
    assert model.training
    model.eval()
    with M.evaluating(model):
        pass
    assert not model.training

"""ResNet backbone (frozen BatchNorm folded into the convs) and the feature pyramid."""

from __future__ import annotations

import math

import pytest
import torch
import torchvision
from torch import nn

from mrcnn.modeling.backbone import (
    RESNET_CHANNELS,
    ConvWithFrozenBatchNorm,
    ResNetBackbone,
    backbone_channels,
    clear_folded_weights,
    frozen_batchnorm_is_untrained,
    resnet_body,
)
from mrcnn.modeling.fpn import FeaturePyramid
from mrcnn.testing import randomise_batchnorm


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    net = ResNetBackbone("resnet50").eval()
    with torch.no_grad():
        randomise_batchnorm(net, 1)
    return net


def test_state_dict_keys_are_torchvision_resnet_keys(backbone):
    ours = set(backbone.body.state_dict())
    reference = {
        k
        for k in torchvision.models.resnet50(weights=None).state_dict()
        if not k.startswith("fc.") and not k.endswith("num_batches_tracked")
    }
    assert ours == reference


SHAPE = (19, 27)  # odd sizes: every stride-2 layer maps n to ceil(n / 2)


@pytest.fixture(scope="module")
def outputs(backbone):
    """(ours, torchvision's) C2-C5 for one float64 image through the same weights."""
    reference = torchvision.models.resnet50(weights=None).eval()
    missing, unexpected = reference.load_state_dict(backbone.body.state_dict(), strict=False)
    assert unexpected == [] and all(k.startswith("fc.") or "num_batches" in k for k in missing)
    images = torch.randn(1, 3, *SHAPE, generator=torch.Generator().manual_seed(2)).double()
    net = backbone.double()
    reference = reference.double()
    try:
        with torch.no_grad():
            ours = net(images)
            x = reference.maxpool(reference.relu(reference.bn1(reference.conv1(images))))
            theirs = [reference.layer1(x)]
            for layer in (reference.layer2, reference.layer3, reference.layer4):
                theirs.append(layer(theirs[-1]))
    finally:
        net.float()
    return ours, theirs


def test_folded_frozen_batchnorm_equals_plain_eval_batchnorm(backbone, outputs):
    assert isinstance(backbone.body.conv1, ConvWithFrozenBatchNorm)
    assert isinstance(backbone.body.layer2[0].downsample[0], ConvWithFrozenBatchNorm)
    for ours, theirs in zip(*outputs, strict=True):
        assert ours.dtype == torch.float64
        torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-9)


def test_backbone_output_shapes(outputs):
    for out, stride, channels in zip(outputs[0], (4, 8, 16, 32), RESNET_CHANNELS, strict=True):
        expected = (1, channels, math.ceil(SHAPE[0] / stride), math.ceil(SHAPE[1] / stride))
        assert out.shape == expected


def test_train_bn_uses_trainable_batchnorm():
    body = resnet_body("resnet50", train_bn=True)
    assert isinstance(body.bn1, nn.BatchNorm2d)
    assert type(body.conv1) is nn.Conv2d
    assert "bn1.num_batches_tracked" in body.state_dict()
    assert not hasattr(body, "fc") and not hasattr(body, "avgpool")


@pytest.mark.parametrize("buffer", ["running_mean", "running_var", "weight", "bias"])
def test_frozen_batchnorm_is_untrained_until_any_statistic_is_loaded(buffer):
    """The identity BatchNorm of a fresh frozen backbone is what makes random-weight training
    explode; one layer's loaded statistic is enough to count as trained."""
    frozen = ResNetBackbone("resnet18")
    assert frozen_batchnorm_is_untrained(frozen)
    with torch.no_grad():
        getattr(frozen.body.layer3[1].bn2, buffer)[5] += 0.25
    assert not frozen_batchnorm_is_untrained(frozen)
    assert not frozen_batchnorm_is_untrained(ResNetBackbone("resnet18", train_bn=True))


def test_unknown_backbone():
    with pytest.raises(ValueError, match="vgg16"):
        resnet_body("vgg16")


@pytest.mark.parametrize("name", ["resnet18", "resnet34"])
def test_light_backbones_fold_batchnorm_and_feed_the_pyramid(name):
    torch.manual_seed(0)
    backbone = ResNetBackbone(name).eval()
    assert all(
        isinstance(c, ConvWithFrozenBatchNorm)
        for c in backbone.modules()
        if isinstance(c, torch.nn.Conv2d)
    )
    with torch.no_grad():
        outputs = backbone(torch.randn(1, 3, 64, 96))
    assert [o.shape[1] for o in outputs] == list(backbone_channels(name))
    assert [tuple(o.shape[-2:]) for o in outputs] == [(16, 24), (8, 12), (4, 6), (2, 3)]


def test_feature_pyramid_shapes_and_p6():
    torch.manual_seed(0)
    fpn = FeaturePyramid((8, 16, 32, 64), channels=4)
    sizes = [(25, 38), (13, 19), (7, 10), (4, 5)]
    features = [torch.randn(1, c, *s) for c, s in zip((8, 16, 32, 64), sizes, strict=True)]
    p2, p3, p4, p5, p6 = fpn(features)
    assert [tuple(p.shape[-2:]) for p in (p2, p3, p4, p5)] == sizes
    assert all(p.shape[:2] == (1, 4) for p in (p2, p3, p4, p5, p6))
    assert p6.shape[-2:] == (2, 3)
    torch.testing.assert_close(p6, p5[..., ::2, ::2])


def test_feature_pyramid_top_down_uses_nearest_upsampling():
    fpn = FeaturePyramid((1, 1), channels=1)
    with torch.no_grad():
        for conv in [*fpn.lateral, *fpn.output]:
            conv.weight.zero_()
            conv.bias.zero_()
        fpn.lateral[0].weight.fill_(1.0)
        fpn.lateral[1].weight.fill_(1.0)
        fpn.output[0].weight[0, 0, 1, 1] = 1.0  # identity 3x3 conv
        fpn.output[1].weight[0, 0, 1, 1] = 1.0
    c2 = torch.zeros(1, 1, 3, 3)
    c3 = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    p2, p3, _ = fpn([c2, c3])
    torch.testing.assert_close(p3, c3)
    expected = torch.tensor([[1.0, 1.0, 2.0], [1.0, 1.0, 2.0], [3.0, 3.0, 4.0]])
    torch.testing.assert_close(p2[0, 0], expected)


def test_folded_weights_follow_in_place_parameter_changes():
    torch.manual_seed(0)
    body = resnet_body("resnet50").eval()
    conv = body.conv1
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        first = conv(x)
        conv._folded_bn.weight.mul_(2)  # bumps the version counter
        second = conv(x)
        torch.testing.assert_close(second, 2 * first)
        body.load_state_dict({"conv1.weight": conv.weight * 3}, strict=False)
        torch.testing.assert_close(conv(x), 6 * first)


def test_folded_weights_after_writes_through_data_need_clear_caches():
    # Writes through .data bypass version counters (documented); clear_folded_weights resyncs.
    torch.manual_seed(0)
    body = resnet_body("resnet50").eval()
    conv = body.conv1
    x = torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        first = conv(x)
        conv._folded_bn.weight.data.mul_(2)
        clear_folded_weights(body)
        torch.testing.assert_close(conv(x), 2 * first)

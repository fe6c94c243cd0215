"""Convolutions with their ReLU and shortcut add fused (CPU inference), against torchvision's
own block forward and the eager operators."""

from __future__ import annotations

import pytest
import torch
import torchvision

from mrcnn.modeling import conv_fusion
from mrcnn.modeling.backbone import FusedBasicBlock, FusedBottleneck, ResNetBackbone
from mrcnn.modeling.fpn import FeaturePyramid
from mrcnn.modeling.precision import cpu_has_native_bf16
from mrcnn.testing import randomise_batchnorm

requires_fusion = pytest.mark.skipif(
    conv_fusion._POINTWISE is None, reason="this PyTorch build has no oneDNN fused convolution"
)


class CountingOp:
    """Stands in for torch.ops.mkldnn._convolution_pointwise and counts the fused calls."""

    def __init__(self, op) -> None:
        self.op, self.calls = op, 0

    def __call__(self, *args):
        self.calls += 1
        return self.op(*args)

    def binary(self, *args):
        self.calls += 1
        return self.op.binary(*args)


@pytest.fixture
def counting(monkeypatch):
    op = CountingOp(conv_fusion._POINTWISE)
    monkeypatch.setattr(conv_fusion, "_POINTWISE", op)
    return op


def _backbone_and_torchvision(name: str):
    """Ours (channels-last, as CHANNELS_LAST makes it) and torchvision's, with equal weights."""
    torch.manual_seed(0)
    ours = ResNetBackbone(name).eval()
    with torch.no_grad():
        randomise_batchnorm(ours, 1)
    ours.to(memory_format=torch.channels_last)
    theirs = getattr(torchvision.models, name)(weights=None).eval()
    theirs.load_state_dict(ours.body.state_dict(), strict=False)
    return ours, theirs


def _torchvision_c2_to_c5(net, images: torch.Tensor) -> list[torch.Tensor]:
    x = net.maxpool(net.relu(net.bn1(net.conv1(images))))
    features = []
    for layer in (net.layer1, net.layer2, net.layer3, net.layer4):
        x = layer(x)
        features.append(x)
    return features


def _relative_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    ours, theirs = ours.float(), theirs.float()
    return float((ours - theirs).norm() / theirs.norm())


@requires_fusion
@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_fused_backbone_equals_torchvisions_resnet_in_float32(name, counting):
    ours, theirs = _backbone_and_torchvision(name)
    expected_block = FusedBasicBlock if name == "resnet18" else FusedBottleneck
    assert all(type(block) is expected_block for block in ours.body.layer2)
    images = torch.randn(1, 3, 70, 94, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        fused = ours(images.contiguous(memory_format=torch.channels_last))
        reference = _torchvision_c2_to_c5(theirs, images)
    # every convolution but the 4 shortcut ones (ResNet-18: 3, layer1 has none) is fused
    assert counting.calls == sum(1 for _ in ours.modules() if isinstance(_, torch.nn.Conv2d)) - (
        3 if name == "resnet18" else 4
    )
    for a, b in zip(fused, reference, strict=True):
        assert a.shape == b.shape
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max()))


@requires_fusion
@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bf16")
def test_fused_backbone_under_bf16_autocast_stays_near_float32(counting):
    ours, theirs = _backbone_and_torchvision("resnet50")
    images = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        reference = _torchvision_c2_to_c5(theirs, images)
        with torch.autocast("cpu", torch.bfloat16):
            fused = ours(images.contiguous(memory_format=torch.channels_last))
    assert counting.calls > 0
    for a, b in zip(fused, reference, strict=True):
        assert a.dtype == torch.bfloat16
        assert _relative_error(a, b) < 0.05


@requires_fusion
@pytest.mark.skipif(not cpu_has_native_bf16(), reason="this CPU has no native bf16")
def test_a_contiguous_bf16_map_takes_the_eager_operators(counting):
    # (CHANNELS_LAST off.) On this layout PyTorch's fused op falls back to an add-and-ReLU that
    # has no bf16 kernel and fails.
    torch.manual_seed(7)
    conv = torch.nn.Conv2d(8, 8, 3, padding=1)
    x, residual = torch.randn(1, 8, 10, 12), torch.randn(1, 8, 10, 12).bfloat16()
    with torch.no_grad(), torch.autocast("cpu", torch.bfloat16):
        added = conv_fusion.conv_add(conv, x, residual, relu=True)
        expected = (conv(x) + residual).relu()
    assert counting.calls == 0
    assert added.dtype == torch.bfloat16 and torch.equal(added, expected)


def test_training_takes_the_eager_operators_and_has_gradients(counting):
    ours, _ = _backbone_and_torchvision("resnet18")
    images = torch.randn(1, 3, 64, 64)
    sum(c.sum() for c in ours(images)).backward()
    assert counting.calls == 0
    assert ours.body.layer4[1].conv2.weight.grad is not None


def test_float64_takes_the_eager_operators(counting):
    ours, _ = _backbone_and_torchvision("resnet18")
    with torch.no_grad():
        ours.double()(torch.randn(1, 3, 64, 64, dtype=torch.float64))
    assert counting.calls == 0


def test_a_hooked_convolution_runs_as_a_module():
    ours, _ = _backbone_and_torchvision("resnet18")
    seen = []
    ours.body.layer2[0].conv2.register_forward_hook(lambda _m, _i, out: seen.append(out.shape))
    with torch.no_grad():
        ours(torch.randn(1, 3, 64, 64).contiguous(memory_format=torch.channels_last))
    assert seen == [torch.Size([1, 128, 8, 8])]


@requires_fusion
def test_conv_add_and_conv_relu_equal_the_eager_operators(counting):
    torch.manual_seed(3)
    conv = torch.nn.Conv2d(8, 16, 3, stride=2, padding=1)
    x = torch.randn(2, 8, 11, 9).contiguous(memory_format=torch.channels_last)
    residual = torch.randn(2, 16, 6, 5)
    with torch.no_grad():
        expected = conv(x)
        assert torch.allclose(conv_fusion.conv_relu(conv, x), expected.relu(), atol=1e-5)
        assert torch.allclose(
            conv_fusion.conv_add(conv, x, residual), expected + residual, atol=1e-5
        )
        added = conv_fusion.conv_add(conv, x, residual, relu=True)
        assert torch.allclose(added, (expected + residual).relu(), atol=1e-5)
    assert counting.calls == 3


@requires_fusion
def test_fused_feature_pyramid_equals_the_eager_one(monkeypatch, counting):
    torch.manual_seed(4)
    fpn = FeaturePyramid((16, 32, 64, 128), channels=24).eval()
    features = [
        torch.randn(1, c, s, s + 1).contiguous(memory_format=torch.channels_last)
        for c, s in ((16, 33), (32, 17), (64, 9), (128, 5))
    ]
    with torch.no_grad():
        fused = fpn(features)
        assert counting.calls == 3  # the three lateral convolutions with a top-down add
        monkeypatch.setattr(conv_fusion, "_POINTWISE", None)
        eager = fpn(features)
    for a, b in zip(fused, eager, strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_fusion_is_found_where_pytorch_has_onednn():
    assert (conv_fusion._POINTWISE is not None) == torch.backends.mkldnn.is_available()


def test_only_cpu_maps_are_fused():
    conv = torch.nn.Conv2d(8, 8, 3, padding=1)
    on_meta = torch.empty(1, 8, 6, 6, device="meta").contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert not conv_fusion.fusable(conv.to("meta"), on_meta)


@requires_fusion
def test_an_unbatched_map_and_a_reflect_padded_convolution_take_the_eager_operators(counting):
    torch.manual_seed(9)
    conv = torch.nn.Conv2d(4, 4, 3, padding=1)
    reflect = torch.nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect")
    unbatched = torch.randn(4, 7, 9)  # [C, H, W], which Conv2d accepts
    x = torch.randn(1, 4, 7, 9).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        assert torch.equal(conv_fusion.conv_relu(conv, unbatched), conv(unbatched).relu())
        assert torch.equal(conv_fusion.conv_relu(reflect, x), reflect(x).relu())
    assert counting.calls == 0


def test_cached_weights_build_once_until_a_source_changes():
    linear = torch.nn.Linear(3, 2)
    builds = []

    def build():
        builds.append(1)
        return linear.weight * 2.0

    sources = (linear.weight, linear.bias)
    with torch.no_grad():
        first = conv_fusion.cached_weights(linear, "double", sources, build)
        assert conv_fusion.cached_weights(linear, "double", sources, build) is first
        assert len(builds) == 1
        conv_fusion.cached_weights(linear, "other tag", sources, build)  # its own entry
        assert len(builds) == 2
        linear.bias.add_(1.0)  # any source's version counter invalidates
        conv_fusion.cached_weights(linear, "double", sources, build)
        assert len(builds) == 3
        linear.load_state_dict(torch.nn.Linear(3, 2).state_dict())
        again = conv_fusion.cached_weights(linear, "double", sources, build)
        assert len(builds) == 4 and torch.equal(again, linear.weight * 2.0)
    with_grad = conv_fusion.cached_weights(linear, "double", sources, build)
    assert len(builds) == 5 and with_grad.requires_grad  # autograd: built, never cached
    with torch.no_grad():
        assert conv_fusion.cached_weights(linear, "double", sources, build) is again


def test_weight_and_bias_casts_plain_convolutions_once_for_inference():
    conv = torch.nn.Conv2d(2, 3, 3)
    with torch.no_grad():
        weight, bias = conv_fusion.weight_and_bias(conv, torch.bfloat16)
        assert weight.dtype == bias.dtype == torch.bfloat16
        assert conv_fusion.weight_and_bias(conv, torch.bfloat16)[0] is weight
        assert torch.equal(weight, conv.weight.to(torch.bfloat16))
        assert conv_fusion.weight_and_bias(conv, torch.float32)[0] is conv.weight
        conv.weight.mul_(3.0)
        assert torch.equal(
            conv_fusion.weight_and_bias(conv, torch.bfloat16)[0], conv.weight.to(torch.bfloat16)
        )
    no_bias = torch.nn.Conv2d(2, 3, 1, bias=False)
    with torch.no_grad():
        assert conv_fusion.weight_and_bias(no_bias, torch.bfloat16)[1] is None


@pytest.mark.filterwarnings("ignore:`torch.jit.trace` is deprecated:FutureWarning")
def test_exporting_is_seen_inside_a_trace_only():
    seen = []

    def forward(x):
        seen.append(conv_fusion.exporting())
        return x * 2

    torch.jit.trace(forward, torch.ones(2), check_trace=False)
    assert seen == [True] and not conv_fusion.exporting()

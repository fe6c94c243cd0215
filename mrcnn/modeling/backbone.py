"""Backbone: a torchvision ResNet-50/101 body giving the feature maps C2-C5.

BatchNorm layers are frozen (fixed affine transforms, the right choice for the small batches of
detection training) unless TRAIN_BN is set. Frozen BatchNorm is folded into the weights of the
convolution before it at run time, which saves one pass over every activation map and gives the
same result; the state dict keeps torchvision's names, so ImageNet and COCO files load as is.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.ops.misc import FrozenBatchNorm2d

from mrcnn.modeling.conv_fusion import (
    autocast_dtype_of,
    cached_weights,
    conv_bn_relu,
    residual_block,
)

#: torchvision ResNet builders by BACKBONE name. ResNet-50/101 are Mask R-CNN's backbones;
#: the light ResNet-18/34 suit small data and laptops (about a fifth of ResNet-50's cost).
RESNET_BUILDERS = {
    "resnet18": torchvision.models.resnet18,
    "resnet34": torchvision.models.resnet34,
    "resnet50": torchvision.models.resnet50,
    "resnet101": torchvision.models.resnet101,
}

#: Output channels of C2, C3, C4, C5 of the bottleneck ResNets (50, 101).
RESNET_CHANNELS = (256, 512, 1024, 2048)


def backbone_channels(name: str) -> tuple[int, int, int, int]:
    """Channels of C2-C5 for a BACKBONE name (basic-block ResNets are 4x narrower)."""
    return (64, 128, 256, 512) if name in ("resnet18", "resnet34") else RESNET_CHANNELS


class FoldedFrozenBatchNorm2d(FrozenBatchNorm2d):
    """A frozen BatchNorm whose transform the preceding convolution applies; forwards as is."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


class ConvWithFrozenBatchNorm(nn.Conv2d):
    """A bias-free convolution followed by a frozen BatchNorm, computed as one convolution.

    The BatchNorm stays a separate module (so its buffers keep their names in the state dict);
    this module only holds an unregistered reference to it.
    """

    _folded_bn: FrozenBatchNorm2d

    def folded_weights(self, dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(weight [O, I, k, k], bias [O]) of the convolution with the BatchNorm folded in.

        The fold is computed in the parameters' dtype, then cast to ``dtype`` (e.g. bfloat16
        under autocast) when given. Without autograd the result is cached per dtype until a
        weight or buffer changes (tracked by the tensors' version counters), so inference pays
        for the folding and the cast once.
        """
        bn = self._folded_bn
        sources = (self.weight, bn.weight, bn.bias, bn.running_mean, bn.running_var)
        target = dtype or self.weight.dtype

        def fold():
            scale = bn.weight * (bn.running_var + bn.eps).rsqrt()
            bias = bn.bias - bn.running_mean * scale
            weight = self.weight * scale.view(-1, 1, 1, 1)
            return weight.to(target), bias.to(target)

        layout = self.weight.is_contiguous(memory_format=torch.channels_last)
        return cached_weights(self, ("folded", target, layout), sources, fold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.folded_weights(autocast_dtype_of(x))
        return F.conv2d(x, weight, bias, self.stride, self.padding, self.dilation, self.groups)


def clear_folded_weights(module: nn.Module) -> None:
    """Drop the cached folded weights of every folded convolution under ``module``.

    Needed only after writing weights in a way that bypasses PyTorch's version counters
    (through ``.data``); loading state dicts and optimiser steps are tracked already.
    """
    for child in module.modules():
        child.__dict__.pop("_folded_cache", None)


def _conv_bn_pairs(body: nn.Module):
    """(conv, bn) pairs of a torchvision ResNet where the BatchNorm directly follows the conv."""
    yield body.conv1, body.bn1
    for layer in (body.layer1, body.layer2, body.layer3, body.layer4):
        for block in layer:
            yield block.conv1, block.bn1
            yield block.conv2, block.bn2
            if hasattr(block, "conv3"):  # bottleneck blocks
                yield block.conv3, block.bn3
            if block.downsample is not None:
                yield block.downsample[0], block.downsample[1]


class FusedBottleneck(Bottleneck):
    """A Bottleneck with folded BatchNorms whose ReLUs and shortcut add run inside its
    convolutions on the CPU (:func:`mrcnn.modeling.conv_fusion.residual_block`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return residual_block(self, x)


class FusedBasicBlock(BasicBlock):
    """:class:`FusedBottleneck` for the basic blocks of ResNet-18/34."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return residual_block(self, x)


_FUSED_BLOCKS = {Bottleneck: FusedBottleneck, BasicBlock: FusedBasicBlock}


def frozen_batchnorm_is_untrained(backbone: nn.Module) -> bool:
    """True when ``backbone``'s BatchNorm is frozen (TRAIN_BN off) and every layer of it is still
    at its initial identity (mean 0, variance 1, scale 1, shift 0): no weights reached it, however
    they were loaded. Training then explodes (activations near 1e7 on photos)."""
    frozen = [m for m in backbone.modules() if isinstance(m, FrozenBatchNorm2d)]
    return bool(frozen) and all(
        bool((bn.running_mean == 0).all() and (bn.running_var == 1).all())
        and bool((bn.weight == 1).all() and (bn.bias == 0).all())
        for bn in frozen
    )


def fold_frozen_batchnorm(body: nn.Module) -> None:
    """Make every conv of a ResNet body apply its following frozen BatchNorm (in place), and
    every block whose convolutions all do so fuse its ReLUs and shortcut add."""
    for conv, bn in _conv_bn_pairs(body):
        if isinstance(bn, FrozenBatchNorm2d) and conv.bias is None:
            conv.__class__ = ConvWithFrozenBatchNorm
            object.__setattr__(conv, "_folded_bn", bn)
            bn.__class__ = FoldedFrozenBatchNorm2d
    for layer in (body.layer1, body.layer2, body.layer3, body.layer4):
        for block in layer:
            convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
            if type(block) in _FUSED_BLOCKS and all(
                isinstance(conv, ConvWithFrozenBatchNorm) for conv in convs
            ):
                block.__class__ = _FUSED_BLOCKS[type(block)]


def resnet_body(name: str, train_bn: bool = False) -> nn.Module:
    """A torchvision ResNet without its classifier (``avgpool`` and ``fc`` removed).

    Args:
        name: "resnet18", "resnet34", "resnet50" or "resnet101".
        train_bn: use trainable ``nn.BatchNorm2d``; otherwise frozen BatchNorm.
    """
    if name not in RESNET_BUILDERS:
        raise ValueError(f"BACKBONE={name!r}: use one of {', '.join(RESNET_BUILDERS)}")
    norm_layer = nn.BatchNorm2d if train_bn else FrozenBatchNorm2d
    body = RESNET_BUILDERS[name](weights=None, norm_layer=norm_layer)
    del body.avgpool, body.fc
    if not train_bn:
        fold_frozen_batchnorm(body)
    return body


class ResNetBackbone(nn.Module):
    """ResNet body returning C2-C5.

    forward(images [B, 3, H, W]) -> [C2, C3, C4, C5] with strides 4, 8, 16, 32 and
    :func:`backbone_channels` channels; each side is ceil(side / stride).
    """

    def __init__(self, name: str, train_bn: bool = False) -> None:
        super().__init__()
        self.body = resnet_body(name, train_bn)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        body = self.body
        x = body.maxpool(conv_bn_relu(body.conv1, body.bn1, images))
        c2 = body.layer1(x)
        c3 = body.layer2(c2)
        c4 = body.layer3(c3)
        c5 = body.layer4(c4)
        return [c2, c3, c4, c5]

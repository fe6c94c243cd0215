"""CPU inference: a convolution with the ReLU and the residual add after it, in one oneDNN call.

Eager PyTorch runs a convolution, then a ReLU over its output and, in a residual block, an add
and another ReLU: up to three more passes over every activation map, about a fifth of a bf16
ResNet's time on a CPU with AMX. oneDNN applies them as post-ops while the convolution's output
is still in cache; PyTorch exposes that as ``torch.ops.mkldnn._convolution_pointwise`` (what
``torch.compile``'s CPU backend emits for the same pattern).

The fused call is taken only where it means the same computation: CPU tensors in float32 or
bfloat16 (the autocast dtype when autocast is on) in channels-last layout, no autograd
(inference; the op has no backward), integer padding with zeros, and a PyTorch built with
oneDNN that has the op.
Everywhere else (training, CUDA, float64, a build without it) the same functions run the eager
ops, so callers need no second code path. Results agree up to rounding: the fused add sums in
float32 and rounds to bf16 once, where eager rounds the convolution's output first.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

_FUSABLE_DTYPES = (torch.float32, torch.bfloat16)


def _pointwise_op():
    """torch.ops.mkldnn._convolution_pointwise, or None where this PyTorch lacks it."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        return torch.ops.mkldnn._convolution_pointwise
    except (AttributeError, RuntimeError):
        return None


_POINTWISE = _pointwise_op()
#: torch.compiler.is_compiling (PyTorch >= 2.3); older versions have no compiler to ask.
_is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", lambda: False)


def autocast_dtype_of(x: torch.Tensor) -> torch.dtype | None:
    """The autocast dtype of ``x``'s device where autocast is on there, else None."""
    device_type = x.device.type
    if torch.is_autocast_enabled(device_type):
        return torch.get_autocast_dtype(device_type)
    return None


def compute_dtype(x: torch.Tensor) -> torch.dtype:
    """The dtype a convolution of ``x`` computes in: autocast's where it is on, else x's."""
    return autocast_dtype_of(x) or x.dtype


def cached_weights(module: nn.Module, tag, sources: tuple, build):
    """``build()``, kept on ``module`` under ``tag`` while no autograd runs and none of the
    ``sources`` tensors changed (their version counters: loading a state dict and optimiser
    steps count), so that inference folds, casts or reorders its weights once.

    :func:`mrcnn.modeling.backbone.clear_folded_weights` drops the caches (needed only after
    writes through ``.data``, which bypass the counters).
    """
    key = tuple((id(t), t._version, t.dtype, t.device) for t in sources if t is not None)
    caches = module.__dict__.setdefault("_folded_cache", {})
    cached = caches.get(tag)
    if cached is not None and cached[0] == key and not torch.is_grad_enabled():
        return cached[1]
    value = build()
    if not torch.is_grad_enabled():
        caches[tag] = (key, value)
    return value


def weight_and_bias(
    conv: nn.Conv2d, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(weight [O, I, k, k], bias [O] or None) of ``conv`` in ``dtype``, cast once for inference
    (:func:`cached_weights`); a convolution with a folded frozen BatchNorm
    (:class:`mrcnn.modeling.backbone.ConvWithFrozenBatchNorm`) gives its folded weights."""
    folded = getattr(conv, "folded_weights", None)
    if folded is not None:
        return folded(dtype)

    def cast():
        return conv.weight.to(dtype), None if conv.bias is None else conv.bias.to(dtype)

    return cached_weights(conv, ("cast", dtype), (conv.weight, conv.bias), cast)


def exporting() -> bool:
    """Whether a tracer or compiler (ONNX, torch.export, torch.compile, torch.jit.trace) is
    recording the forward: inference shortcuts then step aside for the standard operators."""
    return torch.jit.is_tracing() or _is_compiling()


def fusable(conv: nn.Conv2d, x: torch.Tensor) -> bool:
    """Whether ``conv`` over ``x`` can run as one fused oneDNN call (see the module text).

    The input must be channels-last (CHANNELS_LAST, the default): on other layouts PyTorch's
    fused op falls back to separate operators, and its bf16 add-and-ReLU fallback fails. A
    convolution with forward hooks runs as a module, so that the hooks see it; tracing and
    exporting (ONNX, torch.export, torch.compile) see the standard operators.
    """
    return (
        _POINTWISE is not None
        and not exporting()
        and not conv._forward_hooks
        and not conv._forward_pre_hooks
        and x.device.type == "cpu"
        and not torch.is_grad_enabled()
        and compute_dtype(x) in _FUSABLE_DTYPES
        and x.dtype in _FUSABLE_DTYPES
        and x.dim() == 4
        and x.is_contiguous(memory_format=torch.channels_last)
        and isinstance(conv.padding, tuple)
        and conv.padding_mode == "zeros"
        and type(conv) is not nn.ConvTranspose2d
    )


def _fused(
    conv: nn.Conv2d, x: torch.Tensor, residual: torch.Tensor | None, relu: bool
) -> torch.Tensor:
    dtype = compute_dtype(x)
    weight, bias = weight_and_bias(conv, dtype)
    geometry = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
    x = x.to(dtype)
    if residual is None:
        return _POINTWISE(x, weight, bias, *geometry, "relu" if relu else "none", [], "")
    unary = "relu" if relu else None  # the binary form spells "no unary op" as None
    return _POINTWISE.binary(
        x, residual.to(dtype), weight, bias, *geometry, "add", 1.0, unary, [], ""
    )


def conv_relu(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """relu(conv(x)): [B, I, H, W] -> [B, O, H', W']."""
    if fusable(conv, x):
        return _fused(conv, x, None, relu=True)
    return F.relu(conv(x), inplace=True)


def conv_add(
    conv: nn.Conv2d, x: torch.Tensor, residual: torch.Tensor, relu: bool = False
) -> torch.Tensor:
    """conv(x) + residual, then a ReLU when ``relu``; residual has the output's shape."""
    if fusable(conv, x):
        return _fused(conv, x, residual, relu)
    out = conv(x) + residual
    return F.relu(out, inplace=True) if relu else out


def conv_bn_relu(conv: nn.Conv2d, bn: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """relu(bn(conv(x))) for a ResNet stem; fused where the BatchNorm is folded into ``conv``."""
    if hasattr(conv, "folded_weights"):
        return conv_relu(conv, x)  # the folded BatchNorm module forwards as is
    return F.relu(bn(conv(x)), inplace=True)


def residual_block(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The forward of a torchvision ResNet Bottleneck or BasicBlock whose BatchNorms are folded
    into its convolutions (frozen BatchNorm, so each ``bn`` module forwards as is), with each
    ReLU and the shortcut add fused into the convolution before it.

    [B, C, H, W] -> [B, C', H / stride, W / stride].
    """
    shortcut = x if block.downsample is None else block.downsample(x)
    convs = [block.conv1, block.conv2] + ([block.conv3] if hasattr(block, "conv3") else [])
    for conv in convs[:-1]:
        x = conv_relu(conv, x)
    return conv_add(convs[-1], x, shortcut, relu=True)

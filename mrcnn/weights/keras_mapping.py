"""Matterport's Keras layers -> the parameters of the matterport-flavour network.

Keras stores convolution kernels as [kh, kw, in, out], dense kernels as [in, out] and
transposed-convolution kernels as [kh, kw, out, in]; PyTorch wants [out, in, kh, kw],
[out, in] and [in, out, kh, kw]. Beyond those transposes:

* backbone conv biases are folded into the following BatchNorm's running mean (the BatchNorm
  subtracts the mean right after adding the bias, so ``mean - bias`` is exact);
* the heads' frozen BatchNorms (epsilon 1e-3) are folded into the weights of the convolution
  before them, which our heads hold as ``fc6``/``fc7`` (the 7x7 "valid" and 1x1 convolutions
  of the box head on a 7x7 patch are fully connected layers) and the mask head's convs;
* the RPN's two-way softmax becomes one logit: foreground minus background logit;
* box deltas are reordered from Keras' (dy, dx, dh, dw) to (dx, dy, dw, dh).
"""

from __future__ import annotations

import re

import numpy as np
import torch

from mrcnn.modeling.matterport import KERAS_BN_EPS, keras_bn_fold

#: Keras delta order (dy, dx, log dh, log dw) -> ours (dx, dy, log dw, log dh).
DELTA_ORDER = (1, 0, 3, 2)

_BLOCK = re.compile(r"^(res|bn)(\d)([a-z])_branch(2a|2b|2c|1)$")
_BRANCH = {"2a": ("conv1", "bn1"), "2b": ("conv2", "bn2"), "2c": ("conv3", "bn3")}
_BRANCH["1"] = ("downsample.0", "downsample.1")

Layers = dict[str, list[np.ndarray]]
State = dict[str, torch.Tensor]
Sources = dict[str, tuple[str, ...]]


class NotMatterportError(ValueError):
    """The Keras file's layers are not those of Matterport's Mask R-CNN."""


def _t(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.asarray(array, dtype=np.float32).copy())


def conv_weight(kernel: np.ndarray) -> torch.Tensor:
    """Keras [kh, kw, in, out] -> torch [out, in, kh, kw]."""
    return _t(kernel).permute(3, 2, 0, 1)


def _fold(kernel: np.ndarray, bias: np.ndarray, bn: list[np.ndarray]):
    """(weight [out, in, kh, kw], bias [out]) of a conv followed by a frozen Keras BatchNorm,
    computed in float64."""
    gamma, beta, mean, var = (torch.from_numpy(np.asarray(a, np.float64)) for a in bn)
    scale, shift = keras_bn_fold(gamma, beta, mean, var, KERAS_BN_EPS)
    weight = torch.from_numpy(np.asarray(kernel, np.float64)).permute(3, 2, 0, 1)
    weight = weight * scale.view(-1, 1, 1, 1)
    folded_bias = torch.from_numpy(np.asarray(bias, np.float64)) * scale + shift
    return weight.float().contiguous(), folded_bias.float()


def _backbone(layers: Layers, state: State, sources: Sources) -> None:
    """conv1/bn_conv1 and res{stage}{block}_branch* / bn* -> backbone.body.*."""
    convs = [("conv1", "bn_conv1", "backbone.body.conv1", "backbone.body.bn1")]
    for name in layers:
        match = _BLOCK.match(name)
        if match and match.group(1) == "res":
            _, stage, block, branch = match.groups()
            conv, bn = _BRANCH[branch]
            prefix = f"backbone.body.layer{int(stage) - 1}.{ord(block) - ord('a')}."
            convs.append((name, f"bn{stage}{block}_branch{branch}", prefix + conv, prefix + bn))
    for conv_name, bn_name, conv_key, bn_key in convs:
        if conv_name not in layers or bn_name not in layers:
            continue
        conv = layers[conv_name]
        gamma, beta, mean, var = layers[bn_name]
        if len(conv) > 1:  # the Keras conv's bias, folded into the BatchNorm's mean
            mean = mean.astype(np.float64) - conv[1]
        values = {"weight": gamma, "bias": beta, "running_mean": mean, "running_var": var}
        state[conv_key + ".weight"] = conv_weight(conv[0])
        sources[conv_key + ".weight"] = (conv_name, bn_name)
        for suffix, value in values.items():
            state[f"{bn_key}.{suffix}"] = _t(value)
            sources[f"{bn_key}.{suffix}"] = (conv_name, bn_name)


def _plain_conv(layers: Layers, name: str, key: str, state: State, sources: Sources) -> None:
    if name in layers:
        kernel, bias = layers[name][:2]
        state[key + ".weight"], state[key + ".bias"] = conv_weight(kernel), _t(bias)
        sources[key + ".weight"] = sources[key + ".bias"] = (name,)


def _folded_conv(layers, conv_name, bn_name, key, state, sources, flatten=False) -> None:
    if conv_name not in layers or bn_name not in layers:
        return
    kernel, bias = layers[conv_name][:2]
    weight, folded_bias = _fold(kernel, bias, layers[bn_name])
    state[key + ".weight"] = weight.reshape(weight.shape[0], -1) if flatten else weight
    state[key + ".bias"] = folded_bias
    sources[key + ".weight"] = sources[key + ".bias"] = (conv_name, bn_name)


def _rpn(layers: Layers, state: State, sources: Sources) -> None:
    """rpn_model's (conv, class, bbox) kernels and biases -> rpn.conv/objectness/deltas."""
    if "rpn_model" not in layers:
        return
    arrays = layers["rpn_model"]
    pairs = [(arrays[i], arrays[i + 1]) for i in range(0, len(arrays) - 1, 2)]
    conv = next((p for p in pairs if p[0].shape[0] == 3), None)
    heads = sorted((p for p in pairs if p[0].shape[0] == 1), key=lambda p: p[0].shape[-1])
    if conv is None or len(heads) != 2:
        shapes = [tuple(a.shape) for a in arrays]
        raise NotMatterportError(f"rpn_model holds arrays of shapes {shapes}, not Matterport's RPN")
    (class_kernel, class_bias), (bbox_kernel, bbox_bias) = heads
    anchors = class_kernel.shape[-1] // 2
    state["rpn.conv.weight"], state["rpn.conv.bias"] = conv_weight(conv[0]), _t(conv[1])
    # channel 2a is anchor a's background logit, 2a + 1 its foreground logit
    fg_minus_bg = class_kernel[..., 1::2] - class_kernel[..., 0::2]
    state["rpn.objectness.weight"] = conv_weight(fg_minus_bg)
    state["rpn.objectness.bias"] = _t(class_bias[1::2] - class_bias[0::2])
    order = (np.arange(anchors)[:, None] * 4 + np.array(DELTA_ORDER)[None, :]).reshape(-1)
    state["rpn.deltas.weight"] = conv_weight(bbox_kernel[..., order])
    state["rpn.deltas.bias"] = _t(bbox_bias[order])
    for key in [k for k in state if k.startswith("rpn.")]:
        sources[key] = ("rpn_model",)


def _heads(layers: Layers, state: State, sources: Sources) -> None:
    fold = _folded_conv
    fold(layers, "mrcnn_class_conv1", "mrcnn_class_bn1", "box_head.fc6", state, sources, True)
    fold(layers, "mrcnn_class_conv2", "mrcnn_class_bn2", "box_head.fc7", state, sources, True)
    if "mrcnn_class_logits" in layers:
        kernel, bias = layers["mrcnn_class_logits"][:2]
        state["box_head.class_logits.weight"] = _t(kernel.T)
        state["box_head.class_logits.bias"] = _t(bias)
        for s in ("weight", "bias"):
            sources[f"box_head.class_logits.{s}"] = ("mrcnn_class_logits",)
    if "mrcnn_bbox_fc" in layers:
        kernel, bias = layers["mrcnn_bbox_fc"][:2]
        classes = kernel.shape[1] // 4
        order = (np.arange(classes)[:, None] * 4 + np.array(DELTA_ORDER)[None, :]).reshape(-1)
        state["box_head.deltas.weight"] = _t(kernel[:, order].T)
        state["box_head.deltas.bias"] = _t(bias[order])
        for s in ("weight", "bias"):
            sources[f"box_head.deltas.{s}"] = ("mrcnn_bbox_fc",)
    for i in range(4):
        names = (f"mrcnn_mask_conv{i + 1}", f"mrcnn_mask_bn{i + 1}")
        fold(layers, *names, f"mask_head.convs.{i}", state, sources)
    if "mrcnn_mask_deconv" in layers:
        kernel, bias = layers["mrcnn_mask_deconv"][:2]
        # Keras [kh, kw, out, in] -> torch ConvTranspose2d [in, out, kh, kw]
        state["mask_head.deconv.weight"] = _t(kernel).permute(3, 2, 0, 1).contiguous()
        state["mask_head.deconv.bias"] = _t(bias)
        for s in ("weight", "bias"):
            sources[f"mask_head.deconv.{s}"] = ("mrcnn_mask_deconv",)
    _plain_conv(layers, "mrcnn_mask", "mask_head.logits", state, sources)


def to_state_dict(layers: Layers) -> tuple[State, Sources]:
    """Matterport's Keras layers as this project's parameters.

    Args:
        layers: {layer name: arrays in weight_names order}, as
            :func:`mrcnn.weights.keras_h5.read_keras_layers` reads them.
    Returns:
        (state, sources): tensors by parameter name, and the Keras layers each came from.
    Raises:
        NotMatterportError: naming the layers found when none is Matterport's.
    """
    if "conv1" not in layers or not any(_BLOCK.match(n) for n in layers):
        shown = ", ".join(list(layers)[:6]) or "no layer with weights"
        more = f" and {len(layers) - 6} more" if len(layers) > 6 else ""
        raise NotMatterportError(
            f"not a Matterport Mask R-CNN or ResNet Keras model: its layers are {shown}{more} "
            "(expected conv1, res2a_branch2a, fpn_c5p5, rpn_model, mrcnn_class_logits, ...)"
        )
    state: State = {}
    sources: Sources = {}
    _backbone(layers, state, sources)
    for level in range(2, 6):
        _plain_conv(layers, f"fpn_c{level}p{level}", f"fpn.lateral.{level - 2}", state, sources)
        _plain_conv(layers, f"fpn_p{level}", f"fpn.output.{level - 2}", state, sources)
    _rpn(layers, state, sources)
    _heads(layers, state, sources)
    return state, sources


def weight_shapes(layers: Layers) -> dict[str, list[tuple[int, ...]]]:
    """{layer: [shape of each weight]} of read layers, what :func:`infer_settings` takes."""
    return {name: [tuple(weight.shape) for weight in weights] for name, weights in layers.items()}


def infer_settings(shapes: dict[str, list[tuple[int, ...]]]) -> dict:
    """Config values a Matterport file's weight shapes ({layer: [shape of each weight]})
    determine: BACKBONE (from the number of res4 blocks: 6 for ResNet-50, 23 for ResNet-101)
    and, when it has the heads, NUM_CLASSES and FPN_CLASSIF_FC_LAYERS_SIZE."""
    res4 = {m.group(3) for n in shapes if (m := _BLOCK.match(n)) and m.group(2) == "4"}
    settings = {"BACKBONE": "resnet101" if len(res4) > 6 else "resnet50"}
    if "mrcnn_class_logits" in shapes:
        kernel, bias = shapes["mrcnn_class_logits"][:2]
        settings["NUM_CLASSES"] = int(bias[0])
        settings["FPN_CLASSIF_FC_LAYERS_SIZE"] = int(kernel[0])
    return settings

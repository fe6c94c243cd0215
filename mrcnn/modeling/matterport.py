"""The stages of Matterport's Keras Mask R-CNN that differ from this project's default network.

Selected by ``NETWORK_FLAVOUR = "matterport"``. The backbone, RPN and heads are this project's
modules with a few switches (see :class:`MatterportResNetBackbone`; the RPN's 512-channel conv;
heads whose BatchNorm is folded into their weights when a .h5 is read). What Matterport computes
in normalised coordinates is computed here the same way:

* normalised box = ((x1, y1, x2 - 1, y2 - 1) in pixels) / (W - 1, H - 1, W - 1, H - 1), the
  arithmetic of Matterport's ``norm_boxes``; :func:`mrcnn.structures.boxes.normalise_boxes` and
  :func:`mrcnn.structures.boxes.denormalise_boxes` (without rounding) convert;
* the proposal layer (:func:`proposal_steps`): top PRE_NMS_LIMIT over all levels, deltas decoded as
  Matterport decodes them, clip to [0, 1], NMS, POST_NMS_ROIS;
* the level rule of PyramidROIAlign (:func:`roi_levels`, rounding half to even as tf.round);
* the detection layer (:func:`detections`): the top class of each ROI, DETECTION_MIN_CONFIDENCE,
  per-class NMS, the best DETECTION_MAX_INSTANCES, with no minimum box size.

Boxes are (x1, y1, x2, y2) here, where Matterport writes (y1, x1, y2, x2).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torchvision.ops import batched_nms

from mrcnn.modeling.backbone import ResNetBackbone
from mrcnn.modeling.conv_fusion import conv_bn_relu
from mrcnn.modeling.detection import best_survivors
from mrcnn.modeling.proposals import ProposalSteps, stable_top_k, top_k_per_group
from mrcnn.structures.boxes import denormalise_boxes, normalise_boxes

#: Keras BatchNormalization's default epsilon, which Matterport's layers keep.
KERAS_BN_EPS = 1e-3


class MatterportResNetBackbone(ResNetBackbone):
    """Matterport's ResNet-50/101 (Keras' ResNet v1) on torchvision's modules.

    Differences from torchvision's ResNet: the stride of each stage's first block sits in its
    first 1x1 convolution (and the shortcut), not the 3x3; BatchNorm epsilon is 1e-3; the 3x3
    stride-2 max pool pads as TensorFlow's "same" (bottom/right first). Keras' conv biases are
    folded into the BatchNorm running means when weights are read (exact: the BatchNorm
    subtracts its mean right after the bias). conv1's explicit zero padding of 3 followed by a
    "valid" 7x7 convolution is torchvision's conv1 (padding 3).

    forward(images [B, 3, H, W]) -> [C2, C3, C4, C5], strides 4, 8, 16, 32.
    """

    def __init__(self, name: str, train_bn: bool = False) -> None:
        super().__init__(name, train_bn)
        body = self.body
        for layer in (body.layer2, body.layer3, body.layer4):
            first = layer[0]
            stride = first.conv2.stride
            first.conv1.stride, first.conv2.stride = stride, (1, 1)
        for module in body.modules():
            if hasattr(module, "eps") and hasattr(module, "running_var"):
                module.eps = KERAS_BN_EPS

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        body = self.body
        x = tf_same_max_pool(conv_bn_relu(body.conv1, body.bn1, images), 3, 2)
        c2 = body.layer1(x)
        c3 = body.layer2(c2)
        c4 = body.layer3(c3)
        c5 = body.layer4(c4)
        return [c2, c3, c4, c5]


def tf_same_max_pool(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """TensorFlow's "same" max pooling of [B, C, H, W] (ceil(side / stride) outputs per side).

    For even sides "same" pads one cell at the bottom/right only, which is what ceil_mode
    pooling does without a padded copy; for odd sides it pads one each side, which is
    symmetric padding. Mixed sides pad a copy (:func:`tf_same_pad`).
    """
    height, width = x.shape[-2:]
    if stride == 2 and kernel == 3 and height % 2 == width % 2:
        odd = height % 2
        return F.max_pool2d(x, kernel, stride, padding=odd, ceil_mode=not odd)
    return F.max_pool2d(tf_same_pad(x, kernel, stride), kernel, stride)


def tf_same_pad(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """Pad [B, C, H, W] as TensorFlow's "same" pooling does: ceil(n / stride) outputs, the odd
    pixel of padding at the bottom/right; padded cells never win a max (-inf)."""
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad wants the last dimension first
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=float("-inf"))


# ------------------------------------------------------------------------------------------------
# Normalised coordinates
# ------------------------------------------------------------------------------------------------
def apply_deltas(boxes: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """Matterport's ``apply_box_deltas_graph``, in its operation order.

    Args:
        boxes: [N, 4] (x1, y1, x2, y2).
        deltas: [N, 4] (dx, dy, dw, dh), already multiplied by the std devs.
    Returns:
        [N, 4] (x1, y1, x2, y2); no clamp on dw, dh (Matterport has none).
    """
    width = boxes[:, 2] - boxes[:, 0]
    height = boxes[:, 3] - boxes[:, 1]
    cx = boxes[:, 0] + 0.5 * width + deltas[:, 0] * width
    cy = boxes[:, 1] + 0.5 * height + deltas[:, 1] * height
    width = width * torch.exp(deltas[:, 2])
    height = height * torch.exp(deltas[:, 3])
    x1 = cx - 0.5 * width
    y1 = cy - 0.5 * height
    return torch.stack([x1, y1, x1 + width, y1 + height], dim=1)


def clip_to_window(boxes: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
    """Clip every coordinate of [N, 4] (x1, y1, x2, y2) boxes into [N, 4] or [4] windows
    (Matterport's ``clip_boxes_graph``)."""
    low = torch.cat([windows[..., :2], windows[..., :2]], dim=-1)
    high = torch.cat([windows[..., 2:], windows[..., 2:]], dim=-1)
    return torch.maximum(torch.minimum(boxes, high), low)


def proposal_steps(
    objectness: torch.Tensor,
    deltas: torch.Tensor,
    anchors: torch.Tensor,
    pre_nms_limit: int,
    post_nms_limit: int,
    nms_threshold: float,
    std: torch.Tensor,
) -> ProposalSteps:
    """Matterport's ProposalLayer, step by step: its ``pre_nms_anchors``, ``refined_anchors``,
    ``refined_anchors_clipped`` and the rows its ``rpn_non_max_suppression`` keeps;
    ``.proposals()`` gives its output (Matterport pads each image's proposals with zero boxes
    up to ``post_nms_limit``; these are not returned).

    Args:
        objectness: [B, A] logits (foreground minus background logit).
        deltas: [B, A, 4] (dx, dy, dw, dh) before ``std``.
        anchors: [A, 4] (x1, y1, x2, y2) normalised.
        std: [4] RPN_BBOX_STD_DEV.
    Returns:
        :class:`mrcnn.modeling.proposals.ProposalSteps`, boxes normalised (x1, y1, x2, y2).
    """
    batch, count = objectness.shape
    k = min(int(pre_nms_limit), count)
    # Rank by probability, not logit: Keras ranks float32 probabilities, which tie near 1,
    # and breaks ties by anchor index (a stable sort does the same).
    probs = torch.sigmoid(objectness)
    top = stable_top_k(probs, k)
    chosen = deltas.gather(1, top[..., None].expand(-1, -1, 4)).reshape(-1, 4)
    chosen_anchors = anchors.to(deltas)[top.reshape(-1)]
    refined = apply_deltas(chosen_anchors, chosen * std.to(deltas))
    boxes = clip_to_window(refined, refined.new_tensor([0.0, 0.0, 1.0, 1.0]))
    scores = probs.gather(1, top).reshape(-1)
    image_index = torch.arange(batch, device=boxes.device).repeat_interleave(k)
    # NMS ranks the candidates by their place in that order: TensorFlow's NMS breaks score
    # ties by index, torchvision's sort may not. Without ties, NMS can also stop looking once
    # POST_NMS_ROIS survive (best_survivors).
    ranks = torch.arange(k, 0, -1, dtype=boxes.dtype, device=boxes.device).repeat(batch)
    keep = best_survivors(
        boxes, ranks, image_index, image_index, float(nms_threshold), int(post_nms_limit)
    )
    return ProposalSteps(chosen_anchors, refined, boxes, scores, image_index, keep)


def roi_levels(boxes: torch.Tensor, image_shape) -> torch.Tensor:
    """Matterport's pyramid level (2..5) of normalised boxes [K, 4] in an input of
    ``image_shape`` (H, W): 4 + round(log2(sqrt(h * w) / (224 / sqrt(H * W)))), rounding half
    to even (tf.round). Empty boxes go to level 2. Returns int64 [K]."""
    h = boxes[:, 3] - boxes[:, 1]
    w = boxes[:, 2] - boxes[:, 0]
    area = torch.tensor(float(image_shape[0] * image_shape[1]), dtype=boxes.dtype)
    level = torch.log(torch.sqrt(h * w) / (224.0 / torch.sqrt(area))) / math.log(2.0)
    level = torch.nan_to_num(torch.round(level), nan=-2.0, neginf=-2.0, posinf=1.0)
    return (4 + level).clamp(2, 5).to(torch.int64)


def refine_boxes(
    rois: torch.Tensor, class_deltas: torch.Tensor, std: torch.Tensor, windows: torch.Tensor
) -> torch.Tensor:
    """The detection layer's refinement: normalised [K, 4] (x1, y1, x2, y2) ROIs moved by the
    deltas of one class each ([K, 4] (dx, dy, dw, dh) before ``std``) and clipped into their
    image windows ([K, 4] normalised)."""
    boxes = apply_deltas(rois, class_deltas * std.to(class_deltas))
    return clip_to_window(boxes, windows.to(boxes))


def detections(
    class_logits: torch.Tensor,
    deltas: torch.Tensor,
    rois: torch.Tensor,
    image_index: torch.Tensor,
    windows: torch.Tensor,
    std: torch.Tensor,
    min_confidence: float,
    nms_threshold: float,
    max_instances: int,
) -> dict[str, torch.Tensor]:
    """Matterport's DetectionLayer (``refine_detections_graph``).

    Args:
        class_logits: [K, C]; deltas: [K, C, 4] (dx, dy, dw, dh) before ``std``.
        rois: [K, 4] normalised (x1, y1, x2, y2); image_index: int64 [K].
        windows: [B, 4] normalised (x1, y1, x2, y2) image windows.
        std: [4] BBOX_STD_DEV.
    Returns:
        dict of "boxes" [D, 4] normalised (x1, y1, x2, y2), "class_ids" int64 [D], "scores"
        [D], "image_index" int64 [D]; grouped by image, best first.
    """
    probs = torch.softmax(class_logits, dim=1)
    scores, cls = probs.max(dim=1)
    rows = torch.arange(len(cls), device=cls.device)
    boxes = refine_boxes(rois, deltas[rows, cls], std, windows.to(rois)[image_index])
    keep = cls > 0
    if min_confidence:
        keep &= scores >= min_confidence
    kept = torch.nonzero(keep).squeeze(1)
    groups = image_index[kept] * class_logits.shape[1] + cls[kept]
    kept = kept[batched_nms(boxes[kept], scores[kept], groups, float(nms_threshold))]
    kept = top_k_per_group(kept, image_index, int(max_instances))
    return {
        "boxes": boxes[kept],
        "class_ids": cls[kept],
        "scores": scores[kept],
        "image_index": image_index[kept],
    }


def keras_bn_fold(
    gamma: torch.Tensor,
    beta: torch.Tensor,
    mean: torch.Tensor,
    var: torch.Tensor,
    eps: float = KERAS_BN_EPS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(scale [O], shift [O]) of a frozen Keras BatchNorm: y = x * scale + shift."""
    scale = gamma / torch.sqrt(var + eps)
    return scale, beta - mean * scale


__all__ = [
    "MatterportResNetBackbone",
    "apply_deltas",
    "clip_to_window",
    "denormalise_boxes",
    "detections",
    "keras_bn_fold",
    "normalise_boxes",
    "proposal_steps",
    "refine_boxes",
    "roi_levels",
    "tf_same_max_pool",
    "tf_same_pad",
]

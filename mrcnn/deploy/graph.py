"""The inference network for one image of a fixed size, written with operators ONNX has.

:class:`InferenceGraph` wraps a :class:`~mrcnn.modeling.network.MaskRCNNNet` and runs the same
stages with the same weights, changing only what cannot be exported:

- ROIAlign is torchvision's ``roi_align`` on each pyramid level (ONNX ``RoiAlign``) instead of
  the sparse-matrix product of :mod:`mrcnn.modeling.roi_align`; both sample the same points with
  the same weights.
- NMS within groups (pyramid levels, classes) offsets each group's boxes by a constant larger
  than the image, then calls ``torchvision.ops.nms`` (ONNX ``NonMaxSuppression``);
  torchvision's ``batched_nms`` chooses its method by the (data-dependent) number of boxes,
  which an exported graph cannot do.
- One image, no batch dimension in the outputs: proposals and detections of an image are
  simply the first ``limit`` survivors of NMS (best first), no per-image grouping.

The anchors are computed once for the fixed input size and stored in the graph. Every count
after a score threshold or NMS is data-dependent; the graph keeps those sizes dynamic.

The detection score threshold is an input ("min_score"), not a constant: the video modes and the
local page lower and raise it while a model runs, and one graph (an int8 one above all, which
takes calibration to make) serves every threshold, with the mask head still run only on the
detections above it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torchvision.ops import nms, roi_align

from mrcnn.modeling.detection import MIN_DETECTION_SIZE
from mrcnn.modeling.network import MaskRCNNNet
from mrcnn.modeling.proposals import MIN_PROPOSAL_SIZE, select_top_anchors
from mrcnn.modeling.roi_align import MIN_LEVEL, assign_levels
from mrcnn.structures.boxes import clip_boxes, decode_deltas, large_enough

#: Names of the graph's inputs and outputs, in order.
INPUT_NAMES = ("image", "window", "min_score")
OUTPUT_NAMES = ("boxes", "class_ids", "scores", "masks")


def nms_within_groups(
    boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float, span: float
) -> torch.Tensor:
    """NMS applied separately within each group, as one NMS call.

    Args:
        boxes: [N, 4] (x1, y1, x2, y2), every coordinate in [0, span).
        scores: [N]; groups: int64 [N] group of each box.
        threshold: IoU above which the lower-scoring box of a group is suppressed.
        span: a bound on the coordinates; shifting group g by g * span keeps groups apart.
    Returns:
        int64 [M] indices of the kept boxes, best score first.
    """
    shifted = boxes + (groups.to(boxes.dtype) * span)[:, None]
    return nms(shifted, scores, threshold)


def level_roi_align(
    features: Sequence[torch.Tensor],
    boxes: torch.Tensor,
    output_size: int,
    strides: Sequence[int],
    sampling_ratio: int,
    aligned: bool,
    rounding: str,
) -> torch.Tensor:
    """Pyramid ROIAlign of one image with ``torchvision.ops.roi_align`` per level.

    The same sampling as :func:`mrcnn.modeling.roi_align.pyramid_roi_align`: each box reads the
    level :func:`~mrcnn.modeling.roi_align.assign_levels` gives it.

    Args:
        features: [P2, P3, P4, P5], each [1, C, H_l, W_l].
        boxes: [K, 4] (x1, y1, x2, y2) in network-input pixels.
        output_size, strides, sampling_ratio, aligned, rounding: as for ``pyramid_roi_align``.
    Returns:
        [K, C, output_size, output_size], in the order of ``boxes``.
    """
    levels = assign_levels(boxes, rounding) - MIN_LEVEL
    pooled, taken = [], []
    for level, (feature, stride) in enumerate(zip(features, strides, strict=True)):
        index = torch.nonzero(levels == level).squeeze(1)
        rois = torch.cat([torch.zeros_like(boxes[index, :1]), boxes[index]], dim=1)
        pooled.append(
            roi_align(feature, rois, output_size, 1.0 / float(stride), sampling_ratio, aligned)
        )
        taken.append(index)
    # Rows come out level by level; put them back in box order. index_select exports as ONNX
    # Gather, not GatherND: OpenVINO's int8 pipeline carries quantized values through Gather, so
    # the box and mask heads' first layers run in int8 (through GatherND they stayed fp32).
    return torch.index_select(torch.cat(pooled), 0, torch.argsort(torch.cat(taken)))


class InferenceGraph(nn.Module):
    """Mask R-CNN inference on one molded image of a fixed size.

    forward(image [1, 3, H, W] molded, window [1, 4] (x1, y1, x2, y2) of the image inside the
    padded input, min_score [1] the lowest detection score kept) -> (boxes [D, 4]
    (x1, y1, x2, y2) input pixels, class_ids int64 [D], scores [D], masks [D, M, M] soft masks
    of each detection's class), best score first.
    Equals ``net(image, window)`` for that image with DETECTION_MIN_CONFIDENCE ``min_score``, up
    to float rounding.
    """

    def __init__(self, net: MaskRCNNNet, image_shape: tuple[int, int]) -> None:
        super().__init__()
        self.net = net
        self.config = net.config
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))
        first = next(net.parameters())
        anchors, counts = net.anchors(self.image_shape, first)
        self.register_buffer("anchors", anchors.clone(), persistent=False)
        self.level_counts = tuple(int(c) for c in counts)
        #: Larger than every clipped coordinate: the shift between NMS groups.
        self.span = float(max(self.image_shape) + 1)

    def forward(self, image: torch.Tensor, window: torch.Tensor, min_score: torch.Tensor):
        net, cfg = self.net, self.config
        features = net.features(image)
        objectness, rpn_deltas = net.rpn_outputs(features)
        rois = self.proposals(objectness, rpn_deltas, window[0])
        pooled = self.roi_align(features, rois, int(cfg.POOL_SIZE))
        class_logits, deltas = net.box_head(pooled)
        boxes, class_ids, scores = self.detections(
            class_logits, deltas, rois, window[0], min_score[0]
        )
        mask_pooled = self.roi_align(features, boxes, int(cfg.MASK_POOL_SIZE))
        logits = net.mask_head(mask_pooled)
        # select_class_masks' arange(len(...)) needs a concrete count; a gather does not.
        index = class_ids[:, None, None, None].expand(-1, 1, *logits.shape[2:])
        masks = torch.sigmoid(logits.gather(1, index).squeeze(1))
        return self.output_boxes(boxes), class_ids, scores, masks

    def output_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """The detection layer's [D, 4] boxes in network-input pixels (x1, y1, x2, y2): they
        are already; a flavour computing in other coordinates converts here."""
        return boxes

    def roi_align(self, features, boxes: torch.Tensor, size: int) -> torch.Tensor:
        cfg = self.config
        return level_roi_align(
            features[:4],
            boxes,
            size,
            cfg.BACKBONE_STRIDES[:4],
            int(cfg.ROI_ALIGN_SAMPLING_RATIO),
            bool(cfg.ROI_ALIGN_ALIGNED),
            cfg.ROI_LEVEL_ROUNDING,
        )

    def proposals(
        self, objectness: torch.Tensor, deltas: torch.Tensor, window: torch.Tensor
    ) -> torch.Tensor:
        """The proposal layer for one image (see :func:`mrcnn.modeling.proposals.proposal_steps`).

        Args:
            objectness: [1, A] logits; deltas: [1, A, 4]; window: [4] (x1, y1, x2, y2).
        Returns:
            [K, 4] proposals (x1, y1, x2, y2), K <= POST_NMS_ROIS_INFERENCE, best first.
        """
        cfg = self.config
        top, levels = select_top_anchors(
            objectness,
            self.level_counts,
            int(cfg.PRE_NMS_LIMIT),
            bool(cfg.RPN_PROPOSALS_PER_LEVEL),
        )
        top = top[0]
        std = self._std(cfg.RPN_BBOX_STD_DEV, deltas)
        boxes = clip_boxes(decode_deltas(deltas[0, top], self.anchors[top], std), window)
        scores = torch.sigmoid(objectness[0, top])
        valid = torch.nonzero(large_enough(boxes, MIN_PROPOSAL_SIZE)).squeeze(1)
        kept = nms_within_groups(
            boxes[valid], scores[valid], levels[valid], float(cfg.RPN_NMS_THRESHOLD), self.span
        )
        return boxes[valid[kept[: int(cfg.POST_NMS_ROIS_INFERENCE)]]]

    def detections(
        self,
        class_logits: torch.Tensor,
        deltas: torch.Tensor,
        rois: torch.Tensor,
        window: torch.Tensor,
        min_score: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The detection layer for one image (see
        :func:`mrcnn.modeling.detection.refine_detections`).

        Args:
            class_logits: [K, C]; deltas: [K, C, 4]; rois: [K, 4]; window: [4];
            min_score: [] lower class probabilities are dropped (DETECTION_MIN_CONFIDENCE).
        Returns:
            boxes [D, 4] (x1, y1, x2, y2), class_ids int64 [D], scores [D]; best first.
        """
        cfg = self.config
        num_rois, num_classes = class_logits.shape
        probs = torch.softmax(class_logits, dim=1)
        if cfg.DETECTION_CLASS_MODE == "all_classes":
            roi = torch.arange(num_rois)[:, None].expand(num_rois, num_classes - 1).reshape(-1)
            cls = torch.arange(1, num_classes)[None, :].expand(num_rois, num_classes - 1)
            cls = cls.reshape(-1)
        else:
            best = probs.argmax(dim=1)
            roi = torch.nonzero(best > 0).squeeze(1)
            cls = best[roi]
        scores = probs[roi, cls]
        confident = torch.nonzero(scores >= min_score).squeeze(1)
        roi, cls, scores = roi[confident], cls[confident], scores[confident]
        std = self._std(cfg.BBOX_STD_DEV, deltas)
        boxes = clip_boxes(decode_deltas(deltas[roi, cls], rois[roi], std), window)
        sized = torch.nonzero(large_enough(boxes, MIN_DETECTION_SIZE)).squeeze(1)
        kept = nms_within_groups(
            boxes[sized], scores[sized], cls[sized], float(cfg.DETECTION_NMS_THRESHOLD), self.span
        )
        keep = sized[kept[: int(cfg.DETECTION_MAX_INSTANCES)]]
        return boxes[keep], cls[keep], scores[keep]

    @staticmethod
    def _std(values, like: torch.Tensor) -> torch.Tensor:
        return torch.tensor([float(v) for v in values], dtype=like.dtype)

"""Detection layer: refine the ROIs with the box head's output and pick the final detections."""

from __future__ import annotations

import torch
from torchvision.ops import batched_nms

from mrcnn.modeling.proposals import top_k_per_group
from mrcnn.structures.boxes import clip_boxes, decode_deltas, large_enough

#: Detections narrower or shorter than this (pixels) are dropped.
MIN_DETECTION_SIZE = 1e-2

#: NMS first looks at this many times DETECTION_MAX_INSTANCES of each image's best candidates.
NMS_CANDIDATES_PER_INSTANCE = 4


def refine_boxes(
    rois: torch.Tensor, class_deltas: torch.Tensor, std: torch.Tensor, windows: torch.Tensor
) -> torch.Tensor:
    """[K, 4] (x1, y1, x2, y2) ROIs moved by the deltas of one class each ([K, 4] (dx, dy,
    dw, dh) before ``std``) and clipped into their image windows ([K, 4], network-input
    pixels)."""
    return clip_boxes(decode_deltas(class_deltas, rois, std), windows)


def refine_detections(
    class_logits: torch.Tensor,
    deltas: torch.Tensor,
    rois: torch.Tensor,
    image_index: torch.Tensor,
    windows: torch.Tensor,
    std: torch.Tensor,
    min_confidence: float,
    nms_threshold: float,
    max_instances: int,
    class_mode: str = "top_class",
) -> dict[str, torch.Tensor]:
    """Class-specific refinement, score threshold, per-class NMS and a per-image cap.

    Args:
        class_logits: [K, C] box-head logits (C classes including background 0).
        deltas: [K, C, 4] box-head deltas (dx, dy, dw, dh), before ``std``.
        rois: [K, 4] (x1, y1, x2, y2) proposals in network-input pixels.
        image_index: int64 [K] image of each ROI.
        windows: [B, 4] (x1, y1, x2, y2) image window in each padded input.
        std: [4] BBOX_STD_DEV.
        min_confidence: DETECTION_MIN_CONFIDENCE; lower class probabilities are dropped.
        nms_threshold: DETECTION_NMS_THRESHOLD, applied per image and class.
        max_instances: DETECTION_MAX_INSTANCES per image.
        class_mode: "top_class" (each ROI's most likely class, dropped when that is the
            background) or "all_classes" (every foreground class of every ROI).
    Returns:
        dict with "boxes" [D, 4] (x1, y1, x2, y2) clipped to the window, "class_ids" int64 [D],
        "scores" [D] and "image_index" int64 [D]; grouped by image, best score first.
    """
    num_rois, num_classes = class_logits.shape
    probs = torch.softmax(class_logits, dim=1)
    if class_mode == "all_classes":
        roi = torch.arange(num_rois, device=probs.device).repeat_interleave(num_classes - 1)
        cls = torch.arange(1, num_classes, device=probs.device).repeat(num_rois)
    else:
        roi = torch.arange(num_rois, device=probs.device)
        cls = probs.argmax(dim=1)
        foreground = cls > 0
        roi, cls = roi[foreground], cls[foreground]
    scores = probs[roi, cls]
    confident = scores >= min_confidence
    roi, cls, scores = roi[confident], cls[confident], scores[confident]

    images = image_index[roi]
    boxes = refine_boxes(rois[roi], deltas[roi, cls], std, windows.to(rois)[images])
    sized = torch.nonzero(large_enough(boxes, MIN_DETECTION_SIZE)).squeeze(1)
    groups = images * num_classes + cls
    keep = sized[
        best_survivors(
            boxes[sized], scores[sized], groups[sized], images[sized], nms_threshold, max_instances
        )
    ]
    return {
        "boxes": boxes[keep],
        "class_ids": cls[keep],
        "scores": scores[keep],
        "image_index": images[keep],
    }


def best_survivors(
    boxes: torch.Tensor,
    scores: torch.Tensor,
    groups: torch.Tensor,
    images: torch.Tensor,
    nms_threshold: float,
    max_instances: int,
) -> torch.Tensor:
    """NMS within each group, then each image's ``max_instances`` best survivors.

    Equals ``top_k_per_group(batched_nms(boxes, scores, groups, t), images, max_instances)``
    without running NMS over every candidate. Whether a candidate survives depends only on the
    better-scored candidates of its group, so an image's best survivors are all among its
    best-scored candidates once ``max_instances`` of those survive. NMS runs on each image's
    best 4 x ``max_instances`` candidates, and again on more for the rare image where too
    few survive. (With a zero score threshold an image has ~90,000 class-box candidates; over
    all of them torchvision's batched_nms falls back to one NMS call per class, 90 calls and
    device synchronisations per image.)

    Args:
        boxes: [N, 4] (x1, y1, x2, y2); scores: [N]; groups: int64 [N] NMS group (image and
            class); images: int64 [N] image of each candidate.
    Returns:
        int64 [D] indices of the kept candidates, grouped by ascending image, best first.
    """
    order = torch.argsort(scores, descending=True, stable=True)
    candidates = torch.bincount(images)
    limit = NMS_CANDIDATES_PER_INSTANCE * max_instances
    while True:
        subset = top_k_per_group(order, images, limit)
        kept = subset[batched_nms(boxes[subset], scores[subset], groups[subset], nms_threshold)]
        kept = top_k_per_group(kept, images, max_instances)
        found = torch.bincount(images[kept], minlength=len(candidates))
        if bool(((found >= max_instances) | (candidates <= limit)).all()):
            return kept
        limit *= 4

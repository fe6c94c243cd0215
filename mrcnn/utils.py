"""Matterport's ``mrcnn.utils`` (``from mrcnn import utils``): re-exports only.

The functions live in :mod:`mrcnn.compat.utils`, thin adapters with Matterport's signatures over
this package's own implementation; ``Dataset`` is :class:`mrcnn.datasets.base.Dataset`.
"""

from __future__ import annotations

from mrcnn.compat.utils import (
    COCO_MODEL_URL,
    Dataset,
    apply_box_deltas,
    box_refinement,
    compute_ap,
    compute_ap_range,
    compute_iou,
    compute_matches,
    compute_overlaps,
    compute_overlaps_masks,
    compute_recall,
    denorm_boxes,
    download_trained_weights,
    expand_mask,
    extract_bboxes,
    generate_anchors,
    generate_pyramid_anchors,
    minimize_mask,
    non_max_suppression,
    norm_boxes,
    resize,
    resize_image,
    resize_mask,
    trim_zeros,
    unmold_mask,
)

__all__ = [
    "COCO_MODEL_URL",
    "Dataset",
    "apply_box_deltas",
    "box_refinement",
    "compute_ap",
    "compute_ap_range",
    "compute_iou",
    "compute_matches",
    "compute_overlaps",
    "compute_overlaps_masks",
    "compute_recall",
    "denorm_boxes",
    "download_trained_weights",
    "expand_mask",
    "extract_bboxes",
    "generate_anchors",
    "generate_pyramid_anchors",
    "minimize_mask",
    "non_max_suppression",
    "norm_boxes",
    "resize",
    "resize_image",
    "resize_mask",
    "trim_zeros",
    "unmold_mask",
]

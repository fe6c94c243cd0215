"""Dataset statistics for checking data before training (used by ``mrcnn inspect-data``).

* :func:`collect_instances` loads the masks of some images once and keeps boxes and areas; the
  images whose ``load_mask`` (or, when asked, ``load_image``) raises are listed apart, as
  training would skip them.
* :func:`instance_statistics` summarises instance counts, sizes and classes.
* :func:`anchor_coverage` tells how well the configured anchors fit the objects: for each
  ground-truth box, the best IoU any anchor reaches once the image is molded as the network
  sees it. The RPN learns an object only from anchors with IoU >= 0.7 (positives) or, failing
  that, from its best anchor; objects whose best IoU stays low are hard to propose, which
  means RPN_ANCHOR_SCALES / RPN_ANCHOR_RATIOS do not fit the data.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch
from torchvision.ops import box_iou

from mrcnn.datasets.failures import ImageFailure, call_loaders, warn_below_bars
from mrcnn.modeling.anchors import anchors_for_config, cell_anchors
from mrcnn.structures.boxes import xyxy_to_yxyx
from mrcnn.structures.image import ResizePlan, apply_plan, plan_for_config, plan_resize

log = logging.getLogger(__name__)

#: Upper bound on the elements of one IoU block (ground truths x anchors), to bound memory.
IOU_BLOCK_ELEMENTS = 1 << 22


@dataclass
class InstanceRecords:
    """Boxes and areas of the instances of some images.

    Attributes:
        analysed_ids: int64 [K] dataset image ids that were read (and loaded).
        image_shapes: int64 [K, 2] (height, width) of those images.
        image_index: int64 [M] index into ``analysed_ids`` of each instance.
        class_ids: int32 [M] class ids (negative for crowd regions).
        boxes: int32 [M, 4] (y1, x1, y2, x2) in original-image pixels, exclusive y2/x2.
        areas: int64 [M] mask pixel counts.
        failures: the images whose loaders raised (left out of everything above).
    """

    analysed_ids: np.ndarray
    image_shapes: np.ndarray
    image_index: np.ndarray
    class_ids: np.ndarray
    boxes: np.ndarray
    areas: np.ndarray
    failures: list[ImageFailure] = field(default_factory=list)

    @property
    def crowd(self) -> np.ndarray:
        """bool [M]: crowd regions."""
        return self.class_ids < 0


def sample_image_ids(dataset, limit: int | None) -> np.ndarray:
    """Up to ``limit`` image ids spread evenly over the dataset (all of them for None)."""
    return spread_ids(dataset.image_ids, limit)


def spread_ids(ids, limit: int | None) -> np.ndarray:
    """Up to ``limit`` of ``ids``, spread evenly over them (all of them for None)."""
    ids = np.asarray(ids)
    if limit is None or limit >= len(ids):
        return ids
    picks = np.unique(np.linspace(0, len(ids) - 1, max(1, int(limit))).round().astype(int))
    return ids[picks]


def collect_instances(
    dataset, image_ids=None, progress: bool = False, load_images: bool = False
) -> InstanceRecords:
    """Load the masks of ``image_ids`` (default: all) and keep their boxes and areas.

    With ``load_images``, each image is loaded too (slower: it is decoded), so that images
    whose ``load_image`` raises are found as well. An image whose loader raises is left out,
    logged (a warning line each) and listed in ``failures``.
    """
    image_ids = np.asarray(dataset.image_ids if image_ids is None else image_ids, dtype=np.int64)
    methods = ("load_image", "load_mask") if load_images else ("load_mask",)
    shapes, index, classes, boxes, areas, loaded, failures = [], [], [], [], [], [], []
    iterator = image_ids
    if progress:
        from tqdm import tqdm

        what = "images and masks" if load_images else "masks"
        iterator = tqdm(image_ids, desc=f"reading {what}", unit="image", leave=False)
    for image_id in iterator:
        result = call_loaders(dataset, int(image_id), methods)
        if isinstance(result, ImageFailure):
            warn_below_bars(log, f"{result.describe()}; left out of the statistics")
            failures.append(result)
            continue
        masks, class_ids = result[-1]
        k = len(loaded)
        loaded.append(int(image_id))
        shapes.append(masks.shape[:2])
        index.append(np.full(len(class_ids), k, dtype=np.int64))
        classes.append(np.asarray(class_ids, dtype=np.int32))
        boxes.append(dataset.extract_bboxes(masks))
        areas.append(masks.sum(axis=(0, 1)).astype(np.int64))
    return InstanceRecords(
        analysed_ids=np.asarray(loaded, dtype=np.int64),
        image_shapes=np.asarray(shapes, dtype=np.int64).reshape(-1, 2),
        image_index=_concat(index, np.int64),
        class_ids=_concat(classes, np.int32),
        boxes=_concat(boxes, np.int32).reshape(-1, 4),
        areas=_concat(areas, np.int64),
        failures=failures,
    )


def _concat(parts: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)


def instance_statistics(records: InstanceRecords, class_names: list[str]) -> dict:
    """Counts and sizes of the instances (crowd regions counted apart).

    Returns a dict: ``images``, ``instances``, ``crowd``, ``empty_images``,
    ``per_image`` (int [K] instances per image), ``sizes`` (float [M] sqrt(mask area) in
    original pixels, non-crowd), ``box_sides`` (float [M, 2] box height, width),
    ``class_counts`` ({name: count}).
    """
    ordinary = ~records.crowd
    per_image = np.bincount(records.image_index[ordinary], minlength=len(records.analysed_ids))
    boxes = records.boxes[ordinary]
    counts = Counter(int(c) for c in records.class_ids[ordinary])
    return {
        "images": len(records.analysed_ids),
        "instances": int(ordinary.sum()),
        "crowd": int(records.crowd.sum()),
        "empty_images": int((per_image == 0).sum()),
        "per_image": per_image,
        "sizes": np.sqrt(records.areas[ordinary].astype(np.float64)),
        "box_sides": np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1),
        "class_counts": {class_names[c]: n for c, n in sorted(counts.items())},
    }


@dataclass
class CoverageResult:
    """Best anchor IoU of every (non-crowd) ground-truth box.

    Attributes:
        thresholds: the IoU thresholds of ``shares``.
        shares: {threshold: share of boxes whose best anchor IoU >= threshold}.
        best_iou: float32 [G].
        gt_boxes: float32 [G, 4] (x1, y1, x2, y2) in padded network-input pixels.
        best_anchors: float32 [G, 4] (x1, y1, x2, y2) the best anchor of each box, same frame.
        best_level: int64 [G] pyramid level index (0 = P2) of that anchor.
        image_index: int64 [G] index into ``records.analysed_ids``.
        scales: the RPN_ANCHOR_SCALES used.
    """

    thresholds: tuple[float, ...]
    shares: dict[float, float]
    best_iou: np.ndarray
    gt_boxes: np.ndarray
    best_anchors: np.ndarray
    best_level: np.ndarray
    image_index: np.ndarray
    scales: tuple[float, ...]
    notes: list[str] = field(default_factory=list)

    @property
    def input_sizes(self) -> np.ndarray:
        """float [G]: sqrt(box area) of the ground truths in network-input pixels."""
        sides = self.gt_boxes[:, 2:] - self.gt_boxes[:, :2]
        return np.sqrt(np.prod(sides, axis=1))

    def summary(self) -> list[str]:
        """Printable lines: the shares per threshold, object sizes against anchor scales."""
        count = len(self.best_iou)
        lines = [
            f"anchor coverage (IoU >= {t:g}): {100 * self.shares[t]:.1f}% of {count} "
            "ground-truth boxes"
            for t in self.thresholds
        ]
        if count:
            p5, p50, p95 = np.percentile(self.input_sizes, [5, 50, 95])
            scales = ", ".join(f"{s:g}" for s in self.scales)
            lines.append(
                f"object size sqrt(w*h) in network-input pixels: 5% {p5:.0f}, median {p50:.0f}, "
                f"95% {p95:.0f}; RPN_ANCHOR_SCALES ({scales})"
            )
        return lines + self.notes


def image_plan(height: int, width: int, config) -> ResizePlan:
    """How the network molds an image; the random "crop" mode is evaluated on the whole
    resized image (padded as "pad64"), since anchors tile every crop the same way."""
    if config.IMAGE_RESIZE_MODE == "crop":
        return plan_resize(
            height,
            width,
            "pad64",
            config.IMAGE_MIN_DIM,
            config.IMAGE_MAX_DIM,
            config.IMAGE_MIN_SCALE,
        )
    return plan_for_config(height, width, config)


def boxes_to_input(boxes_yxyx: np.ndarray, plan: ResizePlan) -> np.ndarray:
    """Map boxes from original-image pixels into the padded network input.

    Args:
        boxes_yxyx: [N, 4] (y1, x1, y2, x2) in original-image pixels.
        plan: the image's :class:`~mrcnn.structures.image.ResizePlan` (no crop).
    Returns:
        float32 [N, 4] (x1, y1, x2, y2) in network-input pixels.
    """
    meta = plan.meta()
    scale_y, scale_x = meta.scale
    left, top = meta.window[0], meta.window[1]
    boxes = xyxy_to_yxyx(np.asarray(boxes_yxyx, dtype=np.float64).reshape(-1, 4))
    factor = np.array([scale_x, scale_y, scale_x, scale_y])
    offset = np.array([left, top, left, top])
    return (boxes * factor + offset).astype(np.float32)


def anchor_coverage(
    records: InstanceRecords, config, thresholds: tuple[float, ...] = (0.5, 0.7)
) -> CoverageResult:
    """For each non-crowd ground-truth box, the best IoU of any anchor of ``config``.

    Images are molded with the config's IMAGE_* settings; images sharing a padded input shape
    share one anchor set, and their boxes are compared with it in blocks (torchvision's
    box_iou), so there is no Python loop over boxes or anchors.
    """
    # Imported here so that loading datasets never depends on the model package's state.
    keep = (~records.crowd) & (records.areas > 0)
    plans = [image_plan(int(h), int(w), config) for h, w in records.image_shapes]
    gt_index = np.flatnonzero(keep)
    image_of = records.image_index[gt_index]
    gt_boxes = np.zeros((len(gt_index), 4), np.float32)
    best_iou = np.zeros(len(gt_index), np.float32)
    best_anchors = np.zeros((len(gt_index), 4), np.float32)
    best_level = np.zeros(len(gt_index), np.int64)
    for k in range(len(plans)):
        rows = np.flatnonzero(image_of == k)
        gt_boxes[rows] = boxes_to_input(records.boxes[gt_index[rows]], plans[k])
    for shape in sorted({p.output_shape for p in plans}):
        rows = np.flatnonzero([plans[k].output_shape == shape for k in image_of])
        if len(rows) == 0:
            continue
        anchors, counts = anchors_for_config(config, shape)
        iou, idx = _best_anchor(torch.from_numpy(gt_boxes[rows]), anchors)
        best_iou[rows] = iou
        best_anchors[rows] = anchors[idx].numpy()
        best_level[rows] = np.searchsorted(np.cumsum(counts), idx, side="right")
    shares = {t: float((best_iou >= t).mean()) if len(best_iou) else 0.0 for t in thresholds}
    result = CoverageResult(
        tuple(thresholds),
        shares,
        best_iou,
        gt_boxes,
        best_anchors,
        best_level,
        image_of,
        tuple(float(s) for s in config.RPN_ANCHOR_SCALES),
    )
    result.notes = _size_notes(result)
    return result


def _best_anchor(gt: torch.Tensor, anchors: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Best IoU and its anchor index for each of [G, 4] boxes against [A, 4] anchors."""
    best = torch.full((len(gt),), -1.0)
    index = torch.zeros(len(gt), dtype=torch.int64)
    block = max(1, IOU_BLOCK_ELEMENTS // max(1, len(gt)))
    for start in range(0, len(anchors), block):
        iou = box_iou(gt, anchors[start : start + block])
        value, arg = iou.max(dim=1)
        better = value > best
        best = torch.where(better, value, best)
        index = torch.where(better, arg + start, index)
    return best.numpy(), index.numpy()


def _size_notes(result: CoverageResult) -> list[str]:
    """Hints when objects are much smaller or larger than the anchors."""
    if not len(result.best_iou):
        return []
    sizes = result.input_sizes
    notes = []
    small = float((sizes < min(result.scales) / 2).mean())
    large = float((sizes > max(result.scales) * 1.5).mean())
    if small > 0.1:
        notes.append(
            f"note: {100 * small:.0f}% of the objects are smaller than half the smallest anchor "
            f"({min(result.scales) / 2:g} px): consider smaller RPN_ANCHOR_SCALES or larger "
            "IMAGE_MIN_DIM"
        )
    if large > 0.1:
        notes.append(
            f"note: {100 * large:.0f}% of the objects are larger than 1.5x the largest anchor: "
            "consider larger RPN_ANCHOR_SCALES"
        )
    return notes


def reference_anchors(config, center: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The anchors of every scale and ratio centred on one point, for figures.

    Args:
        center: (x, y) in network-input pixels.
    Returns:
        (anchors, levels): float32 [L * R, 4] (x1, y1, x2, y2) and int64 [L * R] level index.
    """
    shift = torch.tensor([center[0], center[1], center[0], center[1]], dtype=torch.float32)
    boxes, levels = [], []
    for level, scale in enumerate(config.RPN_ANCHOR_SCALES):
        cell = cell_anchors(float(scale), config.RPN_ANCHOR_RATIOS, config.RPN_ANCHOR_ROUND)
        boxes.append((cell + shift).numpy())
        levels.append(np.full(len(cell), level, dtype=np.int64))
    return np.concatenate(boxes), np.concatenate(levels)


def molded_preview(image: np.ndarray, plan: ResizePlan) -> np.ndarray:
    """uint8 [H_in, W_in, 3]: an [H, W, 3] uint8 image resized and zero-padded by ``plan``, as
    the network input looks before normalisation."""
    tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1).float()
    molded = apply_plan(tensor, plan).clamp(0, 255).round().to(torch.uint8)
    return molded.permute(1, 2, 0).numpy()

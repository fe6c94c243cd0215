"""Evaluation: Matterport-style average precision and COCO evaluation through pycocotools.

Two families of metrics live here.

**Matterport-style AP** (:func:`compute_ap` and friends) keeps Matterport's signatures and return
values: predictions are matched greedily to ground truths in descending score order, and AP is
the all-point interpolated area under the precision envelope (Pascal VOC 2010+). Boxes are
``(y1, x1, y2, x2)`` as ``MaskRCNN.detect`` returns them in ``"rois"``, masks are bool
``[H, W, N]``. Overlaps are mask IoUs by default (``use_masks=True``, as Matterport); pass
``use_masks=False`` to match on box IoU instead (the masks may then be ``None``).

Conventions beyond Matterport's:

- Crowd regions are ground truths with a *negative* class id (``-class_id``, the datasets'
  convention). They are never matched and never count as instances to find; a prediction that
  matches no instance but lies inside a crowd region of its class (intersection over the
  prediction's area >= ``iou_threshold``, COCO's rule) is ignored, neither a true nor a false
  positive. ``compute_matches`` marks such predictions with ``pred_match == -2``.
- ``score_threshold`` drops predictions scoring below it before matching.
- An image with no ground truth and no prediction has AP 1.0 (nothing to find, nothing found
  wrongly); an image with no ground truth but some predictions has AP 0.0.
- The mean of per-image APs (Matterport's samples) and the AP of the whole dataset (every
  prediction of every image ranked together, as COCO and VOC do) differ by definition;
  :func:`compute_ap_dataset` and :class:`APAccumulator` give the latter.

**COCO evaluation** (:func:`coco_evaluate`) runs pycocotools' ``COCOeval`` on any
:class:`~mrcnn.dataset.Dataset`: a COCO dataset is evaluated against its own annotation file,
any other dataset is first converted with :func:`dataset_to_coco`. Detections are written in
COCO's results format by :func:`detections_to_coco`.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: COCO's IoU thresholds 0.50, 0.55, ..., 0.95.
COCO_IOU_THRESHOLDS: tuple[float, ...] = tuple(np.round(np.arange(0.5, 0.951, 0.05), 2).tolist())

#: Names of the 12 numbers ``COCOeval.summarize`` computes, in its order.
COCO_STAT_NAMES: tuple[str, ...] = (
    "AP",
    "AP50",
    "AP75",
    "APs",
    "APm",
    "APl",
    "AR1",
    "AR10",
    "AR100",
    "ARs",
    "ARm",
    "ARl",
)

#: Pixels per block of the mask-overlap matrix product.
_PIXEL_BLOCK = 1 << 16

#: pred_match value of a prediction ignored because it lies inside a crowd region.
IGNORED = -2


# ------------------------------------------------------------------------------------------------
# Overlaps
# ------------------------------------------------------------------------------------------------
def compute_overlaps(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """IoU of every pair of boxes.

    Args:
        boxes1: [N1, 4] and boxes2: [N2, 4], (y1, x1, y2, x2) with exclusive y2/x2 (areas are
            ``(y2 - y1) * (x2 - x1)``).
    Returns:
        float32 [N1, N2] IoUs (0 where both boxes are empty).
    """
    a = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    inter = _box_intersections(a, b)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0).astype(np.float32)


def _box_intersections(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """float64 [N1, N2] intersection areas of (y1, x1, y2, x2) boxes."""
    y1 = np.maximum(a[:, None, 0], b[None, :, 0])
    x1 = np.maximum(a[:, None, 1], b[None, :, 1])
    y2 = np.minimum(a[:, None, 2], b[None, :, 2])
    x2 = np.minimum(a[:, None, 3], b[None, :, 3])
    return np.clip(y2 - y1, 0, None) * np.clip(x2 - x1, 0, None)


def compute_overlaps_masks(masks1: np.ndarray, masks2: np.ndarray) -> np.ndarray:
    """IoU of every pair of masks.

    Args:
        masks1: bool [H, W, N1] and masks2: bool [H, W, N2] of the same H and W.
    Returns:
        float32 [N1, N2] IoUs (0 where both masks are empty).
    """
    inter, area1, area2 = _mask_intersections(masks1, masks2)
    union = area1[:, None] + area2[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0).astype(np.float32)


def _mask_intersections(
    masks1: np.ndarray, masks2: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(float64 [N1, N2] intersections, [N1] areas, [N2] areas) in pixels, by one matrix
    product of the flattened masks."""
    masks1, masks2 = np.asarray(masks1), np.asarray(masks2)
    if masks1.ndim != 3 or masks2.ndim != 3:
        raise ValueError(
            f"masks must be [H, W, N] arrays, got shapes {masks1.shape} and {masks2.shape}"
        )
    if masks1.shape[:2] != masks2.shape[:2]:
        raise ValueError(
            f"masks of different image sizes: {masks1.shape[:2]} and {masks2.shape[:2]}; "
            "predictions and ground truths must be at the same (original image) resolution"
        )
    n1, n2 = masks1.shape[-1], masks2.shape[-1]
    pixels = masks1.shape[0] * masks1.shape[1]
    if n1 == 0 or n2 == 0:
        area1 = masks1.reshape(pixels, n1).sum(axis=0, dtype=np.float64)
        area2 = masks2.reshape(pixels, n2).sum(axis=0, dtype=np.float64)
        return np.zeros((n1, n2)), area1, area2
    flat1 = masks1.reshape(pixels, n1)
    flat2 = masks2.reshape(pixels, n2)
    inter = np.zeros((n1, n2))
    # Blocks of rows keep the float copies small (a 1024 x 1024 image with 100 masks would
    # need 400 MB at once) and every float32 block sum exact (< 2**24 pixels).
    for start in range(0, pixels, _PIXEL_BLOCK):
        block1 = flat1[start : start + _PIXEL_BLOCK].astype(np.float32)
        block2 = flat2[start : start + _PIXEL_BLOCK].astype(np.float32)
        inter += block1.T @ block2
    area1 = flat1.sum(axis=0, dtype=np.float64)
    area2 = flat2.sum(axis=0, dtype=np.float64)
    return inter, area1, area2


def _overlaps_and_crowd(
    gt_boxes, gt_masks, pred_boxes, pred_masks, crowd: np.ndarray, use_masks: bool
) -> tuple[np.ndarray, np.ndarray]:
    """(float [P, G] IoUs with every ground truth, float [P, C] share of each prediction
    inside each crowd region (intersection / prediction area))."""
    if use_masks:
        inter, pred_area, gt_area = _mask_intersections(pred_masks, gt_masks)
    else:
        p = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)
        g = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
        inter = _box_intersections(p, g)
        pred_area = np.clip(p[:, 2] - p[:, 0], 0, None) * np.clip(p[:, 3] - p[:, 1], 0, None)
        gt_area = np.clip(g[:, 2] - g[:, 0], 0, None) * np.clip(g[:, 3] - g[:, 1], 0, None)
    union = pred_area[:, None] + gt_area[None, :] - inter
    ious = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    inside = inter[:, crowd]
    inside = np.divide(
        inside, pred_area[:, None], out=np.zeros_like(inside), where=pred_area[:, None] > 0
    )
    return ious, inside


# ------------------------------------------------------------------------------------------------
# Matching and AP
# ------------------------------------------------------------------------------------------------
def _trim_zero_rows(boxes: np.ndarray) -> np.ndarray:
    """bool [N]: rows that are not all-zero padding."""
    return np.any(np.asarray(boxes).reshape(-1, 4) != 0, axis=1)


def _prepare(
    gt_boxes,
    gt_class_ids,
    gt_masks,
    pred_boxes,
    pred_class_ids,
    pred_scores,
    pred_masks,
    use_masks: bool,
    score_threshold: float,
):
    """Validate, drop zero-padded boxes and low scores, sort predictions by score."""
    gt_class_ids = np.asarray(gt_class_ids, dtype=np.int64).reshape(-1)
    pred_class_ids = np.asarray(pred_class_ids, dtype=np.int64).reshape(-1)
    pred_scores = np.asarray(pred_scores, dtype=np.float64).reshape(-1)
    n_gt, n_pred = len(gt_class_ids), len(pred_class_ids)
    if len(pred_scores) != n_pred:
        raise ValueError(f"{n_pred} pred_class_ids but {len(pred_scores)} pred_scores")
    if use_masks:
        if gt_masks is None or pred_masks is None:
            raise ValueError("masks are None: pass gt_masks and pred_masks, or use_masks=False")
        gt_masks, pred_masks = np.asarray(gt_masks), np.asarray(pred_masks)
        if gt_masks.ndim != 3 or pred_masks.ndim != 3:
            raise ValueError(
                f"masks must be [H, W, N]; got gt {gt_masks.shape}, pred {pred_masks.shape}"
            )
        if gt_masks.shape[-1] != n_gt or pred_masks.shape[-1] != n_pred:
            raise ValueError(
                f"gt_masks has {gt_masks.shape[-1]} masks for {n_gt} gt_class_ids and "
                f"pred_masks {pred_masks.shape[-1]} for {n_pred} pred_class_ids"
            )
    if gt_boxes is not None:
        gt_boxes = np.asarray(gt_boxes).reshape(-1, 4)
        if len(gt_boxes) != n_gt:
            raise ValueError(f"{len(gt_boxes)} gt_boxes but {n_gt} gt_class_ids")
        keep = _trim_zero_rows(gt_boxes)
        gt_boxes, gt_class_ids = gt_boxes[keep], gt_class_ids[keep]
        gt_masks = gt_masks[..., keep] if use_masks else gt_masks
    elif not use_masks:
        raise ValueError("gt_boxes is None: pass boxes, or use_masks=True with masks")
    if pred_boxes is not None:
        pred_boxes = np.asarray(pred_boxes).reshape(-1, 4)
        if len(pred_boxes) != n_pred:
            raise ValueError(f"{len(pred_boxes)} pred_boxes but {n_pred} pred_class_ids")
    elif not use_masks:
        raise ValueError("pred_boxes is None: pass boxes, or use_masks=True with masks")
    keep = pred_scores >= score_threshold
    if pred_boxes is not None:
        keep &= _trim_zero_rows(pred_boxes)
    order = np.argsort(-pred_scores[keep], kind="stable")
    index = np.flatnonzero(keep)[order]
    pred_boxes = pred_boxes[index] if pred_boxes is not None else None
    pred_masks = pred_masks[..., index] if use_masks else None
    return (
        gt_boxes,
        gt_class_ids,
        gt_masks,
        pred_boxes,
        pred_class_ids[index],
        pred_scores[index],
        pred_masks,
    )


def _greedy_match(
    ious: np.ndarray,
    inside_crowd: np.ndarray,
    gt_class_ids: np.ndarray,
    pred_class_ids: np.ndarray,
    iou_threshold: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Match score-sorted predictions to ground truths.

    Args:
        ious: [P, G] IoUs with every ground truth (crowd columns included, never matched).
        inside_crowd: [P, C] share of each prediction inside each crowd region.
        gt_class_ids: [G] (crowd negative); pred_class_ids: [P].
    Returns:
        (gt_match int [G], pred_match int [P]): the partner's index or -1; crowd columns stay -1
        and predictions inside a crowd region of their class are IGNORED (-2).
    """
    n_pred, n_gt = ious.shape
    gt_match = -np.ones(n_gt, dtype=np.int64)
    pred_match = -np.ones(n_pred, dtype=np.int64)
    crowd = gt_class_ids < 0
    # Candidates: same class, IoU over the threshold, not a crowd region.
    eligible = (
        (pred_class_ids[:, None] == gt_class_ids[None, :])
        & (ious >= iou_threshold)
        & ~crowd[None, :]
    )
    candidates = np.where(eligible, ious, -1.0)
    for i in range(n_pred):  # loop over predictions only; each step is vectorised
        row = np.where(gt_match < 0, candidates[i], -1.0)
        j = int(np.argmax(row)) if n_gt else -1
        if j >= 0 and row[j] >= 0:
            gt_match[j] = i
            pred_match[i] = j
    if crowd.any() and n_pred:
        crowd_classes = -gt_class_ids[crowd]
        in_crowd = (inside_crowd >= iou_threshold) & (
            pred_class_ids[:, None] == crowd_classes[None, :]
        )
        pred_match[(pred_match < 0) & in_crowd.any(axis=1)] = IGNORED
    return gt_match, pred_match


def compute_matches(
    gt_boxes: np.ndarray | None,
    gt_class_ids: np.ndarray,
    gt_masks: np.ndarray | None,
    pred_boxes: np.ndarray | None,
    pred_class_ids: np.ndarray,
    pred_scores: np.ndarray,
    pred_masks: np.ndarray | None,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.0,
    *,
    use_masks: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Match predictions to ground truths, best score first.

    Each prediction, in descending score order, takes the unmatched ground truth of its class
    with the highest IoU, if that IoU is >= ``iou_threshold``.

    Args:
        gt_boxes: [G, 4] (y1, x1, y2, x2); all-zero rows are padding and dropped. May be None
            when ``use_masks``.
        gt_class_ids: int [G]; negative ids are crowd regions (see the module docstring).
        gt_masks: bool [H, W, G] (None when ``use_masks=False``).
        pred_boxes: [P, 4] (y1, x1, y2, x2); pred_class_ids: int [P]; pred_scores: float [P];
        pred_masks: bool [H, W, P].
        iou_threshold: smallest IoU of a match.
        score_threshold: predictions scoring below it are dropped before matching.
        use_masks: overlaps from masks (default, as Matterport) or from boxes.
    Returns:
        (gt_match, pred_match, overlaps): gt_match int [G] the index (into the score-sorted
        predictions) of each ground truth's match or -1; pred_match int [P'] for the kept
        predictions sorted by descending score, the index of the matched ground truth, -1 for a
        false positive or -2 for a prediction ignored inside a crowd region; overlaps float32
        [P', G] IoUs between sorted predictions and ground truths.
    """
    gt_match, pred_match, ious, _ = _match_image(
        gt_boxes,
        gt_class_ids,
        gt_masks,
        pred_boxes,
        pred_class_ids,
        pred_scores,
        pred_masks,
        iou_threshold,
        score_threshold,
        use_masks,
    )
    return gt_match, pred_match, ious


def _match_image(
    gt_boxes,
    gt_class_ids,
    gt_masks,
    pred_boxes,
    pred_class_ids,
    pred_scores,
    pred_masks,
    iou_threshold,
    score_threshold,
    use_masks,
):
    """compute_matches plus the number of ground truths to find (crowd and padding left out)."""
    (gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, _, pred_masks) = _prepare(
        gt_boxes,
        gt_class_ids,
        gt_masks,
        pred_boxes,
        pred_class_ids,
        pred_scores,
        pred_masks,
        use_masks,
        score_threshold,
    )
    ious, inside = _overlaps_and_crowd(
        gt_boxes, gt_masks, pred_boxes, pred_masks, gt_class_ids < 0, use_masks
    )
    gt_match, pred_match = _greedy_match(ious, inside, gt_class_ids, pred_class_ids, iou_threshold)
    return gt_match, pred_match, ious.astype(np.float32), int(np.sum(gt_class_ids >= 0))


def _ap_from_matches(pred_match: np.ndarray, n_gt: int) -> tuple[float, np.ndarray, np.ndarray]:
    """All-point interpolated AP of score-sorted predictions.

    Args:
        pred_match: int [P] in descending score order: >= 0 a true positive, -1 a false
            positive, -2 ignored (left out).
        n_gt: number of ground truths to find (crowd regions excluded).
    Returns:
        (ap, precisions [P + 2], recalls [P + 2]): the precision envelope (each precision
        replaced by the best precision at any higher recall) and the recalls, with the sentinel
        points (recall 0, precision envelope) first and (recall 1, precision 0) last.
    """
    pred_match = np.asarray(pred_match)
    pred_match = pred_match[pred_match != IGNORED]
    if n_gt == 0:
        # Nothing to find: perfect without predictions, all false positives otherwise.
        ap = 1.0 if len(pred_match) == 0 else 0.0
        precisions = np.full(len(pred_match) + 2, ap)
        precisions[-1] = 0.0 if len(pred_match) else ap
        recalls = np.concatenate([[0.0], np.ones(len(pred_match)), [1.0]])
        return ap, precisions, recalls
    true_positives = np.cumsum(pred_match > -1)
    precisions = true_positives / np.arange(1, len(pred_match) + 1)
    recalls = true_positives / n_gt
    precisions = np.concatenate([[0.0], precisions, [0.0]])
    recalls = np.concatenate([[0.0], recalls, [1.0]])
    # The envelope: the best precision at this recall or any higher one.
    precisions = np.maximum.accumulate(precisions[::-1])[::-1]
    # Sum precision x recall step over the points where recall grows.
    steps = np.flatnonzero(recalls[1:] != recalls[:-1]) + 1
    ap = float(np.sum((recalls[steps] - recalls[steps - 1]) * precisions[steps]))
    return ap, precisions, recalls


def compute_ap(
    gt_boxes: np.ndarray | None,
    gt_class_ids: np.ndarray,
    gt_masks: np.ndarray | None,
    pred_boxes: np.ndarray | None,
    pred_class_ids: np.ndarray,
    pred_scores: np.ndarray,
    pred_masks: np.ndarray | None,
    iou_threshold: float = 0.5,
    *,
    score_threshold: float = 0.0,
    use_masks: bool = True,
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """Average precision of one image at one IoU threshold (Matterport's ``compute_ap``).

    Arguments as :func:`compute_matches` (boxes (y1, x1, y2, x2) [N, 4], masks bool [H, W, N]).
    All classes are ranked together; a match needs equal classes.

    Returns:
        (mAP, precisions, recalls, overlaps): AP as a float; precisions and recalls float
        [P + 2] (see :func:`_ap_from_matches`: envelope precisions, recalls from 0 to 1);
        overlaps float32 [P, G] IoUs of the score-sorted predictions with the ground truths.
    """
    _, pred_match, overlaps, n_gt = _match_image(
        gt_boxes,
        gt_class_ids,
        gt_masks,
        pred_boxes,
        pred_class_ids,
        pred_scores,
        pred_masks,
        iou_threshold,
        score_threshold,
        use_masks,
    )
    ap, precisions, recalls = _ap_from_matches(pred_match, n_gt)
    return ap, precisions, recalls, overlaps


def compute_ap_range(
    gt_boxes: np.ndarray | None,
    gt_class_ids: np.ndarray,
    gt_masks: np.ndarray | None,
    pred_boxes: np.ndarray | None,
    pred_class_ids: np.ndarray,
    pred_scores: np.ndarray,
    pred_masks: np.ndarray | None,
    iou_thresholds: Iterable[float] | None = None,
    verbose: int = 1,
    *,
    use_masks: bool = True,
) -> float:
    """Mean of :func:`compute_ap` over IoU thresholds (default COCO's 0.50:0.95:0.05).

    Arguments as :func:`compute_ap`; ``verbose`` prints the AP at each threshold and the mean.
    """
    thresholds = COCO_IOU_THRESHOLDS if iou_thresholds is None else tuple(iou_thresholds)
    if not thresholds:
        raise ValueError("iou_thresholds is empty; pass at least one threshold, or None")
    aps = []
    for threshold in thresholds:
        ap = compute_ap(
            gt_boxes,
            gt_class_ids,
            gt_masks,
            pred_boxes,
            pred_class_ids,
            pred_scores,
            pred_masks,
            iou_threshold=threshold,
            use_masks=use_masks,
        )[0]
        if verbose:
            print(f"AP @{threshold:.2f}:\t {ap:.3f}")
        aps.append(ap)
    mean = float(np.mean(aps))
    if verbose:
        print(f"AP @{thresholds[0]:.2f}-{thresholds[-1]:.2f}:\t {mean:.3f}")
    return mean


def compute_recall(
    pred_boxes: np.ndarray, gt_boxes: np.ndarray, iou: float, *, use_masks: bool = False
) -> tuple[float, np.ndarray]:
    """Share of the ground truths that some prediction overlaps with IoU >= ``iou``.

    Args:
        pred_boxes: [P, 4] and gt_boxes: [G, 4] (y1, x1, y2, x2) boxes, or bool [H, W, P] and
            [H, W, G] masks with ``use_masks=True`` (box IoU is the default, as Matterport).
        iou: the IoU threshold.
    Returns:
        (recall, positive_ids): the recall (1.0 when there is no ground truth) and int [K] the
        indexes of the predictions whose best IoU reaches ``iou``.
    """
    if use_masks:
        overlaps = compute_overlaps_masks(pred_boxes, gt_boxes)
    else:
        overlaps = compute_overlaps(pred_boxes, gt_boxes)
    n_pred, n_gt = overlaps.shape
    if n_gt == 0:
        return 1.0, np.zeros(0, dtype=np.int64)
    if n_pred == 0:
        return 0.0, np.zeros(0, dtype=np.int64)
    best = overlaps.max(axis=1)
    positive_ids = np.flatnonzero(best >= iou)
    found = np.unique(overlaps.argmax(axis=1)[positive_ids])
    return len(found) / n_gt, positive_ids


def compute_ap_dataset(
    gt_counts: Sequence[int] | np.ndarray,
    pred_matches: Sequence[np.ndarray],
    pred_scores: Sequence[np.ndarray],
) -> tuple[float, np.ndarray, np.ndarray]:
    """AP of a whole dataset: every image's predictions ranked together by score.

    This is how VOC and COCO define AP (per-image APs averaged are a different number). Use
    :class:`APAccumulator` to collect the inputs from ground truths and predictions.

    Args:
        gt_counts: per image, the number of ground truths to find (crowd excluded).
        pred_matches: per image, int [P_i] as ``compute_matches`` returns ``pred_match``
            (score-sorted; >= 0 true positive, -1 false positive, -2 ignored).
        pred_scores: per image, float [P_i] the scores in the same order as ``pred_matches``.
    Returns:
        (ap, precisions, recalls) as :func:`compute_ap` without the overlaps.
    """
    if len(pred_matches) != len(pred_scores):
        raise ValueError(f"{len(pred_matches)} pred_matches but {len(pred_scores)} pred_scores")
    matches = np.concatenate([np.asarray(m).reshape(-1) for m in pred_matches] or [np.zeros(0)])
    scores = np.concatenate([np.asarray(s).reshape(-1) for s in pred_scores] or [np.zeros(0)])
    if len(matches) != len(scores):
        raise ValueError("pred_matches and pred_scores differ in length for some image")
    order = np.argsort(-scores, kind="stable")
    # Only true/false positive matters across images: image-local indices become 0 / -1.
    flags = np.where(matches[order] >= 0, 0, matches[order]).astype(np.int64)
    return _ap_from_matches(flags, int(np.sum(gt_counts)))


class APAccumulator:
    """Collects per-image matches at several IoU thresholds for per-image and dataset AP.

    Args:
        iou_thresholds: thresholds to evaluate (default COCO's 0.50:0.95:0.05).
        use_masks: mask IoU (default) or box IoU.
    """

    def __init__(
        self, iou_thresholds: Iterable[float] | None = None, *, use_masks: bool = True
    ) -> None:
        self.iou_thresholds = tuple(
            float(t) for t in (COCO_IOU_THRESHOLDS if iou_thresholds is None else iou_thresholds)
        )
        if not self.iou_thresholds:
            raise ValueError("iou_thresholds is empty")
        self.use_masks = use_masks
        self.gt_counts: list[int] = []
        self.scores: list[np.ndarray] = []
        self.matches: dict[float, list[np.ndarray]] = {t: [] for t in self.iou_thresholds}
        self.aps: dict[float, list[float]] = {t: [] for t in self.iou_thresholds}

    def add(
        self,
        gt_boxes: np.ndarray | None,
        gt_class_ids: np.ndarray,
        gt_masks: np.ndarray | None,
        pred_boxes: np.ndarray | None,
        pred_class_ids: np.ndarray,
        pred_scores: np.ndarray,
        pred_masks: np.ndarray | None,
    ) -> dict[float, float]:
        """Add one image (arguments as :func:`compute_ap`); returns its AP per threshold."""
        (gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, scores, pred_masks) = (
            _prepare(
                gt_boxes,
                gt_class_ids,
                gt_masks,
                pred_boxes,
                pred_class_ids,
                pred_scores,
                pred_masks,
                self.use_masks,
                0.0,
            )
        )
        ious, inside = _overlaps_and_crowd(
            gt_boxes, gt_masks, pred_boxes, pred_masks, gt_class_ids < 0, self.use_masks
        )
        n_gt = int(np.sum(gt_class_ids >= 0))
        self.gt_counts.append(n_gt)
        self.scores.append(scores)
        image_aps = {}
        for threshold in self.iou_thresholds:
            _, pred_match = _greedy_match(ious, inside, gt_class_ids, pred_class_ids, threshold)
            self.matches[threshold].append(pred_match)
            image_aps[threshold] = _ap_from_matches(pred_match, n_gt)[0]
            self.aps[threshold].append(image_aps[threshold])
        return image_aps

    def image_aps(self, iou_threshold: float) -> np.ndarray:
        """float [images]: the AP of each image added, at one of the thresholds."""
        return np.asarray(self.aps[self._key(iou_threshold)], dtype=np.float64)

    def dataset_ap(self, iou_threshold: float) -> float:
        """The AP of all images together (:func:`compute_ap_dataset`)."""
        key = self._key(iou_threshold)
        return compute_ap_dataset(self.gt_counts, self.matches[key], self.scores)[0]

    def _key(self, iou_threshold: float) -> float:
        for t in self.iou_thresholds:
            if abs(t - float(iou_threshold)) < 1e-9:
                return t
        raise KeyError(f"IoU threshold {iou_threshold} not evaluated; have {self.iou_thresholds}")


# ------------------------------------------------------------------------------------------------
# Evaluating a model on a dataset
# ------------------------------------------------------------------------------------------------
@dataclass
class DatasetEvaluation:
    """What :func:`evaluate_dataset` measured.

    ``image_ids`` int [N] internal ids evaluated; ``iou_thresholds`` the requested thresholds;
    ``image_aps[t]`` float [N] per-image AP at threshold t (requested ones and COCO's ten);
    ``mean_ap[t]`` their mean (Matterport's mAP); ``dataset_ap[t]`` the AP of all predictions
    ranked together; ``coco_results`` the detections in COCO's results format.
    """

    image_ids: np.ndarray
    iou_thresholds: tuple[float, ...]
    image_aps: dict[float, np.ndarray]
    mean_ap: dict[float, float]
    dataset_ap: dict[float, float]
    use_masks: bool = True
    coco_results: list[dict] = field(default_factory=list)
    detections: int = 0

    @property
    def map50(self) -> float:
        """Mean per-image AP at IoU 0.5."""
        return self.mean_ap[0.5]

    @property
    def map50_95(self) -> float:
        """Mean per-image AP averaged over IoU 0.50:0.95 (COCO's thresholds)."""
        return float(np.mean([self.mean_ap[t] for t in COCO_IOU_THRESHOLDS]))

    @property
    def dataset_ap50_95(self) -> float:
        """Dataset-level AP averaged over IoU 0.50:0.95."""
        return float(np.mean([self.dataset_ap[t] for t in COCO_IOU_THRESHOLDS]))

    def summary(self) -> list[str]:
        """Printable lines: per-image mAP and dataset AP at each requested threshold."""
        kind = "mask" if self.use_masks else "box"
        lines = [
            f"{len(self.image_ids)} images, {self.detections} detections ({kind} IoU)",
            f"{'IoU':>11}  {'mAP (mean per image)':>20}  {'AP (dataset)':>12}",
        ]
        for t in self.iou_thresholds:
            lines.append(f"{t:>11.2f}  {self.mean_ap[t]:>20.4f}  {self.dataset_ap[t]:>12.4f}")
        lines.append(f"{'0.50:0.95':>11}  {self.map50_95:>20.4f}  {self.dataset_ap50_95:>12.4f}")
        return lines


def evaluate_dataset(
    model,
    dataset,
    image_ids: Sequence[int] | np.ndarray | None = None,
    limit: int | None = None,
    iou_thresholds: Iterable[float] = (0.5,),
    *,
    use_masks: bool = True,
    progress: bool = True,
    coco_results: bool = True,
) -> DatasetEvaluation:
    """Run ``model.detect`` over a dataset and measure Matterport-style AP.

    Args:
        model: a :class:`~mrcnn.model.MaskRCNN` (anything with ``detect(images)`` and
            ``config.IMAGES_PER_GPU`` works).
        dataset: a prepared :class:`~mrcnn.dataset.Dataset` with the model's classes.
        image_ids: internal ids to evaluate (default: all).
        limit: evaluate at most the first ``limit`` of them.
        iou_thresholds: thresholds to report; COCO's 0.50:0.95 are always measured too.
        use_masks: mask IoU (default) or box IoU (``"rois"`` against the masks' boxes).
        progress: show a tqdm progress bar.
        coco_results: keep the detections in COCO's results format (for :func:`coco_evaluate`
            and JSON files).
    Returns:
        a :class:`DatasetEvaluation`. Crowd regions (negative class ids) are ignored as
        described in the module docstring.
    """
    from tqdm import tqdm

    ids = np.asarray(dataset.image_ids if image_ids is None else image_ids, dtype=np.int64)
    if limit:
        ids = ids[: int(limit)]
    if len(ids) == 0:
        raise ValueError("no images to evaluate: the dataset (or image_ids) is empty")
    requested = tuple(float(t) for t in iou_thresholds)
    for t in requested:
        if not 0.0 < t <= 1.0:
            raise ValueError(f"IoU threshold {t} must be in (0, 1]")
    thresholds = tuple(sorted(set(requested) | set(COCO_IOU_THRESHOLDS)))
    accumulator = APAccumulator(thresholds, use_masks=use_masks)
    coco_image_ids, class_map = coco_ids(dataset, ids)
    results_json: list[dict] = []
    detections = 0
    step = max(1, int(getattr(getattr(model, "config", None), "IMAGES_PER_GPU", 1) or 1))
    bar = tqdm(total=len(ids), desc="evaluating", unit="image", disable=not progress)
    try:
        for start in range(0, len(ids), step):
            chunk = ids[start : start + step]
            results = model.detect([dataset.load_image(int(i)) for i in chunk])
            for k, (image_id, r) in enumerate(zip(chunk, results, strict=True)):
                gt_masks, gt_class_ids = dataset.load_mask(int(image_id))
                gt_boxes = dataset.extract_bboxes(gt_masks)
                accumulator.add(
                    gt_boxes,
                    gt_class_ids,
                    gt_masks,
                    r["rois"],
                    r["class_ids"],
                    r["scores"],
                    r["masks"],
                )
                detections += len(r["class_ids"])
                if coco_results:
                    results_json += detections_to_coco([r], [coco_image_ids[start + k]], class_map)
            bar.update(len(chunk))
    finally:
        bar.close()
    image_aps = {t: accumulator.image_aps(t) for t in thresholds}
    return DatasetEvaluation(
        image_ids=ids,
        iou_thresholds=requested,
        image_aps=image_aps,
        mean_ap={t: float(np.mean(v)) for t, v in image_aps.items()},
        dataset_ap={t: accumulator.dataset_ap(t) for t in thresholds},
        use_masks=use_masks,
        coco_results=results_json,
        detections=detections,
    )


# ------------------------------------------------------------------------------------------------
# COCO form and pycocotools
# ------------------------------------------------------------------------------------------------
def _is_coco_dataset(dataset, image_ids: Sequence[int] | np.ndarray) -> bool:
    """True when every image comes from the dataset's COCO annotation file (``dataset.coco``)."""
    coco = getattr(dataset, "coco", None)
    if coco is None:
        return False
    for i in image_ids:
        info = dataset.image_info[int(i)]
        if info.get("format") != "coco" or info["id"] not in coco.imgs:
            return False
    return True


def coco_ids(dataset, image_ids: Sequence[int] | np.ndarray) -> tuple[list[Any], dict[int, int]]:
    """The ids to write in COCO form for these images and for every class.

    Returns:
        (coco_image_ids, class_map): for a COCO dataset its own image ids and
        {internal class id: COCO category id}; for any other dataset the internal image ids and
        the identity map of the internal class ids.
    """
    if _is_coco_dataset(dataset, image_ids):
        image_list = [dataset.image_info[int(i)]["id"] for i in image_ids]
        source = dataset.image_info[int(image_ids[0])]["source"] if len(image_ids) else "coco"
        class_map = {
            c: int(info["id"])
            for c, info in enumerate(dataset.class_info)
            if c > 0 and info["source"] == source
        }
        return image_list, class_map
    return [int(i) for i in image_ids], {c: c for c in range(1, len(dataset.class_info))}


def encode_masks(masks) -> list[dict]:
    """COCO RLEs (counts as str) of bool [H, W, N] masks or of a
    :class:`mrcnn.masks.BoxMasks` (encoded box by box, without a full-size stack)."""
    from pycocotools import mask as mask_utils

    if len(masks) == 0 if hasattr(masks, "rle") else masks.shape[-1] == 0:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # pycocotools vs numpy 2
        if hasattr(masks, "rle"):
            rles = masks.rle()
        else:
            rles = mask_utils.encode(np.asfortranarray(masks.astype(np.uint8)))
    for rle in rles:
        rle["counts"] = rle["counts"].decode("ascii")
    return rles


_encode = encode_masks


def dataset_to_coco(dataset, image_ids: Sequence[int] | np.ndarray | None = None) -> dict:
    """A Dataset's ground truth as a COCO instances dict.

    Args:
        dataset: a prepared Dataset.
        image_ids: internal ids to include (default: all).
    Returns:
        {"info", "images", "annotations", "categories"}: image ids are the internal ids,
        category ids the internal class ids (BG left out), annotations carry an RLE
        ``segmentation`` (counts as str), ``area`` in pixels, ``bbox`` [x, y, w, h] and
        ``iscrowd`` (1 for negative class ids); annotation ids start at 1.
    """
    from pycocotools import mask as mask_utils

    ids = dataset.image_ids if image_ids is None else image_ids
    images, annotations = [], []
    for image_id in ids:
        image_id = int(image_id)
        masks, class_ids = dataset.load_mask(image_id)
        height, width = masks.shape[:2]
        info = dataset.image_info[image_id]
        name = info.get("path") or dataset.image_reference(image_id)
        images.append(
            {"id": image_id, "width": int(width), "height": int(height), "file_name": str(name)}
        )
        rles = _encode(masks)
        if not rles:
            continue
        areas = mask_utils.area(rles)
        boxes = mask_utils.toBbox(rles)
        for rle, class_id, area, box in zip(rles, class_ids, areas, boxes, strict=True):
            annotations.append(
                {
                    "id": len(annotations) + 1,  # COCOeval treats id 0 as "no match"
                    "image_id": image_id,
                    "category_id": int(abs(class_id)),
                    "segmentation": rle,
                    "area": float(area),
                    "bbox": [float(v) for v in box],
                    "iscrowd": int(class_id < 0),
                }
            )
    categories = [
        {"id": c, "name": dataset.class_names[c], "supercategory": info["source"]}
        for c, info in enumerate(dataset.class_info)
        if c > 0
    ]
    return {
        "info": {"description": f"converted from {type(dataset).__name__}"},
        "images": images,
        "annotations": annotations,
        "categories": categories,
    }


def detections_to_coco(
    results: Sequence[dict],
    image_ids: Sequence[Any],
    class_map: dict[int, int] | None = None,
    class_names: Sequence[str] | None = None,
) -> list[dict]:
    """``MaskRCNN.detect`` results in COCO's results format.

    Args:
        results: one dict per image as ``detect`` returns ("rois" (y1, x1, y2, x2) [N, 4] or
            "boxes" (x1, y1, x2, y2) [N, 4], "class_ids" [N], "scores" [N], "masks" bool
            [H, W, N]; "masks" may be absent for box-only results).
        image_ids: the COCO image id of each result.
        class_map: {internal class id: category id to write} (default: identity).
        class_names: names indexed by internal class id; when given, each entry also gets a
            ``category_name`` ("class <id>" for an id past the end).
    Returns:
        one dict per detection: image_id, category_id, bbox [x, y, w, h] floats, score and,
        with masks, segmentation (RLE, counts as str).
    """
    if len(results) != len(image_ids):
        raise ValueError(f"{len(results)} results but {len(image_ids)} image ids")
    out: list[dict] = []
    for r, image_id in zip(results, image_ids, strict=True):
        class_ids = np.asarray(r["class_ids"]).reshape(-1)
        if len(class_ids) == 0:
            continue
        if "boxes" in r:
            x1, y1, x2, y2 = np.asarray(r["boxes"], dtype=np.float64).reshape(-1, 4).T
        else:
            y1, x1, y2, x2 = np.asarray(r["rois"], dtype=np.float64).reshape(-1, 4).T
        boxes = np.stack([x1, y1, x2 - x1, y2 - y1], axis=1)
        rles = _encode(np.asarray(r["masks"])) if r.get("masks") is not None else None
        for k, class_id in enumerate(class_ids):
            class_id = int(class_id)
            if class_map is not None and class_id not in class_map:
                raise ValueError(
                    f"detection of class {class_id} on image {image_id!r} has no entry in "
                    f"class_map (known: {sorted(class_map)}); the model's NUM_CLASSES must "
                    "match the dataset's classes"
                )
            item = {
                "image_id": image_id,
                "category_id": int(class_map[class_id]) if class_map is not None else class_id,
                "bbox": [round(float(v), 3) for v in boxes[k]],
                "score": round(float(np.asarray(r["scores"]).reshape(-1)[k]), 5),
            }
            if class_names is not None:
                known = 0 <= class_id < len(class_names)
                item["category_name"] = class_names[class_id] if known else f"class {class_id}"
            if rles is not None:
                item["segmentation"] = rles[k]
            out.append(item)
    return out


def _quiet_coco(data: dict):
    from pycocotools.coco import COCO

    coco = COCO()
    coco.dataset = data
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def coco_evaluate(
    dataset,
    results_list: Sequence[dict],
    image_ids: Sequence[int] | np.ndarray,
    iou_type: str = "segm",
    *,
    verbose: bool = False,
) -> dict[str, float]:
    """COCO AP/AR of detections on a dataset through pycocotools' COCOeval.

    Args:
        dataset: a prepared Dataset. A COCO dataset (``dataset.coco`` holding every image) is
            evaluated against its annotation file, restricted to ``image_ids`` and its classes;
            any other dataset is converted with :func:`dataset_to_coco`.
        results_list: either one ``detect`` result dict per image of ``image_ids``, or
            detections already in COCO's results format (dicts with "image_id", e.g.
            ``DatasetEvaluation.coco_results``).
        image_ids: the internal ids of the evaluated images.
        iou_type: "segm" (mask IoU) or "bbox".
        verbose: print COCOeval's own summary.
    Returns:
        {name: value} for the 12 stats of :data:`COCO_STAT_NAMES` (AP, AP50, AP75, APs, APm,
        APl, AR1, AR10, AR100, ARs, ARm, ARl); -1 where COCO finds nothing to measure.
    """
    from pycocotools.cocoeval import COCOeval

    if iou_type not in ("segm", "bbox"):
        raise ValueError(f"iou_type={iou_type!r}: use 'segm' or 'bbox'")
    ids = [int(i) for i in image_ids]
    coco_image_ids, class_map = coco_ids(dataset, ids)
    if _is_coco_dataset(dataset, ids):
        gt = dataset.coco
    else:
        gt = _quiet_coco(dataset_to_coco(dataset, ids))
    results_list = list(results_list)
    if results_list and "image_id" not in results_list[0]:
        results_list = detections_to_coco(results_list, coco_image_ids, class_map)
    detections = []
    for d in results_list:
        if iou_type == "segm":
            if "segmentation" not in d:
                raise ValueError("segm evaluation needs detections with masks ('segmentation')")
            # Without the box COCO takes the mask area for small/medium/large, as it should.
            d = {k: v for k, v in d.items() if k != "bbox"}
        else:
            d = {k: v for k, v in d.items() if k != "segmentation"}
        detections.append(d)
    with contextlib.redirect_stdout(io.StringIO()) as printed, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if detections:
            dt = gt.loadRes(detections)
        else:
            dt = _quiet_coco(
                {"images": list(gt.dataset["images"]), "annotations": [], "categories": []}
            )
        evaluator = COCOeval(gt, dt, iou_type)
        evaluator.params.imgIds = coco_image_ids
        evaluator.params.catIds = sorted(set(class_map.values()))
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    if verbose:
        print(printed.getvalue(), end="")
    return {name: float(v) for name, v in zip(COCO_STAT_NAMES, evaluator.stats, strict=True)}

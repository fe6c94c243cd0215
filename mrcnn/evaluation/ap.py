"""Average precision: one image (Matterport's ``compute_ap`` family), a whole dataset, and
:class:`APAccumulator`, which collects both over a dataset at several IoU thresholds.

AP is the all-point interpolated area under the precision envelope (Pascal VOC 2010+). Boxes
are (y1, x1, y2, x2) [N, 4], masks bool [H, W, N], as ``MaskRCNN.detect`` returns them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from mrcnn.evaluation.matching import (
    IGNORED,
    GroundTruth,
    Predictions,
    greedy_match,
    image_overlaps,
    match_image,
    prepare,
)
from mrcnn.evaluation.overlaps import compute_overlaps, compute_overlaps_masks

#: COCO's IoU thresholds 0.50, 0.55, ..., 0.95.
COCO_IOU_THRESHOLDS: tuple[float, ...] = tuple(np.round(np.arange(0.5, 0.951, 0.05), 2).tolist())


def ap_from_matches(pred_match: np.ndarray, n_gt: int) -> tuple[float, np.ndarray, np.ndarray]:
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
        [P + 2] (see :func:`ap_from_matches`: envelope precisions, recalls from 0 to 1);
        overlaps float32 [P, G] IoUs of the score-sorted predictions with the ground truths.
    """
    _, pred_match, overlaps, n_gt = match_image(
        GroundTruth(gt_boxes, gt_class_ids, gt_masks),
        Predictions(pred_boxes, pred_class_ids, pred_scores, pred_masks),
        iou_threshold,
        score_threshold,
        use_masks,
    )
    ap, precisions, recalls = ap_from_matches(pred_match, n_gt)
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
    gt = GroundTruth(gt_boxes, gt_class_ids, gt_masks)
    pred = Predictions(pred_boxes, pred_class_ids, pred_scores, pred_masks)
    aps = []
    for threshold in thresholds:
        _, pred_match, _, n_gt = match_image(gt, pred, threshold, use_masks=use_masks)
        ap = ap_from_matches(pred_match, n_gt)[0]
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
    return ap_from_matches(flags, int(np.sum(gt_counts)))


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
        return self.add_image(
            GroundTruth(gt_boxes, gt_class_ids, gt_masks),
            Predictions(pred_boxes, pred_class_ids, pred_scores, pred_masks),
        )

    def add_image(self, gt: GroundTruth, pred: Predictions) -> dict[float, float]:
        """Add one image; returns its AP per threshold. The overlaps are computed once for all
        thresholds."""
        gt, pred = prepare(gt, pred, self.use_masks, 0.0)
        ious, inside = image_overlaps(gt, pred, self.use_masks)
        self.gt_counts.append(gt.count)
        self.scores.append(pred.scores)
        image_aps = {}
        for threshold in self.iou_thresholds:
            _, pred_match = greedy_match(ious, inside, gt.class_ids, pred.class_ids, threshold)
            self.matches[threshold].append(pred_match)
            image_aps[threshold] = ap_from_matches(pred_match, gt.count)[0]
            self.aps[threshold].append(image_aps[threshold])
        return image_aps

    def image_aps(self, iou_threshold: float) -> np.ndarray:
        """float [images]: the AP of each image added, at one of the thresholds."""
        return np.asarray(self.aps[self._key(iou_threshold)], dtype=np.float64)

    def pred_matches(self, iou_threshold: float) -> list[np.ndarray]:
        """Per image added, int [P_i] its score-sorted ``pred_match`` at one of the thresholds
        (the scores in the same order are ``self.scores``)."""
        return self.matches[self._key(iou_threshold)]

    def dataset_ap(self, iou_threshold: float) -> float:
        """The AP of all images together (:func:`compute_ap_dataset`)."""
        key = self._key(iou_threshold)
        return compute_ap_dataset(self.gt_counts, self.matches[key], self.scores)[0]

    def _key(self, iou_threshold: float) -> float:
        for t in self.iou_thresholds:
            if abs(t - float(iou_threshold)) < 1e-9:
                return t
        raise KeyError(f"IoU threshold {iou_threshold} not evaluated; have {self.iou_thresholds}")

"""Greedy matching of one image's predictions to its ground truths.

Predictions, in descending score order, each take the unmatched ground truth of their class with
the highest IoU, if that IoU reaches the threshold. Crowd regions (negative class ids) are never
matched; a prediction left unmatched inside a crowd region of its class is :data:`IGNORED`.

Internally an image is carried as a :class:`GroundTruth` and a :class:`Predictions`; the
Matterport-style functions taking seven positional arrays (:func:`compute_matches`, and the
``compute_ap*`` family) build them and call the functions here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mrcnn.evaluation.overlaps import overlaps_and_crowd

#: pred_match value of a prediction ignored because it lies inside a crowd region.
IGNORED = -2


@dataclass(frozen=True)
class GroundTruth:
    """One image's ground truth.

    ``boxes`` [G, 4] (y1, x1, y2, x2), all-zero rows are padding (None when matching on masks);
    ``class_ids`` int [G], negative for crowd regions; ``masks`` bool [H, W, G] (None when
    matching on boxes).
    """

    boxes: np.ndarray | None
    class_ids: np.ndarray
    masks: np.ndarray | None

    @property
    def count(self) -> int:
        """How many ground truths there are to find (crowd regions left out)."""
        return int(np.sum(np.asarray(self.class_ids) >= 0))


@dataclass(frozen=True)
class Predictions:
    """One image's predictions: ``boxes`` [P, 4] (y1, x1, y2, x2), ``class_ids`` int [P],
    ``scores`` float [P], ``masks`` bool [H, W, P] (boxes or masks may be None as in
    :class:`GroundTruth`)."""

    boxes: np.ndarray | None
    class_ids: np.ndarray
    scores: np.ndarray
    masks: np.ndarray | None


def _nonzero_rows(boxes: np.ndarray) -> np.ndarray:
    """bool [N]: rows that are not all-zero padding."""
    return np.any(np.asarray(boxes).reshape(-1, 4) != 0, axis=1)


def _check_masks(gt: GroundTruth, pred: Predictions, n_gt: int, n_pred: int) -> None:
    if gt.masks is None or pred.masks is None:
        raise ValueError("masks are None: pass gt_masks and pred_masks, or use_masks=False")
    gt_masks, pred_masks = np.asarray(gt.masks), np.asarray(pred.masks)
    if gt_masks.ndim != 3 or pred_masks.ndim != 3:
        raise ValueError(
            f"masks must be [H, W, N]; got gt {gt_masks.shape}, pred {pred_masks.shape}"
        )
    if gt_masks.shape[-1] != n_gt or pred_masks.shape[-1] != n_pred:
        raise ValueError(
            f"gt_masks has {gt_masks.shape[-1]} masks for {n_gt} gt_class_ids and "
            f"pred_masks {pred_masks.shape[-1]} for {n_pred} pred_class_ids"
        )


def _boxes(boxes, count: int, name: str, use_masks: bool) -> np.ndarray | None:
    """[N, 4] boxes checked against the class-id count, or None when they may be absent."""
    if boxes is None:
        if not use_masks:
            raise ValueError(f"{name} is None: pass boxes, or use_masks=True with masks")
        return None
    boxes = np.asarray(boxes).reshape(-1, 4)
    if len(boxes) != count:
        raise ValueError(f"{len(boxes)} {name} but {count} {name[:-5]}class_ids")
    return boxes


def prepare(
    gt: GroundTruth, pred: Predictions, use_masks: bool, score_threshold: float
) -> tuple[GroundTruth, Predictions]:
    """Validate; drop zero-padded boxes and scores below ``score_threshold``; sort the
    predictions by descending score (stable). Returns numpy copies."""
    gt_class_ids = np.asarray(gt.class_ids, dtype=np.int64).reshape(-1)
    pred_class_ids = np.asarray(pred.class_ids, dtype=np.int64).reshape(-1)
    scores = np.asarray(pred.scores, dtype=np.float64).reshape(-1)
    n_gt, n_pred = len(gt_class_ids), len(pred_class_ids)
    if len(scores) != n_pred:
        raise ValueError(f"{n_pred} pred_class_ids but {len(scores)} pred_scores")
    if use_masks:
        _check_masks(gt, pred, n_gt, n_pred)
    gt_masks = np.asarray(gt.masks) if use_masks else gt.masks
    gt_boxes = _boxes(gt.boxes, n_gt, "gt_boxes", use_masks)
    if gt_boxes is not None:
        keep = _nonzero_rows(gt_boxes)
        gt_boxes, gt_class_ids = gt_boxes[keep], gt_class_ids[keep]
        gt_masks = gt_masks[..., keep] if use_masks else gt_masks
    pred_boxes = _boxes(pred.boxes, n_pred, "pred_boxes", use_masks)
    keep = scores >= score_threshold
    if pred_boxes is not None:
        keep &= _nonzero_rows(pred_boxes)
    index = np.flatnonzero(keep)[np.argsort(-scores[keep], kind="stable")]
    return GroundTruth(gt_boxes, gt_class_ids, gt_masks), Predictions(
        pred_boxes[index] if pred_boxes is not None else None,
        pred_class_ids[index],
        scores[index],
        np.asarray(pred.masks)[..., index] if use_masks else None,
    )


def greedy_match(
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


def image_overlaps(
    gt: GroundTruth, pred: Predictions, use_masks: bool
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~mrcnn.evaluation.overlaps.overlaps_and_crowd` of prepared inputs."""
    crowd = np.asarray(gt.class_ids) < 0
    return overlaps_and_crowd(gt.boxes, gt.masks, pred.boxes, pred.masks, crowd, use_masks)


def match_image(
    gt: GroundTruth,
    pred: Predictions,
    iou_threshold: float,
    score_threshold: float = 0.0,
    use_masks: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Prepare, overlap and match one image.

    Returns:
        (gt_match int [G'], pred_match int [P'], float32 [P', G'] IoUs, ground truths to find):
        as :func:`compute_matches`, plus the count of ground truths (crowd and padding left out).
    """
    gt, pred = prepare(gt, pred, use_masks, score_threshold)
    ious, inside = image_overlaps(gt, pred, use_masks)
    gt_match, pred_match = greedy_match(ious, inside, gt.class_ids, pred.class_ids, iou_threshold)
    return gt_match, pred_match, ious.astype(np.float32), gt.count


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
    """Match predictions to ground truths, best score first (Matterport's ``compute_matches``).

    Each prediction, in descending score order, takes the unmatched ground truth of its class
    with the highest IoU, if that IoU is >= ``iou_threshold``.

    Args:
        gt_boxes: [G, 4] (y1, x1, y2, x2); all-zero rows are padding and dropped. May be None
            when ``use_masks``.
        gt_class_ids: int [G]; negative ids are crowd regions (see the package docstring).
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
    gt_match, pred_match, ious, _ = match_image(
        GroundTruth(gt_boxes, gt_class_ids, gt_masks),
        Predictions(pred_boxes, pred_class_ids, pred_scores, pred_masks),
        iou_threshold,
        score_threshold,
        use_masks,
    )
    return gt_match, pred_match, ious


def match_instances(
    gt_class_ids: np.ndarray,
    gt_masks: np.ndarray,
    pred_class_ids: np.ndarray,
    pred_scores: np.ndarray,
    pred_masks: np.ndarray,
    iou_threshold: float = 0.5,
    score_threshold: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mask matching as :func:`compute_matches` (crowd regions included), reported in the
    predictions' own order, for figures that caption each prediction.

    Args:
        gt_class_ids: int [G] (negative: crowd); gt_masks: bool [H, W, G].
        pred_class_ids: int [P]; pred_scores: float [P]; pred_masks: bool [H, W, P].
        iou_threshold: smallest IoU of a match; score_threshold: lower scores never match.
    Returns:
        (gt_match, pred_match, overlaps): int [G] index of the matched prediction or -1; int [P]
        index of the matched ground truth, -1, or IGNORED (-2) inside a crowd region; float32
        [P, G] mask IoUs.
    """
    gt_ids = np.asarray(gt_class_ids, dtype=np.int64).reshape(-1)
    pred_ids = np.asarray(pred_class_ids, dtype=np.int64).reshape(-1)
    scores = np.asarray(pred_scores, dtype=np.float64).reshape(-1)
    ious, inside = overlaps_and_crowd(None, gt_masks, None, pred_masks, gt_ids < 0, True)
    kept = np.flatnonzero(scores >= score_threshold)
    order = kept[np.argsort(-scores[kept], kind="stable")]
    gt_sorted, pred_sorted = greedy_match(
        ious[order], inside[order], gt_ids, pred_ids[order], iou_threshold
    )
    pred_match = -np.ones(len(pred_ids), dtype=np.int64)
    pred_match[order] = pred_sorted
    gt_match = -np.ones(len(gt_ids), dtype=np.int64)
    found = gt_sorted >= 0
    gt_match[found] = order[gt_sorted[found]]  # indexing only the found: order may be empty
    return gt_match, pred_match, ious.astype(np.float32)

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

Modules: :mod:`~mrcnn.evaluation.overlaps` (box and mask IoU), :mod:`~mrcnn.evaluation.matching`
(greedy matching, :class:`GroundTruth` and :class:`Predictions`), :mod:`~mrcnn.evaluation.ap`
(AP of an image or a dataset, :class:`APAccumulator`), :mod:`~mrcnn.evaluation.runner`
(:func:`evaluate_dataset`), :mod:`~mrcnn.evaluation.coco` (COCO form and COCOeval) and
:mod:`~mrcnn.evaluation.bootstrap` (confidence intervals by resampling images).
"""

from __future__ import annotations

from mrcnn.evaluation.ap import (
    COCO_IOU_THRESHOLDS,
    APAccumulator,
    compute_ap,
    compute_ap_dataset,
    compute_ap_range,
    compute_recall,
)
from mrcnn.evaluation.bootstrap import Bootstrap, Interval, resample_counts
from mrcnn.evaluation.coco import (
    COCO_STAT_NAMES,
    coco_evaluate,
    coco_evaluate_with_intervals,
    coco_ids,
    dataset_to_coco,
    detections_to_coco,
    encode_masks,
)
from mrcnn.evaluation.matching import IGNORED, GroundTruth, Predictions, compute_matches
from mrcnn.evaluation.overlaps import compute_overlaps, compute_overlaps_masks
from mrcnn.evaluation.runner import DatasetEvaluation, evaluate_dataset

__all__ = [
    "COCO_IOU_THRESHOLDS",
    "COCO_STAT_NAMES",
    "IGNORED",
    "APAccumulator",
    "Bootstrap",
    "DatasetEvaluation",
    "GroundTruth",
    "Interval",
    "Predictions",
    "coco_evaluate",
    "coco_evaluate_with_intervals",
    "coco_ids",
    "compute_ap",
    "compute_ap_dataset",
    "compute_ap_range",
    "compute_matches",
    "compute_overlaps",
    "compute_overlaps_masks",
    "compute_recall",
    "dataset_to_coco",
    "detections_to_coco",
    "encode_masks",
    "evaluate_dataset",
    "resample_counts",
]

"""Greedy matching and recall of the evaluation on boxes (y1, x1, y2, x2), by hand."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest

from mrcnn.evaluation import compute_matches, compute_recall
from mrcnn.evaluation.matching import (
    IGNORED,
    GroundTruth,
    Predictions,
    match_image,
    match_instances,
    prepare,
)
from tests.helpers.data import box_mask

GT = np.array([[0.0, 0.0, 20.0, 20.0], [40.0, 40.0, 60.0, 70.0]])


def _matches(pred_boxes, class_ids, scores):
    gt_match, pred_match, _ = compute_matches(
        GT,
        np.array([1, 1]),
        None,
        np.asarray(pred_boxes),
        np.asarray(class_ids),
        np.asarray(scores),
        None,
        0.5,
        use_masks=False,
    )
    return gt_match.tolist(), pred_match.tolist()


def test_a_ground_truth_taken_by_the_best_prediction_is_not_matched_again():
    # p0 (best score) covers A exactly; p1 is a near duplicate of A (IoU 0.9): a false
    # positive, even though A's partner is prediction number 0
    near_a = [0.0, 0.0, 20.0, 18.0]
    assert _matches([GT[0], near_a], [1, 1], [0.9, 0.8]) == ([0, -1], [0, -1])
    # then B is found by the third prediction
    assert _matches([GT[0], near_a, GT[1]], [1, 1, 1], [0.9, 0.8, 0.7]) == (
        [0, 2],
        [0, -1, 1],
    )


def test_recall_counts_ground_truths_reached_by_some_prediction():
    # three predictions, two ground truths: p0 touches nothing, p1 is B, p2 is A
    preds = np.array([[100.0, 100.0, 110.0, 110.0], GT[1], GT[0]])
    recall, positive = compute_recall(preds, GT, 0.5)
    assert recall == 1.0
    assert positive.tolist() == [1, 2]
    recall, positive = compute_recall(preds[:2], GT, 0.5)
    assert recall == 0.5 and positive.tolist() == [1]
    assert compute_recall(preds[:0], GT, 0.5)[0] == 0.0
    assert compute_recall(preds, GT[:0], 0.5)[0] == 1.0


# --- bad inputs: each names what is wrong -------------------------------------------------------
def rects(*boxes, shape=(40, 40)) -> np.ndarray:
    """bool [H, W, N] masks of (y1, x1, y2, x2) rectangles."""
    return np.stack([box_mask(*shape, *box) for box in boxes], axis=-1)


TWO_GT = rects((0, 0, 10, 10), (20, 20, 30, 30))
ONE_PRED = rects((0, 0, 10, 10))


@pytest.mark.parametrize(
    "gt_masks, pred_masks, message",
    [
        (None, ONE_PRED, "masks are None: pass gt_masks and pred_masks, or use_masks=False"),
        (TWO_GT, None, "masks are None: pass gt_masks and pred_masks, or use_masks=False"),
        (TWO_GT[..., 0], ONE_PRED, "masks must be [H, W, N]; got gt (40, 40), pred (40, 40, 1)"),
        (TWO_GT, ONE_PRED[..., 0], "masks must be [H, W, N]; got gt (40, 40, 2), pred (40, 40)"),
        (
            TWO_GT,
            ONE_PRED[None],
            "masks must be [H, W, N]; got gt (40, 40, 2), pred (1, 40, 40, 1)",
        ),
        (
            TWO_GT[None],
            ONE_PRED,
            "masks must be [H, W, N]; got gt (1, 40, 40, 2), pred (40, 40, 1)",
        ),
        (
            TWO_GT[..., :1],
            ONE_PRED,
            "gt_masks has 1 masks for 2 gt_class_ids and pred_masks 1 for 1 pred_class_ids",
        ),
        (
            np.concatenate([TWO_GT, ONE_PRED], axis=-1),
            ONE_PRED,
            "gt_masks has 3 masks for 2 gt_class_ids and pred_masks 1 for 1 pred_class_ids",
        ),
        (
            TWO_GT,
            np.concatenate([ONE_PRED, ONE_PRED], axis=-1),
            "gt_masks has 2 masks for 2 gt_class_ids and pred_masks 2 for 1 pred_class_ids",
        ),
        (
            TWO_GT,
            ONE_PRED[..., :0],
            "gt_masks has 2 masks for 2 gt_class_ids and pred_masks 0 for 1 pred_class_ids",
        ),
    ],
)
def test_bad_masks_are_named(gt_masks, pred_masks, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        compute_matches(None, [1, 1], gt_masks, None, [1], [0.9], pred_masks)


@pytest.mark.parametrize(
    "gt_boxes, pred_boxes, scores, message",
    [
        (GT[:1], GT[:1], [0.9], "1 gt_boxes but 2 gt_class_ids"),
        (np.concatenate([GT, GT[:1]]), GT[:1], [0.9], "3 gt_boxes but 2 gt_class_ids"),
        (GT, GT, [0.9], "2 pred_boxes but 1 pred_class_ids"),
        (GT, np.zeros((0, 4)), [0.9], "0 pred_boxes but 1 pred_class_ids"),
        (None, GT[:1], [0.9], "gt_boxes is None: pass boxes, or use_masks=True with masks"),
        (GT, GT[:1], [0.9, 0.8], "1 pred_class_ids but 2 pred_scores"),
        (GT, GT[:1], [], "1 pred_class_ids but 0 pred_scores"),
    ],
)
def test_bad_boxes_and_scores_are_named(gt_boxes, pred_boxes, scores, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        compute_matches(gt_boxes, [1, 1], None, pred_boxes, [1], scores, None, use_masks=False)


# --- what is padding, what is kept --------------------------------------------------------------
def test_only_all_zero_rows_are_padding():
    gt = GroundTruth(
        np.array([[-4.0, -4.0, -1.0, -1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]]),
        np.array([1, 2, 1]),
        None,
    )
    pred = Predictions(
        np.array([[0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]), np.array([1, 2]), [0.9, 0.8], None
    )
    gt, pred = prepare(gt, pred, use_masks=False, score_threshold=0.0)
    assert gt.boxes.tolist() == [[-4.0, -4.0, -1.0, -1.0], [1.0, 1.0, 1.0, 1.0]]
    assert gt.class_ids.tolist() == [1, 2]
    assert pred.boxes.tolist() == [[1.0, 1.0, 1.0, 1.0]] and pred.scores.tolist() == [0.8]


def test_a_score_equal_to_the_threshold_is_kept_and_defaults_keep_every_score():
    args = (GT, [1, 1], None, GT, [1, 1], [0.3, 0.5], None)
    gt_match, pred_match, _ = compute_matches(*args, 0.5, 0.3, use_masks=False)
    assert gt_match.tolist() == [1, 0] and pred_match.tolist() == [1, 0]
    # defaults: IoU 0.5 and no score threshold (a 0.45-IoU prediction is not a match)
    shifted = np.array([[0.0, 0.0, 20.0, 9.0]])  # IoU 0.45 with A
    gt_match, pred_match, _ = compute_matches(
        GT, [1, 1], None, shifted, [1], [0.01], None, use_masks=False
    )
    assert gt_match.tolist() == [-1, -1] and pred_match.tolist() == [-1]


def test_an_iou_threshold_of_zero_matches_a_disjoint_prediction_of_the_class():
    # As Matterport's compute_matches, which stops only at IoU < threshold.
    far = np.array([[100.0, 100.0, 110.0, 110.0]])
    gt_match, pred_match, _ = compute_matches(
        GT[:1], [1], None, far, [1], [0.9], None, 0.0, use_masks=False
    )
    assert gt_match.tolist() == [0] and pred_match.tolist() == [0]


# --- crowd regions -----------------------------------------------------------------------------
def test_crowd_ignores_only_unmatched_predictions_of_its_class_inside_it():
    # gt: instance A (class 1, inside the crowd area), crowd region of class 1, crowd of class 2
    gt_masks = rects((0, 0, 10, 10), (0, 0, 20, 20), (25, 25, 40, 40))
    gt_ids = np.array([1, -1, -2])
    pred_masks = rects(
        (0, 0, 10, 10),  # p0: A exactly, also inside crowd 1: a match, not ignored
        (10, 10, 20, 20),  # p1: class 1 inside crowd 1: ignored
        (26, 26, 36, 36),  # p2: class 1 inside the class-2 crowd: a false positive
        (30, 0, 40, 10),  # p3: class 1 outside every crowd: a false positive
    )
    gt_match, pred_match, _ = compute_matches(
        None, gt_ids, gt_masks, None, [1, 1, 1, 1], [0.9, 0.8, 0.7, 0.6], pred_masks
    )
    assert gt_match.tolist() == [0, -1, -1]
    assert pred_match.tolist() == [0, IGNORED, -1, -1]


# --- match_instances: the same matching, in the predictions' own order --------------------------
def test_match_instances_reports_in_the_predictions_order():
    gt_masks = rects((0, 0, 10, 10), (20, 20, 30, 30), (0, 20, 15, 40))
    gt_ids = np.array([1, 2, -1])  # the third is a crowd region of class 1
    pred_masks = rects(
        (20, 20, 30, 30),  # p0: B, score 0.6
        (0, 0, 10, 10),  # p1: A, score 0.9
        (0, 0, 10, 9),  # p2: near A, score 0.95 (best): takes A first
        (2, 22, 12, 32),  # p3: class 1 inside the crowd, score 0.5: ignored
        (30, 0, 40, 10),  # p4: nothing, score exactly 0.3: kept at a threshold of 0.3
        (20, 20, 30, 30),  # p5: B again, score 0.2: under the threshold, never matched
    )
    pred_ids = np.array([2, 1, 1, 1, 1, 2])
    scores = np.array([0.6, 0.9, 0.95, 0.5, 0.3, 0.2])
    gt_match, pred_match, overlaps = match_instances(
        gt_ids, gt_masks, pred_ids, scores, pred_masks, 0.5, 0.3
    )
    assert gt_match.tolist() == [2, 0, -1]
    assert pred_match.tolist() == [1, -1, 0, IGNORED, -1, -1]
    assert overlaps.shape == (6, 3) and overlaps.dtype == np.float32
    assert overlaps[2, 0] == np.float32(0.9)
    # p0 scores exactly the threshold: kept, and it finds B
    gt_match, pred_match, _ = match_instances(
        gt_ids, gt_masks, pred_ids, scores, pred_masks, 0.5, 0.6
    )
    assert gt_match.tolist() == [2, 0, -1] and pred_match.tolist() == [1, -1, 0, -1, -1, -1]
    # defaults: IoU 0.5, every score kept
    gt_match, pred_match, _ = match_instances(gt_ids, gt_masks, pred_ids, scores, pred_masks)
    assert gt_match.tolist() == [2, 0, -1]
    assert pred_match.tolist() == [1, -1, 0, IGNORED, -1, -1]
    gt_match, pred_match, _ = match_instances(
        gt_ids, gt_masks, pred_ids[[5]], scores[[5]], pred_masks[..., [5]]
    )
    assert gt_match.tolist() == [-1, 0, -1] and pred_match.tolist() == [1]


def test_match_instances_takes_lists_and_no_prediction():
    gt_match, pred_match, overlaps = match_instances(
        [1], rects((0, 0, 10, 10)), [], [], np.zeros((40, 40, 0), dtype=bool)
    )
    assert gt_match.tolist() == [-1] and pred_match.tolist() == [] and overlaps.shape == (0, 1)


def test_a_prediction_matches_only_its_own_class():
    # the same box as class 1 and as class 3 against a class-2 ground truth: neither matches
    for pred_class in (1, 3):
        gt_match, pred_match, _ = compute_matches(
            GT[:1], [2], None, GT[:1], [pred_class], [0.9], None, use_masks=False
        )
        assert gt_match.tolist() == [-1] and pred_match.tolist() == [-1]


def test_crowd_rules_at_the_threshold_and_for_later_ground_truths():
    # gt: a crowd region of class 1 (index 0), then instance B (class 1, index 1) inside it
    gt_masks = rects((0, 0, 20, 20), (0, 0, 10, 10))
    pred_masks = rects(
        (0, 0, 10, 10),  # p0: B exactly (match to gt index 1), also inside the crowd: kept
        (10, 10, 20, 30),  # p1: 200 px, of which 100 (columns 10-19) inside the crowd: half
    )
    gt_match, pred_match, _ = compute_matches(
        None, [-1, 1], gt_masks, None, [1, 1], [0.9, 0.8], pred_masks
    )
    assert gt_match.tolist() == [-1, 0]
    assert pred_match.tolist() == [1, -2]  # -2: ignored, exactly half inside counts


def test_masks_may_come_as_nested_lists():
    masks = rects((0, 0, 10, 10), (20, 20, 30, 30))
    gt_match, pred_match, _ = compute_matches(
        GT, [1, 1], masks.tolist(), GT[:1], [1], [0.9], masks[..., :1].tolist()
    )
    assert gt_match.tolist() == [0, -1] and pred_match.tolist() == [0]


def test_match_image_matches_masks_by_default_and_its_inputs_are_frozen():
    # Boxes say the prediction is A; the masks say it is nothing. Masks decide by default.
    gt = GroundTruth(GT[:1], np.array([1]), rects((0, 0, 20, 20)))
    pred = Predictions(GT[:1], np.array([1]), np.array([0.9]), rects((30, 30, 40, 40)))
    gt_match, pred_match, _, count = match_image(gt, pred, 0.5)
    assert gt_match.tolist() == [-1] and pred_match.tolist() == [-1] and count == 1
    assert match_image(gt, pred, 0.5, use_masks=False)[0].tolist() == [0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        gt.class_ids = np.array([2])
    with pytest.raises(dataclasses.FrozenInstanceError):
        pred.scores = np.array([0.1])

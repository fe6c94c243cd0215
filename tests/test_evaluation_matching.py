"""Greedy matching and recall of the evaluation on boxes (y1, x1, y2, x2), by hand."""

from __future__ import annotations

import numpy as np

from mrcnn.evaluation import compute_matches, compute_recall

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

"""mrcnn.testing: the pairing of two runs' detections that the export and precision checks use."""

from __future__ import annotations

import numpy as np

from mrcnn.testing import pair_by_class


def _detections(boxes, class_ids, size=20) -> dict:
    """Detect-style dict whose masks fill their boxes (x1, y1, x2, y2)."""
    masks = np.zeros((size, size, len(boxes)), bool)
    for i, (x1, y1, x2, y2) in enumerate(boxes):
        masks[y1:y2, x1:x2, i] = True
    return {
        "boxes": np.array(boxes, np.float32).reshape(-1, 4),
        "class_ids": np.array(class_ids, np.int32),
        "masks": masks,
    }


def test_pairs_follow_the_class_and_the_nearest_box_not_the_order():
    ours = _detections([(0, 0, 4, 4), (10, 10, 16, 16)], [1, 1])
    theirs = _detections([(10, 10, 15, 16), (0, 0, 4, 4), (2, 2, 6, 6)], [1, 1, 2])
    pairs = pair_by_class(ours, theirs)
    assert [(i, j) for i, j, *_ in pairs] == [(0, 1), (1, 0)]
    assert pairs[0][2:] == (0.0, 1.0)
    assert pairs[1][2] == 1.0 and abs(pairs[1][3] - 30 / 36) < 1e-9


def test_each_detection_pairs_once_and_only_within_its_class():
    ours = _detections([(0, 0, 4, 4), (0, 0, 4, 5), (5, 5, 9, 9)], [1, 1, 3])
    theirs = _detections([(0, 0, 4, 4), (0, 0, 4, 4)], [3, 1])
    assert [(i, j) for i, j, *_ in pair_by_class(ours, theirs)] == [(0, 1), (2, 0)]
    assert pair_by_class(ours, _detections([], [])) == []


def test_two_empty_masks_agree():
    ours, theirs = _detections([(3, 3, 3, 3)], [1]), _detections([(3, 3, 3, 3)], [1])
    assert pair_by_class(ours, theirs) == [(0, 0, 0.0, 1.0)]

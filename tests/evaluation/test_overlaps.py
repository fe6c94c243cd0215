"""Box and mask IoUs of the evaluation against independent references (torchvision's box_iou,
pixel counting), on random boxes and masks away from the origin."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import box_iou

from mrcnn.evaluation import compute_overlaps, compute_overlaps_masks


def _random_boxes(rng: np.random.Generator, count: int) -> np.ndarray:
    """[count, 4] (y1, x1, y2, x2), neither side zero, none touching the origin."""
    corner = rng.uniform(5, 60, size=(count, 2))
    size = rng.uniform(1, 50, size=(count, 2))
    return np.concatenate([corner, corner + size], axis=1)


def test_box_overlaps_equal_torchvision_box_iou():
    rng = np.random.default_rng(0)
    boxes1, boxes2 = _random_boxes(rng, 7), _random_boxes(rng, 5)
    ours = compute_overlaps(boxes1, boxes2)
    xyxy = [torch.from_numpy(b[:, [1, 0, 3, 2]]) for b in (boxes1, boxes2)]
    expected = box_iou(*xyxy).numpy()
    assert ours.shape == (7, 5) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(compute_overlaps(boxes2, boxes1), expected.T, rtol=1e-6, atol=1e-7)
    assert 0 < (expected > 0).sum() < expected.size  # some pairs overlap, some do not


def test_box_overlaps_of_hand_worked_tall_and_wide_boxes():
    # a: 20 tall x 40 wide (area 800); b: 30 tall x 10 wide (300); overlap 10 x 10 = 100
    a = np.array([[10.0, 20.0, 30.0, 60.0]])
    b = np.array([[20.0, 50.0, 50.0, 60.0]])
    assert compute_overlaps(a, b)[0, 0] == np.float32(100 / (800 + 300 - 100))
    empty = np.array([[5.0, 5.0, 5.0, 9.0]])
    assert compute_overlaps(empty, empty)[0, 0] == 0.0  # defined, not NaN


def test_mask_overlaps_equal_pixel_counting():
    rng = np.random.default_rng(1)
    masks1 = rng.random((23, 17, 4)) < 0.4
    masks2 = rng.random((23, 17, 3)) < 0.6
    masks2[..., 2] = False  # an empty mask
    ours = compute_overlaps_masks(masks1, masks2)
    inter = (masks1[..., :, None] & masks2[..., None, :]).sum(axis=(0, 1))
    union = (masks1[..., :, None] | masks2[..., None, :]).sum(axis=(0, 1))
    assert ours.shape == (4, 3) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, inter / union, rtol=1e-6)
    assert compute_overlaps_masks(masks2[..., 2:], masks2[..., 2:])[0, 0] == 0.0
    assert compute_overlaps_masks(masks1[..., :0], masks2).shape == (0, 3)

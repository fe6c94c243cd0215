"""Box and mask IoUs of the evaluation against independent references (torchvision's box_iou,
pixel counting), on random boxes and masks away from the origin."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.ops import box_iou

from mrcnn.evaluation import compute_overlaps, compute_overlaps_masks, overlaps


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


def _small_objects(rng: np.random.Generator, count: int, shape=(90, 160)) -> np.ndarray:
    """bool [H, W, count]: ragged blobs in random boxes, some at the frame's edges, one empty."""
    masks = np.zeros((*shape, count), bool)
    for k in range(count - 1):
        h, w = rng.integers(1, 30, size=2)
        y, x = rng.integers(0, shape[0] - h + 1), rng.integers(0, shape[1] - w + 1)
        masks[y : y + h, x : x + w, k] = rng.random((h, w)) < 0.7
    masks[:4, -5:, 0] = True  # the top-right corner
    return masks


def test_small_objects_are_intersected_window_by_window_with_the_same_counts(monkeypatch):
    """Small masks in a large frame are intersected inside their shared windows (the cost of
    the objects, not of the frame); the IoUs equal pixel counting over the whole frame."""
    rng = np.random.default_rng(2)
    masks1, masks2 = _small_objects(rng, 12), _small_objects(rng, 9)
    masks2[..., 3] = masks1[..., 0]  # one exact match
    inter = (masks1[..., :, None] & masks2[..., None, :]).sum(axis=(0, 1))
    union = (masks1[..., :, None] | masks2[..., None, :]).sum(axis=(0, 1))
    expected = np.divide(inter, union, out=np.zeros(inter.shape), where=union > 0)
    products, default_cost = [], overlaps._PAIR_COST
    for pair_cost in (default_cost, 10**9):  # the windows (the default here), the product
        monkeypatch.setattr(overlaps, "_PAIR_COST", pair_cost)
        products.append(compute_overlaps_masks(masks1, masks2))
        np.testing.assert_allclose(products[-1], expected, rtol=1e-6)
    assert products[0][0, 3] == 1.0
    pairs = overlaps.shared_windows(overlaps.mask_windows(masks1), overlaps.mask_windows(masks2))
    pair_pixels = int(((pairs[:, 4] - pairs[:, 2]) * (pairs[:, 5] - pairs[:, 3])).sum())
    assert 0 < len(pairs) < 12 * 9  # some windows share pixels, most do not
    assert pair_pixels * default_cost < 90 * 160 * (12 + 9)  # so the default took them


def test_mask_windows_bound_each_mask():
    masks = np.zeros((6, 8, 3), bool)
    masks[1:3, 2:5, 0] = True
    masks[5, 7, 1] = True
    windows = overlaps.mask_windows(masks)
    assert windows.tolist() == [[1, 2, 3, 5], [5, 7, 6, 8], [0, 0, 0, 0]]

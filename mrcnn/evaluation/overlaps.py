"""Overlaps of boxes and masks: IoU matrices, and the share of each prediction inside crowd
regions.

Boxes are Matterport's (y1, x1, y2, x2) with exclusive y2/x2 (areas ``(y2 - y1) * (x2 - x1)``);
masks are bool [H, W, N] at the original image resolution.
"""

from __future__ import annotations

import numpy as np

from mrcnn.structures.boxes import corner_areas, intersection_areas

#: Pixels per block of the mask-overlap matrix product.
_PIXEL_BLOCK = 1 << 16
#: Relative cost of a pixel of a shared window (two strided reads, an and, a count) against a
#: mask pixel of the matrix product: mask pairs are intersected window by window when their
#: shared windows cost less than the product (small objects in a large frame), which gives
#: the same counts.
_PAIR_COST = 4


def compute_overlaps(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """IoU of every pair of boxes.

    Args:
        boxes1: [N1, 4] and boxes2: [N2, 4], (y1, x1, y2, x2) with exclusive y2/x2.
    Returns:
        float32 [N1, N2] IoUs (0 where both boxes are empty).
    """
    a = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    inter = intersection_areas(a[:, None], b[None])
    return _iou(inter, corner_areas(a), corner_areas(b)).astype(np.float32)


def compute_overlaps_masks(masks1: np.ndarray, masks2: np.ndarray) -> np.ndarray:
    """IoU of every pair of masks.

    Args:
        masks1: bool [H, W, N1] and masks2: bool [H, W, N2] of the same H and W.
    Returns:
        float32 [N1, N2] IoUs (0 where both masks are empty).
    """
    inter, area1, area2 = _mask_intersections(masks1, masks2)
    return _iou(inter, area1, area2).astype(np.float32)


def _iou(inter: np.ndarray, area1: np.ndarray, area2: np.ndarray) -> np.ndarray:
    """float64 [N1, N2] IoUs from intersections [N1, N2] and areas [N1], [N2]; 0 for an
    empty union."""
    union = area1[:, None] + area2[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


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
    windows1, windows2 = mask_windows(masks1), mask_windows(masks2)
    area1 = _window_areas(masks1, windows1)
    area2 = _window_areas(masks2, windows2)
    inter = np.zeros((n1, n2))
    if n1 == 0 or n2 == 0:
        return inter, area1, area2
    shared = shared_windows(windows1, windows2)
    shared_pixels = int(((shared[:, 4] - shared[:, 2]) * (shared[:, 5] - shared[:, 3])).sum())
    pixels = masks1.shape[0] * masks1.shape[1]
    if shared_pixels * _PAIR_COST < pixels * (n1 + n2):  # objects small beside the frame
        for i, j, top, left, bottom, right in shared.tolist():
            both = masks1[top:bottom, left:right, i] & masks2[top:bottom, left:right, j]
            inter[i, j] = np.count_nonzero(both)
        return inter, area1, area2
    flat1 = masks1.reshape(pixels, n1)
    flat2 = masks2.reshape(pixels, n2)
    # Blocks of rows keep the float copies small (a 1024 x 1024 image with 100 masks would
    # need 400 MB at once) and every float32 block sum exact (< 2**24 pixels).
    for start in range(0, pixels, _PIXEL_BLOCK):
        block1 = flat1[start : start + _PIXEL_BLOCK].astype(np.float32)
        block2 = flat2[start : start + _PIXEL_BLOCK].astype(np.float32)
        inter += block1.T @ block2
    return inter, area1, area2


def mask_windows(masks: np.ndarray) -> np.ndarray:
    """int64 [N, 4] (top, left, bottom, right), bottom and right exclusive: the bounding
    window of each of bool ``masks`` [H, W, N]; (0, 0, 0, 0) for an empty mask. Two passes
    over the masks (which rows and which columns hold a pixel), whatever N is."""
    rows, cols = masks.any(axis=1), masks.any(axis=0)  # [H, N], [W, N]
    present = rows.any(axis=0)
    height, width = rows.shape[0], cols.shape[0]
    top, left = rows.argmax(axis=0), cols.argmax(axis=0)
    bottom, right = height - rows[::-1].argmax(axis=0), width - cols[::-1].argmax(axis=0)
    windows = np.stack([top, left, bottom, right], axis=1).astype(np.int64)
    windows[~present] = 0
    return windows


def _window_areas(masks: np.ndarray, windows: np.ndarray) -> np.ndarray:
    """float64 [N] pixels of each of bool ``masks`` [H, W, N], counted inside its window."""
    return np.array(
        [np.count_nonzero(masks[t:b, l:r, k]) for k, (t, l, b, r) in enumerate(windows)],
        dtype=np.float64,
    )


def shared_windows(windows1: np.ndarray, windows2: np.ndarray) -> np.ndarray:
    """int64 [P, 6] (i, j, top, left, bottom, right): for every pair of windows [N1, 4] and
    [N2, 4] (:func:`mask_windows`) that share a pixel, the window they share."""
    top = np.maximum(windows1[:, None, 0], windows2[None, :, 0])
    left = np.maximum(windows1[:, None, 1], windows2[None, :, 1])
    bottom = np.minimum(windows1[:, None, 2], windows2[None, :, 2])
    right = np.minimum(windows1[:, None, 3], windows2[None, :, 3])
    i, j = np.nonzero((bottom > top) & (right > left))
    corners = [corner[i, j] for corner in (top, left, bottom, right)]
    return np.stack([i, j, *corners], axis=1).astype(np.int64).reshape(-1, 6)


def overlaps_and_crowd(
    gt_boxes: np.ndarray | None,
    gt_masks: np.ndarray | None,
    pred_boxes: np.ndarray | None,
    pred_masks: np.ndarray | None,
    crowd: np.ndarray,
    use_masks: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """IoUs with every ground truth and the share of each prediction inside each crowd region.

    Args:
        gt_boxes: [G, 4], pred_boxes: [P, 4] (y1, x1, y2, x2), used when not ``use_masks``.
        gt_masks: bool [H, W, G], pred_masks: bool [H, W, P], used when ``use_masks``.
        crowd: bool [G], the ground truths that are crowd regions.
    Returns:
        (float64 [P, G] IoUs, float64 [P, C] intersection / prediction area for the C crowd
        columns).
    """
    if use_masks:
        inter, pred_area, gt_area = _mask_intersections(pred_masks, gt_masks)
    else:
        p = np.asarray(pred_boxes, dtype=np.float64).reshape(-1, 4)
        g = np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)
        inter = intersection_areas(p[:, None], g[None])
        pred_area, gt_area = corner_areas(p), corner_areas(g)
    inside = inter[:, crowd]
    inside = np.divide(
        inside, pred_area[:, None], out=np.zeros_like(inside), where=pred_area[:, None] > 0
    )
    return _iou(inter, pred_area, gt_area), inside

"""Matterport's molding and unmolding in numpy, for exported ``NETWORK_FLAVOUR = "matterport"``
models (``.h5`` models): what :mod:`mrcnn.structures.matterport_image` does in torch, with the
same float64 arithmetic, so that :mod:`mrcnn.deploy.runtime` runs without torch.

- Molding: scikit-image's order-1 ``resize`` (mode "constant": samples near the border blend
  with 0), truncated to whole values as Matterport's ``resize_image`` casts to uint8, zero
  padding, then MEAN_PIXEL subtracted (the padding is ``-MEAN_PIXEL``).
- Unmolding: boxes through normalised coordinates of the padded input and of the window to
  whole pixels of the original image; detections whose box has no area are dropped.
- Pasting: each M x M mask resized into its whole-pixel box as above, kept at >= 0.5.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from mrcnn.structures.resize_plan import ImageMeta, ResizePlan


def _taps(source: int, target: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lower and upper input index and upper weight of each of ``target`` samples (grid-mode
    positions (o + 0.5) * source / target - 0.5); an index outside [0, source) is the zero
    border."""
    position = (np.arange(target, dtype=np.float64) + 0.5) * (source / target) - 0.5
    low = np.floor(position)
    return low.astype(np.int64), low.astype(np.int64) + 1, position - low


def constant_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """scikit-image ``resize(order=1, mode="constant", cval=0, clip=True)`` of [C, H, W]
    (:func:`mrcnn.structures.matterport_image.constant_resize`): float64 [C, size[0], size[1]],
    the four taps summed in the same order."""
    channels, height, width = image.shape
    source = image.astype(np.float64, copy=False)
    r0, r1, wy = _taps(height, int(size[0]))
    c0, c1, wx = _taps(width, int(size[1]))
    out = np.zeros((channels, len(wy), len(wx)), dtype=np.float64)
    for rows, row_w in ((r0, 1.0 - wy), (r1, wy)):
        row_ok = (rows >= 0) & (rows < height)
        picked = source[:, np.clip(rows, 0, height - 1)] * row_ok[None, :, None]
        for cols, col_w in ((c0, 1.0 - wx), (c1, wx)):
            col_ok = (cols >= 0) & (cols < width)
            values = picked[:, :, np.clip(cols, 0, width - 1)] * col_ok[None, None, :]
            out += values * row_w[None, :, None] * col_w[None, None, :]
    return np.clip(out, source.min(), source.max())


def mold_image(
    image: np.ndarray, settings: SimpleNamespace, plan: ResizePlan
) -> tuple[np.ndarray, np.ndarray]:
    """Matterport's molding of one H x W x 3 uint8 RGB image: (image [1, 3, H_in, W_in]
    float32, window [1, 4] float32 (x1, y1, x2, y2))."""
    tensor = image.transpose(2, 0, 1).astype(np.float64)
    if plan.resized_shape != plan.original_shape:
        tensor = np.floor(constant_resize(tensor, plan.resized_shape))  # uint8's truncation
    if plan.crop is not None:
        y, x, h, w = plan.crop
        tensor = tensor[:, y : y + h, x : x + w]
    top, bottom, left, right = plan.padding
    tensor = np.pad(tensor, ((0, 0), (top, bottom), (left, right)))
    mean = np.asarray(settings.MEAN_PIXEL, dtype=np.float64)[:, None, None]
    # float32 image minus a float64 mean, as numpy computes Matterport's mold_image
    molded = (tensor.astype(np.float32).astype(np.float64) - mean).astype(np.float32)
    return molded[None], np.asarray([plan.meta().window], dtype=np.float32)


def unmold_boxes(
    boxes: np.ndarray, meta: ImageMeta, input_shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Matterport's box unmolding of [N, 4] (x1, y1, x2, y2) network-input pixels: (float32
    [N', 4] whole pixels of the original image, int64 [N'] indices kept: boxes with area)."""
    height, width = input_shape
    scale = np.asarray([width - 1, height - 1, width - 1, height - 1], dtype=np.float64)
    shift = np.asarray([0.0, 0.0, 1.0, 1.0])
    normalised = (boxes.astype(np.float64) - shift) / scale
    wx1, wy1, wx2, wy2 = (np.asarray(meta.window, dtype=np.float64) - shift) / scale
    on_window = (normalised - [wx1, wy1, wx1, wy1]) / [wx2 - wx1, wy2 - wy1, wx2 - wx1, wy2 - wy1]
    original_h, original_w = meta.original_shape
    size = np.asarray([original_w - 1, original_h - 1, original_w - 1, original_h - 1])
    pixels = np.round(on_window * size + shift)
    kept = np.flatnonzero((pixels[:, 2] - pixels[:, 0]) * (pixels[:, 3] - pixels[:, 1]) > 0)
    return pixels[kept].astype(np.float32), kept


def paste_masks(masks: np.ndarray, boxes: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Matterport's ``unmold_mask`` of [N, M, M] soft masks into whole-pixel [N, 4]
    (x1, y1, x2, y2) boxes: bool [H, W, N]."""
    out = np.zeros((int(shape[0]), int(shape[1]), len(masks)), dtype=bool)
    for index, (mask, box) in enumerate(zip(masks, boxes.astype(np.int64), strict=True)):
        x1, y1, x2, y2 = (int(v) for v in box)
        resized = constant_resize(mask[None].astype(np.float32), (y2 - y1, x2 - x1))[0]
        out[y1:y2, x1:x2, index] = resized.astype(np.float32) >= 0.5
    return out

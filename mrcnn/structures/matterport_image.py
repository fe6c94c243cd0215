"""Matterport's image molding and mask unmolding, for ``NETWORK_FLAVOUR = "matterport"``.

Molding (Matterport's ``resize_image`` + ``mold_image``): resize the uint8 image with
scikit-image's order-1 ``resize`` (mode "constant": samples near the border blend with 0;
``preserve_range``; output clipped to the input's range), truncate it back to uint8 as
``resize_image`` does, zero-pad it to the plan's size, then subtract MEAN_PIXEL, so the padding
is ``-MEAN_PIXEL``. The resize samples the points of ``grid_sample`` with zero padding and
``align_corners=False``, summed as scipy.ndimage does.

Unmolding (Matterport's ``unmold_detections`` + ``unmold_mask``): boxes go through normalised
coordinates of the padded input and of the window to whole pixels of the original image;
detections with no area are dropped; each 28 x 28 mask is resized into its box as above and
thresholded at >= 0.5.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from mrcnn.structures.boxes import normalise_boxes, xyxy_to_yxyx
from mrcnn.structures.resize_plan import ImageMeta, ResizePlan
from mrcnn.structures.transfer import to_host


def _taps(source: int, target: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Lower/upper input index and upper weight of each of ``target`` samples along one axis,
    at scipy.ndimage.zoom's grid-mode positions (o + 0.5) * source / target - 0.5; an index
    outside [0, source) marks a sample of the zero border."""
    position = (torch.arange(target, dtype=torch.float64, device=device) + 0.5) * (
        source / target
    ) - 0.5
    low = torch.floor(position)
    return low.long(), low.long() + 1, position - low


def constant_resize(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """scikit-image ``resize(order=1, mode="constant", cval=0, clip=True)`` of [C, H, W].

    The four bilinear taps are summed in scipy.ndimage's order and float64 arithmetic, so that
    values Matterport truncates to uint8 afterwards truncate the same way. Returns
    [C, size[0], size[1]] in ``image``'s dtype.
    """
    channels, height, width = image.shape
    dtype, device = image.dtype, image.device
    source = image.to(torch.float64)
    r0, r1, wy = _taps(height, int(size[0]), device)
    c0, c1, wx = _taps(width, int(size[1]), device)
    out = torch.zeros((channels, len(wy), len(wx)), dtype=torch.float64, device=device)
    for rows, row_w in ((r0, 1.0 - wy), (r1, wy)):
        row_ok = (rows >= 0) & (rows < height)
        picked = source[:, rows.clamp(0, height - 1)] * row_ok[None, :, None]
        for cols, col_w in ((c0, 1.0 - wx), (c1, wx)):
            col_ok = (cols >= 0) & (cols < width)
            values = picked[:, :, cols.clamp(0, width - 1)] * col_ok[None, None, :]
            out += values * row_w[None, :, None] * col_w[None, None, :]
    return out.clamp(source.min(), source.max()).to(dtype)


def mold_image(image: np.ndarray, config, plan: ResizePlan, dtype, device) -> torch.Tensor:
    """Matterport's molding of one H x W x 3 uint8 RGB image: [3, out_h, out_w] tensor."""
    if not image.flags.writeable:  # torch.from_numpy wants a writable array
        image = image.copy()
    tensor = torch.from_numpy(np.ascontiguousarray(image)).to(device)
    tensor = tensor.permute(2, 0, 1).to(torch.float64)
    if plan.resized_shape != plan.original_shape:
        # resize_image casts the resized float image back to uint8 (truncating)
        tensor = torch.floor(constant_resize(tensor, plan.resized_shape))
    if plan.crop is not None:
        y, x, h, w = plan.crop
        tensor = tensor[:, y : y + h, x : x + w]
    top, bottom, left, right = plan.padding
    tensor = F.pad(tensor, (left, right, top, bottom))
    mean = torch.as_tensor(np.asarray(config.MEAN_PIXEL, dtype=np.float64), device=device)
    # float32 image minus a float64 mean, as numpy computes Matterport's mold_image
    return (tensor.to(torch.float32).to(torch.float64) - mean.view(-1, 1, 1)).to(dtype)


def unmold_boxes(
    boxes: torch.Tensor, meta: ImageMeta, input_shape: tuple[int, int]
) -> torch.Tensor:
    """Matterport's box unmolding.

    Args:
        boxes: [N, 4] (x1, y1, x2, y2) in network-input pixels.
        input_shape: (H, W) of the padded network input.
    Returns:
        float64 [N, 4] (x1, y1, x2, y2) whole pixels of the original image.
    """
    normalised = normalise_boxes(boxes.to(torch.float64), input_shape)
    window = normalise_boxes(
        torch.tensor([meta.window], dtype=torch.float64, device=boxes.device), input_shape
    )[0]
    wx1, wy1, wx2, wy2 = window
    shift = torch.stack([wx1, wy1, wx1, wy1])
    scale = torch.stack([wx2 - wx1, wy2 - wy1, wx2 - wx1, wy2 - wy1])
    on_window = (normalised - shift) / scale
    height, width = meta.original_shape
    original = torch.tensor([width - 1, height - 1, width - 1, height - 1], dtype=torch.float64)
    offset = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    return torch.round(on_window * original.to(boxes.device) + offset.to(boxes.device))


def unmold_mask(mask: torch.Tensor, box: tuple[int, int, int, int], shape) -> torch.Tensor:
    """Matterport's ``unmold_mask``: resize [M, M] into the (x1, y1, x2, y2) whole-pixel
    ``box``, threshold at >= 0.5 and place it in a bool [H, W] image of ``shape``."""
    x1, y1, x2, y2 = box
    full = torch.zeros((int(shape[0]), int(shape[1])), dtype=torch.bool, device=mask.device)
    full[y1:y2, x1:x2] = _box_mask(mask, box)
    return full


def _box_mask(mask: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    """[M, M] soft mask resized to the (x1, y1, x2, y2) whole-pixel box and thresholded at
    >= 0.5: bool [y2 - y1, x2 - x1]."""
    x1, y1, x2, y2 = box
    return constant_resize(mask[None], (y2 - y1, x2 - x1))[0] >= 0.5


def unmold_detections(
    boxes: torch.Tensor,
    class_ids: torch.Tensor,
    scores: torch.Tensor,
    masks: torch.Tensor,
    meta: ImageMeta,
    input_shape: tuple[int, int],
) -> dict:
    """One image's detections as :meth:`mrcnn.model.MaskRCNN.detect` returns them.

    Args:
        boxes: [N, 4] (x1, y1, x2, y2) network-input pixels; class_ids: [N]; scores: [N];
        masks: [N, M, M] soft masks of each detection's class.
    Returns:
        dict of "rois" int32 [N', 4] (y1, x1, y2, x2), "boxes" float32 [N', 4] (x1, y1, x2, y2)
        (the same whole pixels), "class_ids" int32 [N'], "scores" float32 [N'], "masks" bool
        [H, W, N']; detections whose unmolded box has no area are dropped, as Matterport does.
    """
    pixels = unmold_boxes(boxes, meta, input_shape)
    area = (pixels[:, 2] - pixels[:, 0]) * (pixels[:, 3] - pixels[:, 1])
    keep = torch.nonzero(area > 0).squeeze(1)
    pixels = pixels[keep].to(torch.int64)
    masks = masks[keep].to(torch.float32)
    height, width = meta.original_shape
    # Written box by box into the [H, W, N] result: stacking N full-image masks along the
    # last axis cost more than the resizing on a 1024 x 1024 photo.
    stacked = torch.zeros((height, width, len(pixels)), dtype=torch.bool, device=masks.device)
    for i, (mask, (x1, y1, x2, y2)) in enumerate(zip(masks, pixels.tolist(), strict=True)):
        stacked[y1:y2, x1:x2, i] = _box_mask(mask, (x1, y1, x2, y2))
    stacked = to_host(stacked)
    boxes_np = pixels.cpu().numpy()
    return {
        "rois": xyxy_to_yxyx(boxes_np).astype(np.int32),
        "boxes": boxes_np.astype(np.float32),
        "class_ids": class_ids[keep].cpu().numpy().astype(np.int32),
        "scores": scores[keep].float().cpu().numpy(),
        "masks": stacked,
    }


def unmold_selected(found: dict, image: int, meta: ImageMeta, input_shape) -> dict:
    """:func:`unmold_detections` of image ``image`` of a batch's network output ``found``
    (the dict of :meth:`mrcnn.modeling.network.MaskRCNNNet.forward`)."""
    chosen = found["image_index"] == image
    return unmold_detections(
        found["boxes"][chosen],
        found["class_ids"][chosen],
        found["scores"][chosen],
        found["masks"][chosen],
        meta,
        (int(input_shape[0]), int(input_shape[1])),
    )

"""Box coding, IoU and clipping.

Inside the network every box is (x1, y1, x2, y2) in input-image pixels, float, with the
width being ``x2 - x1`` (no "+1"). Deltas are (dx, dy, dw, dh): centre shifts relative to the
reference box size and log size ratios, divided by a per-coordinate standard deviation.
The Matterport-style public API uses (y1, x1, y2, x2); :func:`xyxy_to_yxyx` converts.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchvision.ops import box_iou

#: Largest log size ratio a delta may express; keeps exp() finite for wild predictions
#: (the value torchvision and Detectron use).
BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def encode_deltas(boxes: torch.Tensor, reference: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Deltas that turn ``reference`` boxes into ``boxes``.

    Args:
        boxes: [N, 4] target boxes (x1, y1, x2, y2).
        reference: [N, 4] reference boxes (anchors or proposals), (x1, y1, x2, y2).
        std: [4] standard deviations of (dx, dy, dw, dh).
    Returns:
        [N, 4] deltas (dx, dy, dw, dh), already divided by ``std``.
    """
    ref_w = reference[:, 2] - reference[:, 0]
    ref_h = reference[:, 3] - reference[:, 1]
    ref_x = reference[:, 0] + 0.5 * ref_w
    ref_y = reference[:, 1] + 0.5 * ref_h
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    x = boxes[:, 0] + 0.5 * w
    y = boxes[:, 1] + 0.5 * h
    deltas = torch.stack(
        [(x - ref_x) / ref_w, (y - ref_y) / ref_h, torch.log(w / ref_w), torch.log(h / ref_h)],
        dim=1,
    )
    return deltas / std.to(deltas)


def decode_deltas(deltas: torch.Tensor, reference: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """Apply deltas to reference boxes.

    Args:
        deltas: [..., N, 4] (dx, dy, dw, dh) as the network predicts them (before ``* std``);
            leading dimensions broadcast against ``reference``.
        reference: [N, 4] boxes (x1, y1, x2, y2).
        std: [4] standard deviations of (dx, dy, dw, dh).
    Returns:
        [..., N, 4] boxes (x1, y1, x2, y2).
    """
    deltas = deltas * std.to(deltas)
    ref_w = reference[:, 2] - reference[:, 0]
    ref_h = reference[:, 3] - reference[:, 1]
    ref_x = reference[:, 0] + 0.5 * ref_w
    ref_y = reference[:, 1] + 0.5 * ref_h
    dx, dy = deltas[..., 0], deltas[..., 1]
    dw = deltas[..., 2].clamp(max=BBOX_XFORM_CLIP)
    dh = deltas[..., 3].clamp(max=BBOX_XFORM_CLIP)
    x = dx * ref_w + ref_x
    y = dy * ref_h + ref_y
    half_w = 0.5 * torch.exp(dw) * ref_w
    half_h = 0.5 * torch.exp(dh) * ref_h
    return torch.stack([x - half_w, y - half_h, x + half_w, y + half_h], dim=-1)


def clip_boxes(boxes: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Clip boxes to a window.

    Args:
        boxes: [..., 4] (x1, y1, x2, y2).
        window: [4] or broadcastable [..., 4] window (x1, y1, x2, y2).
    Returns:
        boxes of the same shape, each coordinate inside the window.
    """
    window = window.to(boxes)
    low = torch.cat([window[..., :2], window[..., :2]], dim=-1)
    high = torch.cat([window[..., 2:], window[..., 2:]], dim=-1)
    return torch.minimum(torch.maximum(boxes, low), high)


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Areas of [..., 4] (x1, y1, x2, y2) boxes, shape [...]."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def large_enough(boxes: torch.Tensor, min_size: float) -> torch.Tensor:
    """Bool [N]: boxes [N, 4] (x1, y1, x2, y2) whose width and height are >= ``min_size``."""
    return ((boxes[:, 2] - boxes[:, 0]) >= min_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_size)


def iou(boxes_a: torch.Tensor, boxes_b: torch.Tensor) -> torch.Tensor:
    """IoU matrix [N, M] of [N, 4] and [M, 4] (x1, y1, x2, y2) boxes (torchvision's box_iou)."""
    return box_iou(boxes_a, boxes_b)


def intersection_areas(
    boxes_a: np.ndarray | torch.Tensor, boxes_b: np.ndarray | torch.Tensor
) -> np.ndarray | torch.Tensor:
    """Intersection areas of [..., 4] boxes broadcast against each other.

    Both arguments hold corners in the same order, (x1, y1, x2, y2) or (y1, x1, y2, x2): the
    area is the same either way. numpy arrays or torch tensors (not mixed); the result has the
    broadcast shape [...]. ``a[:, None]`` against ``b[None]`` gives the [N, M] pairwise matrix.
    """
    lib = torch if isinstance(boxes_a, torch.Tensor) else np
    low = lib.maximum(boxes_a[..., :2], boxes_b[..., :2])
    high = lib.minimum(boxes_a[..., 2:], boxes_b[..., 2:])
    return lib.clip(high - low, 0, None).prod(-1)


def corner_areas(boxes: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Areas [...] of [..., 4] boxes in either corner order; 0 for inverted boxes."""
    lib = torch if isinstance(boxes, torch.Tensor) else np
    return lib.clip(boxes[..., 2:] - boxes[..., :2], 0, None).prod(-1)


def broadcast_iou(
    boxes_a: np.ndarray | torch.Tensor, boxes_b: np.ndarray | torch.Tensor
) -> np.ndarray | torch.Tensor:
    """IoU [...] of [..., 4] boxes broadcast against each other (corner order and types as
    :func:`intersection_areas`); 0 where both boxes are empty. For the pairwise matrix of two
    torch box lists, :func:`iou` (torchvision's ``box_iou``) is the same number."""
    lib = torch if isinstance(boxes_a, torch.Tensor) else np
    inter = intersection_areas(boxes_a, boxes_b)
    union = corner_areas(boxes_a) + corner_areas(boxes_b) - inter
    # inter <= union, so an empty union gives 0 / tiny = 0 rather than NaN.
    return inter / lib.clip(union, 1e-9, None)


def xyxy_to_yxyx(boxes: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
    """Swap [..., 4] boxes between (x1, y1, x2, y2) and (y1, x1, y2, x2); its own inverse."""
    return boxes[..., [1, 0, 3, 2]]


yxyx_to_xyxy = xyxy_to_yxyx


def extract_boxes_from_masks(masks: np.ndarray) -> np.ndarray:
    """Tight boxes around bool masks.

    Args:
        masks: [H, W, N] bool.
    Returns:
        int32 [N, 4] (y1, x1, y2, x2) with exclusive y2, x2 (Matterport's ``extract_bboxes``);
        an all-zero row for an empty mask.
    """
    masks = np.asarray(masks, dtype=bool)
    n = masks.shape[-1]
    boxes = np.zeros((n, 4), dtype=np.int32)
    if n == 0:
        return boxes
    # Reduced along contiguous axes: copying to [N, H, W] first costs far less than reducing
    # [H, W, N] over its middle axis (about 10x at 640 x 360).
    planes = np.ascontiguousarray(np.moveaxis(masks, -1, 0)).view(np.uint8)
    rows = planes.max(axis=2).T.astype(bool)  # [H, N]
    cols = planes.max(axis=1).T.astype(bool)  # [W, N]
    has_any = rows.any(axis=0)
    y1 = rows.argmax(axis=0)
    y2 = rows.shape[0] - rows[::-1].argmax(axis=0)
    x1 = cols.argmax(axis=0)
    x2 = cols.shape[0] - cols[::-1].argmax(axis=0)
    boxes[:] = np.stack([y1, x1, y2, x2], axis=1)
    boxes[~has_any] = 0
    return boxes


def _scale_shift(image_shape, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    height, width = float(image_shape[0]), float(image_shape[1])
    scale = torch.tensor([width - 1, height - 1, width - 1, height - 1], dtype=torch.float64)
    shift = torch.tensor([0.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    return scale.to(like.device), shift.to(like.device)


def normalise_boxes(boxes: torch.Tensor, image_shape) -> torch.Tensor:
    """[N, 4] (x1, y1, x2, y2) pixels -> Matterport's normalised coordinates (its
    ``norm_boxes``: (box - (0, 0, 1, 1)) / (W - 1, H - 1, W - 1, H - 1)), in float64 as numpy
    computes it, returned in ``boxes``' dtype."""
    scale, shift = _scale_shift(image_shape, boxes)
    return ((boxes.to(torch.float64) - shift) / scale).to(boxes.dtype)


def denormalise_boxes(boxes: torch.Tensor, image_shape) -> torch.Tensor:
    """Inverse of :func:`normalise_boxes` (Matterport's ``denorm_boxes`` before rounding)."""
    scale, shift = _scale_shift(image_shape, boxes)
    return (boxes.to(torch.float64) * scale + shift).to(boxes.dtype)

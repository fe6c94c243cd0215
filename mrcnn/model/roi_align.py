"""Pyramid ROIAlign: crop a fixed-size feature patch for every box from the level that suits it.

Small boxes read fine levels (P2), large ones coarse levels (P5): a box of sqrt(area) = 224
pixels, the ImageNet crop size, goes to P4, and each doubling of size moves one level up.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.ops import roi_align

#: Box size (sqrt of area, pixels) that maps to CANONICAL_LEVEL.
CANONICAL_SIZE = 224
CANONICAL_LEVEL = 4
MIN_LEVEL, MAX_LEVEL = 2, 5


def assign_levels(boxes: torch.Tensor, rounding: str = "round") -> torch.Tensor:
    """Pyramid level (2..5) of each box: 4 + log2(sqrt(area) / 224), rounded or floored.

    Args:
        boxes: [K, 4] (x1, y1, x2, y2) in network-input pixels.
        rounding: "round" (Matterport) or "floor" (torchvision, with a 1e-6 tolerance so that
            exact powers of two land on their own level).
    Returns:
        int64 [K] levels in [2, 5].
    """
    size = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    level = CANONICAL_LEVEL + torch.log2(size / CANONICAL_SIZE)
    level = torch.floor(level + 1e-6) if rounding == "floor" else torch.round(level)
    # log2(0) = -inf for empty boxes; nan_to_num keeps them on the lowest level.
    level = torch.nan_to_num(level, nan=MIN_LEVEL, neginf=MIN_LEVEL, posinf=MAX_LEVEL)
    return level.clamp(MIN_LEVEL, MAX_LEVEL).to(torch.int64)


def pyramid_roi_align(
    features: Sequence[torch.Tensor],
    boxes: torch.Tensor,
    image_index: torch.Tensor,
    output_size: int,
    strides: Sequence[int],
    sampling_ratio: int = 2,
    aligned: bool = True,
    rounding: str = "round",
) -> torch.Tensor:
    """ROIAlign every box on its pyramid level.

    Args:
        features: [P2, P3, P4, P5], each [B, C, H_l, W_l].
        boxes: [K, 4] (x1, y1, x2, y2) in network-input pixels.
        image_index: int64 [K] image of each box.
        output_size: side of the output patch (POOL_SIZE or MASK_POOL_SIZE).
        strides: stride of each of the given levels (BACKBONE_STRIDES[:4]).
        sampling_ratio, aligned: torchvision.ops.roi_align options.
        rounding: see :func:`assign_levels`.
    Returns:
        [K, C, output_size, output_size] in the features' dtype.
    """
    levels = assign_levels(boxes, rounding) - MIN_LEVEL
    rois = torch.cat([image_index.to(boxes)[:, None], boxes], dim=1)
    first = features[0]
    out = first.new_zeros((len(boxes), first.shape[1], output_size, output_size))
    for level, (feature, stride) in enumerate(zip(features, strides, strict=True)):
        chosen = torch.nonzero(levels == level).squeeze(1)
        if chosen.numel() == 0:
            continue
        out[chosen] = roi_align(
            feature,
            rois[chosen],
            output_size,
            spatial_scale=1.0 / stride,
            sampling_ratio=sampling_ratio,
            aligned=aligned,
        )
    return out

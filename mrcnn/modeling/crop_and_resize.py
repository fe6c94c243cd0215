"""TensorFlow's ``crop_and_resize`` on a feature pyramid: Matterport's PyramidROIAlign sampling.

For a normalised box (x1, y1, x2, y2) on a map of H x W cells and an S x S output, output cell
(i, j) is the bilinear value at row ``y1 * (H - 1) + i * (y2 - y1) * (H - 1) / (S - 1)`` and
column likewise: one sample per cell, the first and last on the box's corners. Samples outside
[0, H - 1] x [0, W - 1] are 0 (``extrapolation_value``), except those within
:data:`EDGE_TOLERANCE` of it, which read the edge: float rounding puts the last sample of a box
that ends on the edge there. Each output value is a weighted sum of
4 feature pixels, computed with :func:`mrcnn.modeling.roi_align.sample_table` (the sparse
sampling product, or the inference gather).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mrcnn.modeling.roi_align import coordinate_dtype, feature_table, sample_table

#: Map pixels by which a sample may lie past the map's edge and still read the edge (float
#: rounding of a box that ends on the edge); farther out, crop_and_resize's value 0.
EDGE_TOLERANCE = 1e-3


def _axis_taps(start: torch.Tensor, end: torch.Tensor, size: torch.Tensor, output_size: int):
    """Taps of crop_and_resize along one axis.

    Args:
        start, end: [K] normalised box edges; size: [K] map length along the axis.
        output_size: S.
    Returns:
        index int64 [K, S, 2] (the floor and ceil pixel) and weight [K, S, 2]; a sample outside
        the map weighs 0 on both.
    """
    last = (size - 1).to(start.dtype)
    if output_size > 1:
        steps = torch.arange(output_size, dtype=start.dtype, device=start.device)
        step = (end - start) * last / (output_size - 1)
        position = (start * last)[:, None] + steps[None, :] * step[:, None]
    else:
        position = (0.5 * (start + end) * last)[:, None]
    # why the tolerance: a box ending on the map's edge puts its last sample there, and float
    # rounding can land it a hair past (TensorFlow then gives 0, or not, by the rounding of
    # its own arithmetic); such a sample reads the edge, as ROIAlign does in the export graph
    inside = (position >= -EDGE_TOLERANCE) & (position <= last[:, None] + EDGE_TOLERANCE)
    position = torch.where(inside, position.clamp(min=0), torch.zeros_like(position))
    position = torch.minimum(position, last[:, None])
    low, high = position.floor(), position.ceil()
    lerp = position - low
    weights = torch.stack([(1.0 - lerp) * inside, lerp * inside], -1)
    return torch.stack([low, high], -1).long(), weights


def pyramid_crop_and_resize(
    features: Sequence[torch.Tensor],
    boxes: torch.Tensor,
    image_index: torch.Tensor,
    levels: torch.Tensor,
    output_size: int,
    table: torch.Tensor | None = None,
) -> torch.Tensor:
    """crop_and_resize every box on its pyramid level.

    Args:
        features: [P2, P3, P4, P5], each [B, C, H_l, W_l] (any memory format).
        boxes: [K, 4] normalised (x1, y1, x2, y2).
        image_index: int64 [K]; levels: int64 [K] pyramid level 2..5 of each box.
        output_size: S (POOL_SIZE or MASK_POOL_SIZE).
        table: :func:`mrcnn.modeling.roi_align.feature_table` of ``features`` when the caller
            built it already.
    Returns:
        [K, C, S, S] in the features' dtype.
    """
    first = features[0]
    channels, k = first.shape[1], len(boxes)
    if k == 0:
        return first.new_zeros((0, channels, output_size, output_size))
    if table is None:
        table = feature_table(features)
    device = first.device
    level = levels.to(device) - 2
    heights = torch.tensor([f.shape[2] for f in features], device=device)[level]
    widths = torch.tensor([f.shape[3] for f in features], device=device)[level]
    sizes = torch.tensor([f.shape[0] * f.shape[2] * f.shape[3] for f in features], device=device)
    first_pixel = (torch.cumsum(sizes, 0) - sizes)[level] + image_index.to(
        device
    ) * heights * widths
    b = boxes.detach().to(device=device, dtype=coordinate_dtype(table))
    rows, row_w = _axis_taps(b[:, 1], b[:, 3], heights, output_size)
    cols, col_w = _axis_taps(b[:, 0], b[:, 2], widths, output_size)
    s = output_size
    # [K, S (row), S (column), 2 (row tap), 2 (column tap)]
    columns = (
        first_pixel.view(k, 1, 1, 1, 1)
        + rows.view(k, s, 1, 2, 1) * widths.view(k, 1, 1, 1, 1)
        + cols.view(k, 1, s, 1, 2)
    )
    weights = row_w.view(k, s, 1, 2, 1) * col_w.view(k, 1, s, 1, 2)
    out = sample_table(table, columns.reshape(-1, 4), weights.reshape(-1, 4))
    return out.view(k, s, s, channels).permute(0, 3, 1, 2).to(first.dtype)

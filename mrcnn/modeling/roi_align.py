"""Pyramid ROIAlign: crop a fixed-size feature patch for every box from the level that suits it.

Small boxes read fine levels (P2), large ones coarse levels (P5): a box of sqrt(area) = 224
pixels, the ImageNet crop size, goes to P4, and each doubling of size moves one level up.

The crop is torchvision's ROIAlign arithmetic (same sample points, same bilinear weights, same
edge rules), written as one sparse matrix product: every output value is a fixed weighted sum
of at most ``4 * sampling_ratio**2`` feature pixels, so all boxes of all levels become one
[K * S * S, N] sparse matrix applied to the pyramid's pixels stacked as an [N, C] table. The
backward pass is the transposed product. Both run multi-threaded and read channels-last maps
without reordering them, where torchvision's CPU kernel is a single-threaded loop (on a
training step its backward cost as much as all convolutions' backward together).

Where no gradient is needed on the CPU (inference), the same weighted sums run as a gather,
``embedding_bag`` with per-sample weights: each output row sums its taps' table rows. It reads
a bfloat16 table as it is (float32 accumulation inside), so bf16 inference neither widens the
pyramid to float32 nor multiplies a float32 sparse matrix: on an R-101 1024 x 1024 pyramid
that was about 50 ms of the box head's pooling (``benchmarks/RESULTS.md``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from mrcnn.modeling.conv_fusion import exporting

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


def _axis_taps(
    start: torch.Tensor, length: torch.Tensor, size: torch.Tensor, output_size: int, grid: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bilinear taps of the sample points along one axis (torchvision's ROIAlign arithmetic).

    Args:
        start, length: [K] ROI start and length in feature-map pixels.
        size: [K] feature-map length along this axis (height or width of the ROI's level).
        output_size: bins per side; grid: sample points per bin and side.
    Returns:
        index int64 [K, output_size, grid, 2] and weight [K, output_size, grid, 2]: the lower
        and upper neighbour pixel of every sample and their weights; samples more than one
        pixel outside the map weigh 0, as in torchvision.
    """
    bin_size = (length / output_size)[:, None, None]
    bins = torch.arange(output_size, dtype=start.dtype, device=start.device)[None, :, None]
    steps = torch.arange(grid, dtype=start.dtype, device=start.device)[None, None, :] + 0.5
    # Same operation order as torchvision's kernel, so float64 results agree to the last bits.
    position = start[:, None, None] + bins * bin_size + steps * bin_size / grid
    size = size.to(start.dtype)[:, None, None]
    inside = (position >= -1.0) & (position <= size)
    position = position.clamp(min=0.0)
    low = position.floor()
    at_edge = low >= size - 1
    low = torch.where(at_edge, size - 1, low)
    position = torch.where(at_edge, low, position)
    high = torch.where(at_edge, low, low + 1)
    upper = (position - low) * inside
    lower = (1.0 - (position - low)) * inside
    return torch.stack([low, high], -1).long(), torch.stack([lower, upper], -1)


def _sampling_matrix(
    boxes: torch.Tensor,
    image_index: torch.Tensor,
    levels: torch.Tensor,
    shapes: Sequence[tuple[int, int, int]],
    strides: Sequence[int],
    output_size: int,
    sampling_ratio: int,
    aligned: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Column indices and weights of the ROIAlign sampling matrix, row by row.

    Args:
        boxes: [K, 4] (x1, y1, x2, y2) in network-input pixels.
        image_index: int64 [K]; levels: int64 [K] index into ``shapes`` (0 = P2).
        shapes: (batch, height, width) of each level's map.
        strides: stride of each level.
    Returns:
        columns int64 [K * S * S, T] and weights [K * S * S, T], T = 4 * sampling_ratio**2:
        row k * S * S + i * S + j holds bin (i, j) of box k; a column is a pixel of the
        stacked table (levels in order, then image, row, column). Weights include the 1 /
        sampling_ratio**2 average.
    """
    device, dtype = boxes.device, boxes.dtype
    heights = torch.tensor([s[1] for s in shapes], device=device)[levels]
    widths = torch.tensor([s[2] for s in shapes], device=device)[levels]
    sizes = torch.tensor([s[0] * s[1] * s[2] for s in shapes], device=device)
    level_start = torch.cumsum(sizes, 0) - sizes
    scale = 1.0 / torch.tensor(list(map(float, strides)), dtype=dtype, device=device)[levels]
    offset = 0.5 if aligned else 0.0
    x1, y1, x2, y2 = (boxes[:, i] * scale - offset for i in range(4))
    width, height = x2 - x1, y2 - y1
    if not aligned:  # torchvision's legacy mode makes every ROI at least one pixel wide
        width, height = width.clamp(min=1.0), height.clamp(min=1.0)
    rows_at, row_weight = _axis_taps(y1, height, heights, output_size, sampling_ratio)
    cols_at, col_weight = _axis_taps(x1, width, widths, output_size, sampling_ratio)
    first_pixel = level_start[levels] + image_index * heights * widths
    k = len(boxes)
    # [K, S (bin row), S (bin column), grid row, grid column, 2 (row tap), 2 (column tap)]
    columns = (
        first_pixel.view(k, 1, 1, 1, 1, 1, 1)
        + rows_at.view(k, output_size, 1, sampling_ratio, 1, 2, 1)
        * widths.view(k, 1, 1, 1, 1, 1, 1)
        + cols_at.view(k, 1, output_size, 1, sampling_ratio, 1, 2)
    )
    weights = (
        row_weight.view(k, output_size, 1, sampling_ratio, 1, 2, 1)
        * col_weight.view(k, 1, output_size, 1, sampling_ratio, 1, 2)
        / float(sampling_ratio * sampling_ratio)
    )
    taps = 4 * sampling_ratio * sampling_ratio
    return columns.reshape(-1, taps), weights.reshape(-1, taps)


def _sparse_csr(
    crow: torch.Tensor, columns: torch.Tensor, values: torch.Tensor, shape: tuple[int, int]
) -> torch.Tensor:
    """torch.sparse_csr_tensor without its one-time "CSR support is in beta" warning (the
    construction and the sparse-dense product used here are long-standing operations)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(crow, columns, values, shape, check_invariants=False)


def _csr(row_columns: torch.Tensor, row_weights: torch.Tensor, num_columns: int) -> torch.Tensor:
    """Sparse CSR [R, num_columns] matrix from R rows of T (column, weight) pairs each."""
    rows, taps = row_columns.shape
    crow = torch.arange(0, rows * taps + 1, taps, device=row_columns.device)
    return _sparse_csr(crow, row_columns.reshape(-1), row_weights.reshape(-1), (rows, num_columns))


def _transposed_csr(
    row_columns: torch.Tensor, row_weights: torch.Tensor, num_columns: int
) -> torch.Tensor:
    """The transpose of :func:`_csr`'s matrix, as CSR [num_columns, R]."""
    rows, taps = row_columns.shape
    columns = row_columns.reshape(-1)
    order = torch.argsort(columns, stable=True)
    crow = torch.zeros(num_columns + 1, dtype=torch.int64, device=columns.device)
    crow[1:] = torch.cumsum(torch.bincount(columns, minlength=num_columns), 0)
    row_of_entry = order // taps
    return _sparse_csr(crow, row_of_entry, row_weights.reshape(-1)[order], (num_columns, rows))


class _SampleTable(torch.autograd.Function):
    """out = W @ table for the sampling matrix W given by (columns, weights); the gradient
    flows to ``table`` only (as in torchvision, none reaches the boxes)."""

    @staticmethod
    def forward(ctx, table: torch.Tensor, columns: torch.Tensor, weights: torch.Tensor):
        ctx.save_for_backward(columns, weights)
        ctx.num_columns = table.shape[0]
        return _csr(columns, weights, table.shape[0]) @ table

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        columns, weights = ctx.saved_tensors
        transposed = _transposed_csr(columns, weights, ctx.num_columns)
        return transposed @ grad.contiguous(), None, None


def gathers(tensor: torch.Tensor) -> bool:
    """Whether sampling from ``tensor`` (a pyramid map or its table) runs as the inference
    gather rather than the sparse product: on the CPU, with no gradient to carry back, and not
    while a graph is exported (which records the product, as it did before the gather)."""
    return (
        tensor.device.type == "cpu"
        and not (torch.is_grad_enabled() and tensor.requires_grad)
        and not exporting()
    )


def table_dtype(first: torch.Tensor) -> torch.dtype:
    """dtype of the table of maps like ``first``: float32 and float64 as they are; bfloat16 as
    it is where :func:`gathers` reads it; any other (float16, bf16 for the sparse product)
    widened to float32."""
    if first.dtype in (torch.float32, torch.float64):
        return first.dtype
    return first.dtype if first.dtype == torch.bfloat16 and gathers(first) else torch.float32


def coordinate_dtype(table: torch.Tensor) -> torch.dtype:
    """dtype in which sample positions and weights are computed for ``table``: float64 for a
    float64 table, else float32 (never bf16, whose 8 bits would move samples by pixels)."""
    return torch.float64 if table.dtype == torch.float64 else torch.float32


def sample_table(table: torch.Tensor, columns: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Weighted sums of table rows: out[r] = sum over t of weights[r, t] * table[columns[r, t]].

    Args:
        table: [N, C] (:func:`feature_table`); columns: int64 [R, T] rows of ``table``;
        weights: [R, T] in :func:`coordinate_dtype`.
    Returns:
        [R, C] in the table's dtype: the gather where :func:`gathers`, else the sparse product
        (whose gradient reaches ``table``).
    """
    weights = weights.to(table.dtype)
    with torch.autocast(table.device.type, enabled=False):
        if gathers(table):
            return F.embedding_bag(columns, table, per_sample_weights=weights, mode="sum")
        return _SampleTable.apply(table, columns, weights)


def feature_table(features: list[torch.Tensor]) -> torch.Tensor:
    """Every pixel of every level as a row: [sum over levels of B * H_l * W_l, C], the levels in
    order, each (image, y, x) row-major, the rows :func:`sample_table` reads.

    In the :func:`table_dtype`: half-precision maps the sparse product cannot read are widened
    in the same pass that stacks them.
    """
    first = features[0]
    dtype = table_dtype(first)
    channels = first.shape[1]
    rows = [f.permute(0, 2, 3, 1).reshape(-1, channels) for f in features]
    table = first.new_empty((sum(len(r) for r in rows), channels), dtype=dtype)
    start = 0
    for level in rows:
        table[start : start + len(level)].copy_(level)
        start += len(level)
    return table


def pyramid_roi_align(
    features: Sequence[torch.Tensor],
    boxes: torch.Tensor,
    image_index: torch.Tensor,
    output_size: int,
    strides: Sequence[int],
    sampling_ratio: int = 2,
    aligned: bool = True,
    rounding: str = "round",
    table: torch.Tensor | None = None,
) -> torch.Tensor:
    """ROIAlign every box on its pyramid level (torchvision.ops.roi_align's sampling).

    Args:
        features: [P2, P3, P4, P5], each [B, C, H_l, W_l], any memory format (channels-last
            maps are read in place).
        boxes: [K, 4] (x1, y1, x2, y2) in network-input pixels.
        image_index: int64 [K] image of each box.
        output_size: side of the output patch (POOL_SIZE or MASK_POOL_SIZE).
        strides: stride of each of the given levels (BACKBONE_STRIDES[:4]).
        sampling_ratio: sample points per bin and side (a positive integer).
        aligned: shift boxes by half a pixel (torchvision's ``aligned=True``).
        rounding: see :func:`assign_levels`.
        table: :func:`feature_table` of ``features`` when the caller built it already.
    Returns:
        [K, C, output_size, output_size] in the features' dtype (channels-last strides).
    """
    if int(sampling_ratio) < 1:
        raise ValueError(f"sampling_ratio={sampling_ratio}: use a positive number of samples")
    first = features[0]
    channels, k = first.shape[1], len(boxes)
    if k == 0:
        return first.new_zeros((0, channels, output_size, output_size))
    if table is None:
        table = feature_table(features)
    shapes = [(f.shape[0], f.shape[2], f.shape[3]) for f in features]
    levels = assign_levels(boxes, rounding) - MIN_LEVEL
    columns, weights = _sampling_matrix(
        boxes.detach().to(coordinate_dtype(table)),
        image_index.to(boxes.device),
        levels,
        shapes,
        strides,
        output_size,
        int(sampling_ratio),
        aligned,
    )
    rows = sample_table(table, columns, weights)
    out = rows.view(k, output_size, output_size, channels).permute(0, 3, 1, 2)
    return out.to(first.dtype)

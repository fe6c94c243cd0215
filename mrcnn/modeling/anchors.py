"""Anchors: the reference boxes the RPN scores and refines, one set per pyramid level.

Anchors of a level are centred on the grid ``(j * s, i * s)`` of its feature map, where ``s`` is
the level's stride (times RPN_ANCHOR_STRIDE), in the order location-major, ratio-minor; this is
also the order of the RPN head's outputs. The level stride is ``image_size // feature_size``,
which equals BACKBONE_STRIDES whenever the padded image size is a multiple of 64.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import torch


def backbone_shapes(image_shape: Sequence[int], strides: Sequence[int]) -> list[tuple[int, int]]:
    """Feature map (height, width) of each pyramid level for a padded input of ``image_shape``.

    Every stride-2 layer of the ResNet/FPN maps n to ceil(n / 2), so the level of stride s has
    ceil(n / s) cells along each side.
    """
    height, width = int(image_shape[0]), int(image_shape[1])
    return [(math.ceil(height / s), math.ceil(width / s)) for s in strides]


def cell_anchors(scale: float, ratios: Sequence[float], round_to_pixels: bool) -> torch.Tensor:
    """The anchors of one grid cell centred on (0, 0).

    Args:
        scale: anchor side length in pixels (the side of the square anchor).
        ratios: aspect ratios as width / height.
        round_to_pixels: round half-sizes to whole pixels (torchvision's convention).
    Returns:
        float32 [len(ratios), 4] boxes (x1, y1, x2, y2).
    """
    ratios_t = torch.as_tensor(ratios, dtype=torch.float32)
    widths = scale * torch.sqrt(ratios_t)
    heights = scale / torch.sqrt(ratios_t)
    half = torch.stack([-widths, -heights, widths, heights], dim=1) / 2
    return half.round() if round_to_pixels else half


def level_anchors(
    feature_shape: tuple[int, int],
    stride: tuple[int, int],
    scale: float,
    ratios: Sequence[float],
    anchor_stride: int = 1,
    round_to_pixels: bool = False,
) -> torch.Tensor:
    """All anchors of one pyramid level.

    Args:
        feature_shape: (height, width) of the level's feature map.
        stride: (stride_y, stride_x) in input pixels between neighbouring cells.
        scale: anchor side length in pixels.
        ratios: aspect ratios as width / height.
        anchor_stride: place anchors on every ``anchor_stride``-th cell.
        round_to_pixels: see :func:`cell_anchors`.
    Returns:
        float32 [ceil(H / anchor_stride) * ceil(W / anchor_stride) * len(ratios), 4]
        (x1, y1, x2, y2), location-major (row by row), ratio-minor.
    """
    height, width = feature_shape
    ys = torch.arange(0, height, anchor_stride, dtype=torch.float32) * stride[0]
    xs = torch.arange(0, width, anchor_stride, dtype=torch.float32) * stride[1]
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    shifts = torch.stack([grid_x, grid_y, grid_x, grid_y], dim=-1).reshape(-1, 1, 4)
    return (shifts + cell_anchors(scale, ratios, round_to_pixels).view(1, -1, 4)).reshape(-1, 4)


@lru_cache(maxsize=32)
def _pyramid_anchors_cached(
    image_shape: tuple[int, int],
    scales: tuple[float, ...],
    ratios: tuple[float, ...],
    strides: tuple[int, ...],
    anchor_stride: int,
    round_to_pixels: bool,
) -> tuple[torch.Tensor, tuple[int, ...]]:
    levels = []
    for (fh, fw), scale in zip(backbone_shapes(image_shape, strides), scales, strict=True):
        stride = (image_shape[0] // fh, image_shape[1] // fw)
        levels.append(
            level_anchors((fh, fw), stride, scale, ratios, anchor_stride, round_to_pixels)
        )
    counts = tuple(len(a) for a in levels)
    return torch.cat(levels), counts


def pyramid_anchors(
    image_shape: Sequence[int],
    scales: Sequence[float],
    ratios: Sequence[float],
    strides: Sequence[int],
    anchor_stride: int = 1,
    round_to_pixels: bool = False,
) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Anchors of every pyramid level for a padded input image, cached per shape.

    Args:
        image_shape: (height, width) of the padded network input.
        scales: one anchor side length per level (RPN_ANCHOR_SCALES).
        ratios: aspect ratios as width / height (RPN_ANCHOR_RATIOS).
        strides: nominal level strides (BACKBONE_STRIDES).
        anchor_stride: RPN_ANCHOR_STRIDE.
        round_to_pixels: RPN_ANCHOR_ROUND.
    Returns:
        (anchors, counts): float32 [A, 4] (x1, y1, x2, y2) of all levels concatenated from P2 to
        P6, and the number of anchors of each level. Treat the tensor as read-only (it is shared
        through the cache).
    """
    return _pyramid_anchors_cached(
        (int(image_shape[0]), int(image_shape[1])),
        tuple(float(s) for s in scales),
        tuple(float(r) for r in ratios),
        tuple(int(s) for s in strides),
        int(anchor_stride),
        bool(round_to_pixels),
    )


def anchors_for_config(config, image_shape: Sequence[int]) -> tuple[torch.Tensor, tuple[int, ...]]:
    """:func:`pyramid_anchors` with the anchor settings of a :class:`~mrcnn.config.Config`."""
    return pyramid_anchors(
        image_shape,
        config.RPN_ANCHOR_SCALES,
        config.RPN_ANCHOR_RATIOS,
        config.BACKBONE_STRIDES,
        config.RPN_ANCHOR_STRIDE,
        config.RPN_ANCHOR_ROUND,
    )

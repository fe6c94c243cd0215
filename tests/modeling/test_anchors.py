"""Anchors: counts, positions, ratio meaning, rounding, stride, caching and feature shapes."""

from __future__ import annotations

import math

import pytest
import torch

from mrcnn.config import Config
from mrcnn.modeling.anchors import (
    anchors_for_config,
    backbone_shapes,
    cell_anchors,
    level_anchors,
    pyramid_anchors,
)
from mrcnn.modeling.network import MaskRCNNNet

SCALES = (8, 16, 32, 64, 128)
STRIDES = (4, 8, 16, 32, 64)
RATIOS = (0.5, 1, 2)


class TinyConfig(Config):
    NAME = "tiny"
    BACKBONE = "resnet50"
    NUM_CLASSES = 2
    FPN_CLASSIF_FC_LAYERS_SIZE = 16
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 128
    RPN_ANCHOR_SCALES = SCALES
    DEVICE = "cpu"


def test_counts_per_level_for_64x64():
    anchors, counts = pyramid_anchors((64, 64), SCALES, RATIOS, STRIDES)
    expected = [math.ceil(64 / s) ** 2 * 3 for s in STRIDES]
    assert list(counts) == expected == [768, 192, 48, 12, 3]
    assert anchors.shape == (sum(expected), 4)
    assert anchors.dtype == torch.float32


def test_first_anchors_of_a_level_exact_coordinates():
    anchors, counts = pyramid_anchors((64, 64), SCALES, RATIOS, STRIDES)
    r = math.sqrt(2)
    # P2: scale 8, stride 4; first location (0, 0), ratio-minor, ratio = width / height
    expected_cell = torch.tensor(
        [
            [-4 / r, -4 * r, 4 / r, 4 * r],  # 0.5: taller than wide
            [-4.0, -4.0, 4.0, 4.0],
            [-4 * r, -4 / r, 4 * r, 4 / r],  # 2: wider than tall
        ]
    )
    torch.testing.assert_close(anchors[:3], expected_cell)
    # second location is one stride to the right (row-major), then the next row
    torch.testing.assert_close(anchors[3:6], expected_cell + torch.tensor([4.0, 0, 4.0, 0]))
    torch.testing.assert_close(
        anchors[16 * 3 : 16 * 3 + 3], expected_cell + torch.tensor([0, 4.0, 0, 4.0])
    )
    # last anchor of P2: centre (60, 60)
    torch.testing.assert_close(anchors[counts[0] - 1], expected_cell[2] + 60)
    # first anchors of P3: scale 16, stride 8
    p3 = anchors[counts[0] : counts[0] + 6]
    torch.testing.assert_close(p3[:3], expected_cell * 2)
    torch.testing.assert_close(p3[3:], expected_cell * 2 + torch.tensor([8.0, 0, 8.0, 0]))
    # P6: a single location at (0, 0) with scale 128
    torch.testing.assert_close(anchors[-3:], expected_cell * 16)


def test_ratio_is_width_over_height_and_area_is_scale_squared():
    cells = cell_anchors(32, [0.25, 1, 4], round_to_pixels=False)
    widths = cells[:, 2] - cells[:, 0]
    heights = cells[:, 3] - cells[:, 1]
    torch.testing.assert_close(widths / heights, torch.tensor([0.25, 1.0, 4.0]))
    torch.testing.assert_close(widths * heights, torch.full((3,), 32.0**2))
    torch.testing.assert_close(cells[:, :2], -cells[:, 2:])  # centred on (0, 0)


def test_round_to_pixels():
    exact, _ = pyramid_anchors((64, 64), SCALES, RATIOS, STRIDES, round_to_pixels=False)
    rounded, _ = pyramid_anchors((64, 64), SCALES, RATIOS, STRIDES, round_to_pixels=True)
    assert exact[0].tolist() != rounded[0].tolist()
    # half sizes 2.83 and 5.66 round to 3 and 6
    assert rounded[0].tolist() == [-3.0, -6.0, 3.0, 6.0]
    assert rounded[2].tolist() == [-6.0, -3.0, 6.0, 3.0]
    torch.testing.assert_close(rounded, torch.round(exact))
    # torchvision: scale 32, ratio w/h 2 -> half sizes round(22.63)=23, round(11.31)=11
    assert cell_anchors(32, [2.0], True).tolist() == [[-23.0, -11.0, 23.0, 11.0]]


def test_anchor_stride_2():
    anchors, counts = pyramid_anchors((64, 64), SCALES, RATIOS, STRIDES, anchor_stride=2)
    assert list(counts) == [math.ceil(math.ceil(64 / s) / 2) ** 2 * 3 for s in STRIDES]
    assert list(counts) == [192, 48, 12, 3, 3]
    # P2 neighbours are 2 cells = 8 pixels apart
    torch.testing.assert_close(anchors[3] - anchors[0], torch.tensor([8.0, 0.0, 8.0, 0.0]))
    torch.testing.assert_close(anchors[8 * 3] - anchors[0], torch.tensor([0.0, 8.0, 0.0, 8.0]))
    single = level_anchors((5, 3), (4, 4), 8, [1], anchor_stride=2)
    centres = ((single[:, :2] + single[:, 2:]) / 2).tolist()
    assert centres == [[0, 0], [8, 0], [0, 8], [8, 8], [0, 16], [8, 16]]


def test_cached_per_shape():
    a, counts_a = pyramid_anchors((64, 64), SCALES, RATIOS, STRIDES)
    b, counts_b = pyramid_anchors([64, 64], list(SCALES), list(RATIOS), list(STRIDES))
    assert a is b and counts_a == counts_b
    c, _ = pyramid_anchors((64, 128), SCALES, RATIOS, STRIDES)
    assert c is not a and len(c) == 2 * len(a)
    d, _ = anchors_for_config(TinyConfig(), (64, 64))
    assert d is a


def test_level_stride_is_image_size_over_feature_size():
    # 100 x 150: P6 has ceil(100/64) x ceil(150/64) = 2 x 3 cells, at 100 // 2 = 50 pixel steps
    anchors, counts = pyramid_anchors((100, 150), SCALES, [1], STRIDES)
    p6 = anchors[-counts[-1] :]
    centres = ((p6[:, :2] + p6[:, 2:]) / 2).tolist()
    assert centres == [[0, 0], [50, 0], [100, 0], [0, 50], [50, 50], [100, 50]]


def test_backbone_shapes_formula():
    assert backbone_shapes((100, 150), STRIDES) == [(25, 38), (13, 19), (7, 10), (4, 5), (2, 3)]
    assert backbone_shapes((64, 64), STRIDES) == [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]


@pytest.fixture(scope="module")
def tiny_net():
    torch.manual_seed(0)
    return MaskRCNNNet(TinyConfig()).eval()


def test_backbone_shapes_match_the_network(tiny_net):
    shape = (100, 150)
    with torch.no_grad():
        features = tiny_net.features(torch.zeros(1, 3, *shape))
        objectness, deltas = tiny_net.rpn_outputs(features)
    assert [tuple(f.shape[-2:]) for f in features] == backbone_shapes(shape, STRIDES)
    anchors, counts = tiny_net.anchors(shape, objectness)
    assert objectness.shape == (1, len(anchors))
    assert deltas.shape == (1, len(anchors), 4)
    assert sum(counts) == len(anchors)


def test_rpn_output_count_matches_anchors_with_anchor_stride_2():
    cfg = TinyConfig.from_overrides({"RPN_ANCHOR_STRIDE": 2})
    net = MaskRCNNNet(cfg).eval()
    features = [torch.zeros(1, 256, h, w) for h, w in backbone_shapes((100, 150), STRIDES)]
    with torch.no_grad():
        objectness, _ = net.rpn_outputs(features)
    anchors, _ = net.anchors((100, 150), objectness)
    assert objectness.shape[1] == len(anchors)


def test_level_anchors_step_rows_by_stride_y_and_columns_by_stride_x():
    # a level whose cells are 4 pixels apart vertically and 8 horizontally (a 128 x 96 input
    # at P6 gives 64 x 48): centres move by stride_x along a row, by stride_y down a column
    anchors = level_anchors((2, 3), (4, 8), scale=2.0, ratios=(1.0,))
    centres = ((anchors[:, :2] + anchors[:, 2:]) / 2).tolist()
    assert centres == [[0, 0], [8, 0], [16, 0], [0, 4], [8, 4], [16, 4]]
    p6, counts = pyramid_anchors((128, 96), SCALES, [1], STRIDES)
    p6_centres = ((p6[-counts[-1] :, :2] + p6[-counts[-1] :, 2:]) / 2).tolist()
    assert p6_centres == [[0, 0], [48, 0], [0, 64], [48, 64]]

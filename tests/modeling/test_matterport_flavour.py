"""The matterport flavour's stages against hand-worked values of Matterport's conventions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mrcnn.config import Config
from mrcnn.modeling import matterport
from mrcnn.modeling.crop_and_resize import pyramid_crop_and_resize
from mrcnn.modeling.network import MaskRCNNNet
from mrcnn.structures.boxes import denormalise_boxes, normalise_boxes
from mrcnn.structures.matterport_image import constant_resize, mold_image, unmold_boxes, unmold_mask
from mrcnn.structures.resize_plan import plan_resize

D = torch.float64


def test_normalise_boxes_is_matterports_norm_boxes():
    # norm_boxes: (y1, x1, y2 - 1, x2 - 1) / (h - 1, w - 1); here in (x1, y1, x2, y2) order
    boxes = torch.tensor([[10.0, 20.0, 60.0, 100.0]], dtype=D)
    out = normalise_boxes(boxes, (101, 201))
    assert torch.allclose(out, torch.tensor([[10 / 200, 20 / 100, 59 / 200, 99 / 100]], dtype=D))
    assert torch.allclose(denormalise_boxes(out, (101, 201)), boxes)


def test_apply_deltas_in_matterports_order():
    boxes = torch.tensor([[0.0, 0.0, 10.0, 20.0]], dtype=D)  # w 10, h 20, centre (5, 10)
    deltas = torch.tensor([[0.1, -0.2, math.log(2.0), math.log(0.5)]], dtype=D)
    # centre (5 + 1, 10 - 4), size (20, 10)
    expected = torch.tensor([[6 - 10, 6 - 5, 6 + 10, 6 + 5]], dtype=D)
    assert torch.allclose(matterport.apply_deltas(boxes, deltas), expected)


def test_tf_same_max_pool_pads_bottom_right_only():
    x = torch.arange(16, dtype=D).view(1, 1, 4, 4)
    out = torch.nn.functional.max_pool2d(matterport.tf_same_pad(x, 3, 2), 3, 2)
    # TF "same": windows start at 0 and 2 (torchvision's symmetric padding starts at -1, 1)
    assert out[0, 0].tolist() == [[10.0, 11.0], [14.0, 15.0]]


@pytest.mark.parametrize("shape", [(8, 12), (9, 13), (8, 13), (9, 12), (2, 2), (1, 1)])
def test_tf_same_max_pool_equals_pooling_the_padded_copy(shape):
    x = -1.0 - torch.rand(2, 3, *shape, generator=torch.Generator().manual_seed(5))  # all < 0
    expected = torch.nn.functional.max_pool2d(matterport.tf_same_pad(x, 3, 2), 3, 2)
    assert torch.equal(matterport.tf_same_max_pool(x, 3, 2), expected)
    assert expected.shape[-2:] == tuple((side + 1) // 2 for side in shape)


def test_tf_same_max_pool_pads_bottom_right_on_even_sides():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert matterport.tf_same_max_pool(x, 3, 2)[0, 0].tolist() == [[10.0, 11.0], [14.0, 15.0]]


def test_backbone_has_stride_in_first_1x1_and_keras_eps():
    backbone = matterport.MatterportResNetBackbone("resnet50")
    for layer in (backbone.body.layer2, backbone.body.layer3, backbone.body.layer4):
        assert layer[0].conv1.stride == (2, 2) and layer[0].conv2.stride == (1, 1)
        assert layer[0].downsample[0].stride == (2, 2)
    assert backbone.body.bn1.eps == pytest.approx(1e-3)
    assert backbone.body.layer3[4].bn2.eps == pytest.approx(1e-3)


def _ramp(height: int, width: int) -> torch.Tensor:
    rows = torch.arange(height, dtype=D)[:, None] * 100
    return (rows + torch.arange(width, dtype=D)[None, :]).view(1, 1, height, width)


def test_crop_and_resize_samples_corner_aligned_points():
    # On a linear ramp bilinear sampling is exact, so each output is its sample position.
    level = _ramp(9, 9)  # P2; the other levels are unused
    others = [torch.zeros(1, 1, 5, 5, dtype=D)] * 3
    box = torch.tensor([[0.25, 0.5, 0.75, 1.0]], dtype=D)  # x1, y1, x2, y2 normalised
    out = pyramid_crop_and_resize([level, *others], box, torch.tensor([0]), torch.tensor([2]), 3)
    rows = torch.tensor([4.0, 6.0, 8.0], dtype=D)  # y1 * 8 + i * (y2 - y1) * 8 / 2
    cols = torch.tensor([2.0, 4.0, 6.0], dtype=D)
    assert torch.allclose(out[0, 0], rows[:, None] * 100 + cols[None, :])


def test_crop_and_resize_extrapolates_zero_outside_the_map():
    level = _ramp(5, 5) + 1
    others = [torch.zeros(1, 1, 3, 3, dtype=D)] * 3
    box = torch.tensor([[-0.5, 0.0, 0.5, 1.0]], dtype=D)  # columns -2, 0, 2
    out = pyramid_crop_and_resize([level, *others], box, torch.tensor([0]), torch.tensor([2]), 3)
    assert out[0, 0, :, 0].tolist() == [0.0, 0.0, 0.0]
    assert out[0, 0, :, 1].tolist() == [1.0, 201.0, 401.0]


def test_crop_and_resize_fractional_sample():
    level = torch.tensor([[0.0, 10.0], [20.0, 40.0]], dtype=D).view(1, 1, 2, 2)
    others = [torch.zeros(1, 1, 1, 1, dtype=D)] * 3
    box = torch.tensor([[0.25, 0.5, 0.25, 0.5]], dtype=D)  # one point at (x 0.25, y 0.5)
    out = pyramid_crop_and_resize([level, *others], box, torch.tensor([0]), torch.tensor([2]), 1)
    top, bottom = 0 + 0.25 * 10, 20 + 0.25 * 20
    assert out.item() == pytest.approx(top + 0.5 * (bottom - top))


def test_crop_and_resize_of_bf16_maps_samples_at_float32_positions():
    # Normalised coordinates near 1 step by 1/128 in bf16, a pixel or two on P2: positions
    # are computed in float32 and only the bilinear weights rounded to bf16.
    generator = torch.Generator().manual_seed(3)
    maps = [torch.randn(1, 8, 256 // 2**i, 256 // 2**i, generator=generator) for i in range(4)]
    maps = [m.bfloat16().float() for m in maps]  # values bf16 holds exactly
    boxes = torch.tensor([[0.8813, 0.8771, 0.9327, 0.9286], [0.6011, 0.7524, 0.9961, 0.9977]])
    image_index, levels = torch.zeros(2, dtype=torch.int64), torch.tensor([2, 4])
    with torch.no_grad():
        reference = pyramid_crop_and_resize(maps, boxes, image_index, levels, 7)
        half = [m.bfloat16() for m in maps]
        out = pyramid_crop_and_resize(half, boxes, image_index, levels, 7)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), reference, rtol=0.02, atol=0.03)


def test_roi_levels_follow_matterports_rule():
    shape = (1024, 1024)
    sides = torch.tensor([224.0, 112.0, 448.0, 20.0, 0.0, 2000.0, 400.0, 160.0], dtype=D)
    # normalised boxes whose side is side / 1024 of the image: sqrt(h * w * H * W) = side
    boxes = torch.stack([torch.zeros_like(sides), torch.zeros_like(sides), sides, sides], 1)
    levels = matterport.roi_levels(boxes / 1024, shape)
    assert levels.tolist() == [4, 3, 5, 2, 2, 5, 5, 4]  # 400 and 160 round, not floor


def test_proposals_rank_over_all_levels_clip_and_suppress():
    anchors = torch.tensor(
        [[0.1, 0.1, 0.3, 0.3], [0.1, 0.1, 0.3, 0.31], [0.8, 0.8, 1.2, 1.2], [0.5, 0.5, 0.6, 0.6]],
        dtype=D,
    )
    logits = torch.tensor([[3.0, 2.0, 1.0, -5.0]], dtype=D)
    deltas = torch.zeros(1, 4, 4, dtype=D)
    steps = matterport.proposal_steps(logits, deltas, anchors, 3, 10, 0.7, torch.ones(4, dtype=D))
    boxes, scores, index = steps.proposals()
    # top 3 by score; the second overlaps the first (IoU 0.95) and goes; the third is clipped
    expected = torch.tensor([[0.1, 0.1, 0.3, 0.3], [0.8, 0.8, 1.0, 1.0]], dtype=D)
    assert torch.allclose(boxes, expected)
    assert torch.allclose(scores, torch.sigmoid(torch.tensor([3.0, 1.0], dtype=D)))
    assert index.tolist() == [0, 0]


def test_proposals_break_score_ties_by_anchor_index_as_tensorflow_does():
    # 3000 pairs of near-identical anchors on a grid (pairs never overlap each other), every
    # score saturated to the same probability: TensorFlow's NMS keeps the lower index of each
    # pair, in index order, and stops at POST_NMS_ROIS.
    y, x = torch.meshgrid(torch.arange(60, dtype=D), torch.arange(50, dtype=D), indexing="ij")
    corner = torch.stack([x.flatten(), y.flatten()], dim=1) * 0.015
    box = torch.cat([corner, corner + 0.01], dim=1)
    taller = box + torch.tensor([0.0, 0.0, 0.0, 0.0001], dtype=D)
    anchors = torch.stack([box, taller], dim=1).reshape(-1, 4)
    logits = torch.full((1, len(anchors)), 40.0, dtype=D)  # sigmoid(40) == 1.0 in floating point
    deltas = torch.zeros(1, len(anchors), 4, dtype=D)
    steps = matterport.proposal_steps(
        logits, deltas, anchors, len(anchors), 1000, 0.7, torch.ones(4, dtype=D)
    )
    boxes, _, _ = steps.proposals()
    source = torch.cdist(boxes, anchors).argmin(dim=1)  # zero deltas: each box is its anchor
    assert source.tolist() == list(range(0, 2000, 2))


def _detect(max_instances: int) -> dict:
    rois = torch.tensor(
        [[0.1, 0.1, 0.4, 0.4], [0.1, 0.1, 0.4, 0.41], [0.5, 0.5, 0.9, 0.9], [0.0, 0.0, 0.2, 0.2],
         [0.6, 0.0, 0.9, 0.3], [0.1, 0.1, 0.4, 0.42]],
        dtype=D,
    )  # fmt: skip
    probs = torch.tensor(
        [[0.05, 0.9, 0.05], [0.1, 0.1, 0.8], [0.02, 0.95, 0.03], [0.8, 0.15, 0.05],
         [0.35, 0.6, 0.05], [0.1, 0.85, 0.05]],
        dtype=D,
    )  # fmt: skip
    return matterport.detections(
        probs.log(),
        torch.zeros(6, 3, 4, dtype=D),
        rois,
        torch.zeros(6, dtype=torch.int64),
        torch.tensor([[0.0, 0.0, 1.0, 0.8]], dtype=D),
        torch.ones(4, dtype=D),
        0.7,
        0.3,
        max_instances,
    )


def test_detections_top_class_confidence_per_class_nms_and_cap():
    found = _detect(10)
    # ROI 5 (class 1, 0.85) is suppressed by ROI 0 (0.9); ROI 1 is class 2, so not; ROI 3's
    # top class is background; ROI 4 (0.6) is below DETECTION_MIN_CONFIDENCE.
    assert found["class_ids"].tolist() == [1, 1, 2]
    assert torch.allclose(found["scores"], torch.tensor([0.95, 0.9, 0.8], dtype=D))
    assert torch.allclose(found["boxes"][0], torch.tensor([0.5, 0.5, 0.9, 0.8], dtype=D))  # clipped
    assert _detect(2)["scores"].tolist() == pytest.approx([0.95, 0.9])


def test_constant_resize_blends_borders_with_zero_then_clips():
    # skimage resize(order=1, mode="constant"): samples at -0.25, 0.25, 0.75, 1.25 of [100, 200]
    # give 75, 125, 175, 150; clip=True lifts 75 to the input's minimum, 100
    image = torch.tensor([[[100.0, 200.0]]], dtype=D)
    out = constant_resize(image, (1, 4))
    assert out[0, 0].tolist() == pytest.approx([100.0, 125.0, 175.0, 150.0])


class MatterportConfig(Config):
    NETWORK_FLAVOUR = "matterport"
    BACKBONE = "resnet50"
    NUM_CLASSES = 2
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 128


def test_molding_pads_with_black_before_mean_subtraction():
    config = MatterportConfig()
    image = np.full((128, 64, 3), 200, np.uint8)
    plan = plan_resize(128, 64, "square", 64, 128)
    molded = mold_image(image, config, plan, torch.float32, "cpu")
    mean = torch.tensor([123.7, 116.8, 103.9]).view(3, 1)
    assert torch.allclose(molded[:, :, 0], -mean.expand(3, 128))  # padding: black - mean
    assert torch.allclose(molded[:, :, 64], 200 - mean.expand(3, 128))


def test_unmold_boxes_maps_through_normalised_window():
    plan = plan_resize(100, 50, "square", 64, 128)  # resized to 128 x 64, window x 32..96
    meta = plan.meta()
    boxes = torch.tensor([[32.0, 0.0, 96.0, 128.0], [40.0, 10.0, 60.0, 30.0]], dtype=D)
    out = unmold_boxes(boxes, meta, (128, 128))
    assert out[0].tolist() == [0.0, 0.0, 50.0, 100.0]
    # by hand: norm (x - 32) / 127 etc., on the window, times (50 - 1, 100 - 1) plus (0, 0, 1, 1)
    wx = (96 - 1 - 32) / 127
    x1 = round((40 - 32) / 127 / wx * 49)
    y2 = round(((30 - 1) / 127) / (127 / 127) * 99 + 1)
    assert out[1, 0].item() == x1 and out[1, 3].item() == y2


def test_unmold_mask_resizes_into_the_box_and_thresholds():
    mask = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    full = unmold_mask(mask, (1, 1, 5, 3), (4, 6))
    # 4 columns from 2: samples -0.25, 0.25, 0.75, 1.25 -> 0, 0.25, 0.75, 0.75 (>= 0.5)
    assert full[1:3, 1:5].tolist() == [[False, False, True, True]] * 2
    assert full.sum().item() == 4


def test_network_flavour_is_validated():
    with pytest.raises(ValueError, match="NETWORK_FLAVOUR"):
        Config.from_overrides({"NETWORK_FLAVOUR": "keras"})
    with pytest.raises(ValueError, match="resnet50' or 'resnet101"):
        Config.from_overrides({"NETWORK_FLAVOUR": "matterport", "BACKBONE": "resnet18"})


def test_matterport_network_runs_end_to_end():
    torch.manual_seed(0)
    config = MatterportConfig.from_overrides(
        {"POST_NMS_ROIS_INFERENCE": 20, "PRE_NMS_LIMIT": 100, "DETECTION_MIN_CONFIDENCE": 0}
    )
    net = MaskRCNNNet(config).eval()
    assert net.rpn.conv.out_channels == 512
    with torch.no_grad():
        net.box_head.class_logits.bias[1] = 10.0  # random weights: make class 1 win
    with torch.inference_mode():
        found = net(torch.randn(1, 3, 128, 128), torch.tensor([[0.0, 32.0, 128.0, 96.0]]))
    boxes = found["boxes"]
    assert len(boxes) > 0 and found["masks"].shape[1:] == (28, 28)
    assert (boxes[:, 1] >= 32).all() and (boxes[:, 3] <= 96 + 1e-4).all()

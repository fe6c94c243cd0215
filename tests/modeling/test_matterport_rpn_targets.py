"""Matterport's notebook helpers for anchors and RPN targets (mrcnn.model.compute_backbone_shapes,
build_rpn_targets, MaskRCNN.anchors) against Matterport's own code: the values in
matterport_utils/rpn_targets.npz were made by matterport_utils/make_rpn_targets.py."""

from __future__ import annotations

import numpy as np
import torch

import mrcnn.model as modellib
from mrcnn.config import Config
from tests.helpers.paths import FIXTURES
from tests.helpers.tiny_model import tiny_model

EXPECTED = np.load(FIXTURES / "matterport_rpn_targets.npz")
IMAGE_SHAPE = (128, 192, 3)  # multiples of 64, as Matterport's network needs


def _config(anchors_per_image: int) -> Config:
    return Config.from_overrides(
        {
            "RPN_TRAIN_ANCHORS_PER_IMAGE": anchors_per_image,
            "RPN_BBOX_STD_DEV": [0.1, 0.1, 0.2, 0.2],
            "BACKBONE_STRIDES": [4, 8, 16, 32, 64],
        }
    )


def _targets(anchors_per_image: int):
    e = EXPECTED
    return modellib.build_rpn_targets(
        IMAGE_SHAPE, e["anchors"], e["gt_class_ids"], e["gt_boxes"], _config(anchors_per_image)
    )


def test_backbone_shapes_match_matterport():
    shapes = modellib.compute_backbone_shapes(_config(256), IMAGE_SHAPE)
    np.testing.assert_array_equal(shapes, EXPECTED["backbone_shapes"])


def test_rpn_targets_match_matterport_when_nothing_is_sampled_away():
    match, bbox = _targets(int(EXPECTED["unsampled_anchors_per_image"]))
    assert match.dtype == np.int32 and bbox.shape == EXPECTED["rpn_bbox"].shape
    # Positives include a small box's best anchor below 0.3 IoU; anchors on the crowd box are
    # neutral, not negative.
    np.testing.assert_array_equal(match, EXPECTED["rpn_match"])
    np.testing.assert_allclose(bbox, EXPECTED["rpn_bbox"], atol=1e-6)


def test_sampled_rpn_targets_keep_matterports_counts_and_labels():
    np.random.seed(0)
    match, bbox = _targets(64)
    positives, negatives = (match == 1).sum(), (match == -1).sum()
    np.testing.assert_array_equal([positives, negatives], EXPECTED["sampled_64_counts"])
    chosen = match != 0  # every anchor kept has the label Matterport gives it
    np.testing.assert_array_equal(match[chosen], EXPECTED["rpn_match"][chosen])
    assert np.all(bbox[positives:] == 0)
    np.random.seed(0)
    again, _ = _targets(64)
    np.testing.assert_array_equal(again, match)  # np.random's seed fixes the draws


def test_get_anchors_keeps_pixel_anchors_for_build_rpn_targets():
    model = tiny_model(
        BACKBONE_STRIDES=[4, 8, 16, 32, 64],
        RPN_ANCHOR_SCALES=[8, 16, 32, 64, 128],
        IMAGE_RESIZE_MODE="none",
    )
    normalised = model.get_anchors(IMAGE_SHAPE)
    np.testing.assert_allclose(model.anchors, EXPECTED["anchors"], atol=1e-4)
    assert normalised.shape == model.anchors.shape


def test_log_prints_shape_range_and_dtype(capsys):
    modellib.log("gt_bbox", np.array([[1, 2, 30, 40]], dtype=np.int32))
    modellib.log("empty", np.zeros((0, 4)))
    modellib.log("just text")
    modellib.log("bf16 map", torch.full((2, 3), 1.5, dtype=torch.bfloat16))
    modellib.log("list", [3, 1])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "gt_bbox                  shape: (1, 4)                "
        "min:    1.00000  max:   40.00000  int32"
    )
    assert lines[1].startswith("empty                    shape: (0, 4)")
    assert lines[1].endswith("float64") and "min: " in lines[1]
    assert lines[2] == "just text"
    assert lines[3].endswith("min:    1.50000  max:    1.50000  bfloat16")
    assert lines[4].endswith("min:    1.00000  max:    3.00000  int64")


def test_rpn_targets_of_an_image_without_instances_are_all_negative():
    config = _config(64)
    anchors = EXPECTED["anchors"]
    empty = (np.zeros(0, np.int32), np.zeros((0, 4), np.int32))
    for class_ids, boxes in (empty, (np.array([-1]), np.array([[10, 10, 60, 60]]))):
        match, bbox = modellib.build_rpn_targets(IMAGE_SHAPE, anchors, class_ids, boxes, config)
        assert (match == -1).sum() == 64 and (match == 1).sum() == 0 and not bbox.any()

"""Each loss on known values."""

from __future__ import annotations

import math

import pytest
import torch

from mrcnn.config import Config
from mrcnn.modeling.losses import (
    LOSS_NAMES,
    mrcnn_bbox_loss,
    mrcnn_class_loss,
    mrcnn_mask_loss,
    rpn_bbox_loss,
    rpn_class_loss,
    training_losses,
    weighted_total,
)
from mrcnn.modeling.network import MaskRCNNNet
from mrcnn.modeling.targets import GroundTruth, detection_targets, rpn_targets


def test_rpn_class_loss_ignores_unsampled_anchors():
    logits = torch.tensor([[0.0, 0.0, 100.0]])
    labels = torch.tensor([[1, 0, -1]])
    assert math.isclose(rpn_class_loss(logits, labels).item(), math.log(2), rel_tol=1e-6)


def test_rpn_class_loss_averages_positives_and_negatives():
    # positive at logit 0: log 2; negative at logit 2: log(1 + e^2); the unsampled one ignored
    logits = torch.tensor([[0.0, 2.0, -7.0]])
    labels = torch.tensor([[1, 0, -1]])
    expected = (math.log(2) + math.log(1 + math.e**2)) / 2
    assert math.isclose(rpn_class_loss(logits, labels).item(), expected, rel_tol=1e-6)


def test_rpn_bbox_loss_on_positives_only():
    deltas = torch.tensor([[[0.5, 0.0, 0.0, 0.0], [9.0, 9.0, 9.0, 9.0]]])
    targets = torch.zeros((1, 2, 4))
    labels = torch.tensor([[1, 0]])
    # smooth L1 of 0.5 is 0.5 * 0.5**2 = 0.125, mean over 4 coordinates.
    assert math.isclose(rpn_bbox_loss(deltas, targets, labels).item(), 0.125 / 4)
    assert rpn_bbox_loss(deltas, targets, torch.tensor([[0, 0]])).item() == 0.0


def test_mrcnn_class_loss_is_cross_entropy():
    logits = torch.tensor([[0.0, 0.0], [0.0, math.log(3.0)]])
    value = mrcnn_class_loss(logits, torch.tensor([0, 1])).item()
    assert math.isclose(value, (math.log(2) + math.log(4 / 3)) / 2, rel_tol=1e-6)


def test_mrcnn_bbox_loss_uses_the_target_class_deltas():
    deltas = torch.zeros((2, 3, 4))
    deltas[0, 2] = torch.tensor([2.0, 0.0, 0.0, 0.0])  # class 2: off by 2 in dx
    deltas[0, 1] = 100.0  # another class: must not count
    targets = torch.zeros((2, 4))
    value = mrcnn_bbox_loss(deltas, targets, torch.tensor([2, 0])).item()
    # smooth L1 of 2 is 2 - 0.5 = 1.5, mean over the 4 coordinates of one positive ROI.
    assert math.isclose(value, 1.5 / 4)
    # Class 1 is a class too: ROI 1 of class 1, off by 1 in dy (smooth L1 0.5), joins the mean.
    deltas[1, 1] = torch.tensor([0.0, 1.0, 0.0, 0.0])
    value = mrcnn_bbox_loss(deltas, targets, torch.tensor([2, 1])).item()
    assert math.isclose(value, (1.5 + 0.5) / 8)


def test_mrcnn_mask_loss_uses_the_class_channel():
    logits = torch.zeros((1, 3, 2, 2))
    logits[0, 1] = 100.0  # wrong channel, would be a huge loss against zeros
    targets = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    value = mrcnn_mask_loss(logits, targets, torch.tensor([2])).item()
    assert math.isclose(value, math.log(2), rel_tol=1e-6)
    assert mrcnn_mask_loss(logits[:0], targets[:0], torch.tensor([], dtype=torch.int64)) == 0


def test_weighted_total():
    losses = {"rpn_class_loss": torch.tensor(1.0), "mrcnn_mask_loss": torch.tensor(2.0)}
    total = weighted_total(losses, {"rpn_class_loss": 0.5, "mrcnn_mask_loss": 2.0})
    assert total.item() == 4.5
    # a loss without a weight counts once
    assert weighted_total(losses, {"rpn_class_loss": 0.5}).item() == 2.5


def test_each_loss_is_zero_not_nan_when_nothing_counts():
    # no sampled anchors, no positive anchors, no ROIs, no positive ROIs, no masks: 0, and
    # still connected to the prediction so that backward() works
    logits = torch.ones((1, 3), requires_grad=True)
    deltas = torch.ones((1, 3, 4), requires_grad=True)
    values = [
        rpn_class_loss(logits, torch.tensor([[-1, -1, -1]])),
        rpn_bbox_loss(deltas, torch.zeros((1, 3, 4)), torch.tensor([[0, -1, 0]])),
        mrcnn_class_loss(logits[:0], torch.zeros(0, dtype=torch.int64)),
        mrcnn_bbox_loss(deltas, torch.zeros((1, 4)), torch.tensor([0])),
        mrcnn_mask_loss(
            torch.ones((0, 3, 2, 2)), torch.zeros((0, 2, 2)), torch.zeros(0, dtype=torch.int64)
        ),
    ]
    for value in values:
        assert value.item() == 0.0 and value.shape == ()
    sum(values[:4]).backward()
    assert logits.grad is not None and deltas.grad is not None


def _two_image_batch():
    """Two 128 x 96 (H x W) inputs, the second with a shorter window, and their ground truth:
    image 0 has two instances, image 1 one (plus a padding row)."""
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(2, 3, 128, 96, generator=generator)
    windows = torch.tensor([[0.0, 0.0, 96.0, 128.0], [0.0, 16.0, 96.0, 112.0]])
    boxes = torch.tensor(
        [
            [[10.0, 20.0, 60.0, 50.0], [50.0, 60.0, 90.0, 110.0]],
            [[30.0, 30.0, 90.0, 100.0], [0.0, 0.0, 0.0, 0.0]],
        ]
    )
    masks = torch.zeros(2, 2, 28, 28)
    masks[:, :, 4:20, 2:12] = 1.0  # not symmetric: a transposed mask target differs
    gt = GroundTruth(
        boxes=boxes,
        class_ids=torch.tensor([[1, 2], [2, 0]]),
        masks=masks,
        crowd_boxes=torch.zeros(2, 1, 4),  # one padding row, as collate writes it
        crowd_valid=torch.zeros(2, 1, dtype=torch.bool),
    )
    return images, windows, gt


def tiny_config() -> Config:
    return Config.from_overrides(
        {
            "NAME": "tiny",
            "BACKBONE": "resnet18",
            "NUM_CLASSES": 3,
            "IMAGE_MIN_DIM": 128,
            "IMAGE_MAX_DIM": 128,
            "PRE_NMS_LIMIT": 300,
            "POST_NMS_ROIS_TRAINING": 40,
            "POST_NMS_ROIS_INFERENCE": 10,
            "RPN_TRAIN_ANCHORS_PER_IMAGE": 32,
            "TRAIN_ROIS_PER_IMAGE": 12,
            "ROI_POSITIVE_RATIO": 0.5,
            "RPN_BBOX_STD_DEV": (0.1, 0.2, 0.3, 0.4),
            "BBOX_STD_DEV": (0.5, 0.6, 0.7, 0.8),
            "FPN_CLASSIF_FC_LAYERS_SIZE": 32,
            "DEVICE": "cpu",
        }
    )


def test_training_losses_feed_each_loss_the_outputs_and_targets_of_the_same_stages():
    config = tiny_config()
    torch.manual_seed(0)
    net = MaskRCNNNet(config).train()
    images, windows, gt = _two_image_batch()
    with torch.no_grad():
        losses = training_losses(net, images, windows, gt, torch.Generator().manual_seed(5))

        # The same stages by hand, with the target sampling seeded the same way.
        generator = torch.Generator().manual_seed(5)
        features = net.features(images)
        objectness, rpn_deltas = net.rpn_outputs(features)
        anchors, _ = net.anchors((128, 96), rpn_deltas)  # (H, W): not square
        rpn = rpn_targets(anchors, gt, 32, torch.tensor([0.1, 0.2, 0.3, 0.4]), generator=generator)
        rois, _, roi_image = net.proposals(objectness, rpn_deltas, (128, 96), windows, 40)
        assert len(rois) == 80  # POST_NMS_ROIS_TRAINING per image, not the inference limit
        det = detection_targets(
            rois, roi_image, gt, 12, 0.5, torch.tensor([0.5, 0.6, 0.7, 0.8]), (28, 28), generator
        )
        positives = det.num_positive
        assert 0 < positives < len(det.rois)
        class_logits, deltas = net.box_predictions(features, det.rois, det.image_index)
        mask_logits = net.mask_logits(features, det.rois[:positives], det.image_index[:positives])
    expected = {
        "rpn_class_loss": rpn_class_loss(objectness, rpn.labels),
        "rpn_bbox_loss": rpn_bbox_loss(rpn_deltas, rpn.deltas, rpn.labels),
        "mrcnn_class_loss": mrcnn_class_loss(class_logits, det.class_ids),
        "mrcnn_bbox_loss": mrcnn_bbox_loss(deltas, det.deltas, det.class_ids),
        "mrcnn_mask_loss": mrcnn_mask_loss(mask_logits, det.masks, det.class_ids[:positives]),
    }
    assert tuple(losses) == LOSS_NAMES
    for name in LOSS_NAMES:
        assert losses[name].dtype == torch.float32
        assert losses[name] > 0, name
        torch.testing.assert_close(losses[name], expected[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_heads_get_rois_in_the_networks_dtype(dtype, monkeypatch):
    # float64 runs (the equivalence checks) stay float64 end to end; float32 runs are not
    # widened to float64 on the way to the heads.
    torch.manual_seed(0)
    net = MaskRCNNNet(tiny_config()).train().to(dtype)
    images, windows, gt = _two_image_batch()
    seen = []
    box_predictions = net.box_predictions

    def recording(features, rois, image_index):
        seen.append(rois.dtype)
        return box_predictions(features, rois, image_index)

    monkeypatch.setattr(net, "box_predictions", recording)
    with torch.no_grad():
        training_losses(net, images.to(dtype), windows, gt, torch.Generator().manual_seed(5))
    assert seen == [dtype]

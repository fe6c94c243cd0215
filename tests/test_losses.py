"""Each loss on known values."""

from __future__ import annotations

import math

import torch

from mrcnn.model.losses import (
    mrcnn_bbox_loss,
    mrcnn_class_loss,
    mrcnn_mask_loss,
    rpn_bbox_loss,
    rpn_class_loss,
    weighted_total,
)


def test_rpn_class_loss_ignores_unsampled_anchors():
    logits = torch.tensor([[0.0, 0.0, 100.0]])
    labels = torch.tensor([[1, 0, -1]])
    assert math.isclose(rpn_class_loss(logits, labels).item(), math.log(2), rel_tol=1e-6)


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

"""The five Mask R-CNN losses and :func:`training_losses`, the training forward pass.

``training_losses`` calls the network's stage methods (features, rpn_outputs, anchors,
proposals, box_predictions, mask_logits) exactly as inference does, adding target assignment
(:mod:`mrcnn.modeling.targets`) between them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mrcnn.modeling.heads import select_class_masks
from mrcnn.modeling.targets import GroundTruth, detection_targets, rpn_targets

#: Loss names, in reporting order (the keys of Config.LOSS_WEIGHTS).
LOSS_NAMES = (
    "rpn_class_loss",
    "rpn_bbox_loss",
    "mrcnn_class_loss",
    "mrcnn_bbox_loss",
    "mrcnn_mask_loss",
)


def rpn_class_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the objectness logits over the sampled anchors.

    Args:
        logits: [B, A] objectness logits.
        labels: int64 [B, A]: 1 positive, 0 negative, -1 not sampled (ignored).
    Returns:
        scalar mean over sampled anchors (0 when none is sampled).
    """
    sampled = labels >= 0
    if not bool(sampled.any()):
        return logits.sum() * 0.0
    return F.binary_cross_entropy_with_logits(
        logits[sampled].float(), labels[sampled].to(torch.float32)
    )


def rpn_bbox_loss(
    deltas: torch.Tensor, target_deltas: torch.Tensor, labels: torch.Tensor
) -> torch.Tensor:
    """Smooth L1 (beta 1) between predicted and target deltas of the positive anchors.

    Args:
        deltas: [B, A, 4] predicted (dx, dy, dw, dh); target_deltas: [B, A, 4].
        labels: int64 [B, A]; only anchors labelled 1 count.
    Returns:
        scalar mean over the coordinates of positive anchors (0 when there is none).
    """
    positive = labels == 1
    if not bool(positive.any()):
        return deltas.sum() * 0.0
    return F.smooth_l1_loss(deltas[positive].float(), target_deltas[positive].float(), beta=1.0)


def mrcnn_class_loss(logits: torch.Tensor, class_ids: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy of the ROI class logits [R, C] against int64 [R] targets (0 =
    background); scalar mean over ROIs (0 when R = 0)."""
    if len(class_ids) == 0:
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), class_ids)


def mrcnn_bbox_loss(
    deltas: torch.Tensor, target_deltas: torch.Tensor, class_ids: torch.Tensor
) -> torch.Tensor:
    """Smooth L1 (beta 1) of the deltas predicted for each positive ROI's own class.

    Args:
        deltas: [R, C, 4] class-specific (dx, dy, dw, dh); target_deltas: [R, 4].
        class_ids: int64 [R] target classes; background ROIs do not count.
    Returns:
        scalar mean over the coordinates of positive ROIs (0 when there is none).
    """
    positive = (class_ids > 0).nonzero().squeeze(1)
    if len(positive) == 0:
        return deltas.sum() * 0.0
    predicted = deltas[positive, class_ids[positive]]
    return F.smooth_l1_loss(predicted.float(), target_deltas[positive].float(), beta=1.0)


def mrcnn_mask_loss(
    logits: torch.Tensor, target_masks: torch.Tensor, class_ids: torch.Tensor
) -> torch.Tensor:
    """Binary cross-entropy of each positive ROI's mask logits of its ground-truth class.

    Args:
        logits: [P, C, M, M] mask logits of the positive ROIs.
        target_masks: [P, M, M] 0/1 targets; class_ids: int64 [P] (all > 0).
    Returns:
        scalar mean over all mask pixels (0 when P = 0).
    """
    if len(class_ids) == 0:
        return logits.sum() * 0.0
    chosen = select_class_masks(logits, class_ids)
    return F.binary_cross_entropy_with_logits(chosen.float(), target_masks.float())


def weighted_total(losses: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    """Sum of the losses times their LOSS_WEIGHTS (a missing weight counts as 1)."""
    return sum(float(weights.get(name, 1.0)) * value for name, value in losses.items())


def training_losses(
    net,
    images: torch.Tensor,
    windows: torch.Tensor,
    gt: GroundTruth,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """One training forward pass: the five losses for a molded batch.

    Args:
        net: a :class:`~mrcnn.modeling.network.MaskRCNNNet`.
        images: [B, 3, H, W] molded images.
        windows: [B, 4] (x1, y1, x2, y2) of each image inside its padded input.
        gt: the batch's ground truth in molded-input pixels.
        generator: random generator for the target sampling (None: torch's global one).
    Returns:
        dict of the five scalar losses (float32), keyed as :data:`LOSS_NAMES`, unweighted.
    """
    settings = net.settings
    image_shape = (images.shape[-2], images.shape[-1])
    features = net.features(images)
    objectness, rpn_deltas = net.rpn_outputs(features)
    # Anchors and proposals in float32 even under autocast: bf16 pixels are too coarse.
    objectness, rpn_deltas = objectness.float(), rpn_deltas.float()
    anchors, _ = net.anchors(image_shape, rpn_deltas)
    gt = gt.to(images.device, torch.float32)
    rpn = rpn_targets(
        anchors,
        gt,
        settings.rpn_train_anchors,
        net.rpn_bbox_std.to(anchors),
        generator=generator,
    )
    rois, _, roi_image = net.proposals(
        objectness, rpn_deltas, image_shape, windows.float(), settings.post_nms_rois_training
    )
    det = detection_targets(
        rois,
        roi_image,
        gt,
        settings.train_rois,
        settings.positive_ratio,
        net.bbox_std.to(anchors),
        settings.mask_shape,
        generator,
    )
    rois = det.rois
    if features[0].dtype == torch.float64:  # float64 runs (equivalence checks) stay float64
        rois = rois.to(torch.float64)
    class_logits, deltas = net.box_predictions(features, rois, det.image_index)
    positives = det.num_positive
    mask_logits = net.mask_logits(features, rois[:positives], det.image_index[:positives])
    return {
        "rpn_class_loss": rpn_class_loss(objectness, rpn.labels),
        "rpn_bbox_loss": rpn_bbox_loss(rpn_deltas, rpn.deltas, rpn.labels),
        "mrcnn_class_loss": mrcnn_class_loss(class_logits, det.class_ids),
        "mrcnn_bbox_loss": mrcnn_bbox_loss(deltas, det.deltas, det.class_ids),
        "mrcnn_mask_loss": mrcnn_mask_loss(mask_logits, det.masks, det.class_ids[:positives]),
    }

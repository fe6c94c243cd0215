"""Training targets: which anchors and ROIs are positive, and what they should predict.

Everything runs on the batch at once on the network's device. Ground truth arrives padded to a
common instance count per batch (:class:`GroundTruth`), so per-image work is done with index
arithmetic instead of Python loops. Boxes are (x1, y1, x2, y2) float pixels of the molded input.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision.ops import box_iou, roi_align

from mrcnn.structures.boxes import broadcast_iou, encode_deltas

#: RPN: anchors at or above this IoU with a ground-truth box are positive ...
RPN_POSITIVE_IOU = 0.7
#: ... and anchors below this IoU with every ground-truth box are negative.
RPN_NEGATIVE_IOU = 0.3
#: Heads: ROIs at or above this IoU are positive, the others negative.
ROI_POSITIVE_IOU = 0.5
#: Anchors or ROIs overlapping a crowd region by more than this IoU are never negatives.
CROWD_IOU = 0.001


@dataclass
class GroundTruth:
    """Ground truth of a batch, padded to G instances and C crowd boxes per image.

    Attributes:
        boxes: [B, G, 4] (x1, y1, x2, y2) molded-input pixels; padding rows are zeros.
        class_ids: int64 [B, G]; 0 marks padding.
        masks: [B, G, h, w] float 0/1: mini masks (the box contents resized to h x w) when
            ``mini_masks``, else full masks of the molded input.
        crowd_boxes: [B, C, 4] (x1, y1, x2, y2) of crowd regions; padding rows are zeros.
        crowd_valid: bool [B, C].
        mini_masks: whether ``masks`` are mini masks.
    """

    boxes: torch.Tensor
    class_ids: torch.Tensor
    masks: torch.Tensor
    crowd_boxes: torch.Tensor
    crowd_valid: torch.Tensor
    mini_masks: bool = True

    @property
    def valid(self) -> torch.Tensor:
        """bool [B, G]: real instances (not padding)."""
        return self.class_ids > 0

    def to(self, device, dtype=None) -> GroundTruth:
        """Copy to a device; boxes and masks also to ``dtype`` when given."""
        kw = {"device": device, "non_blocking": True}
        fkw = {**kw, "dtype": dtype} if dtype is not None else kw
        return GroundTruth(
            self.boxes.to(**fkw),
            self.class_ids.to(**kw),
            self.masks.to(**fkw),
            self.crowd_boxes.to(**fkw),
            self.crowd_valid.to(**kw),
            self.mini_masks,
        )


@dataclass
class RpnTargets:
    """labels int64 [B, A] (1 positive, 0 negative, -1 ignored) and deltas [B, A, 4]
    (dx, dy, dw, dh) divided by RPN_BBOX_STD_DEV, zero except at positive anchors."""

    labels: torch.Tensor
    deltas: torch.Tensor


@dataclass
class DetectionTargets:
    """The sampled ROIs of a batch and their targets, positives first.

    Attributes:
        rois: [R, 4] (x1, y1, x2, y2); image_index: int64 [R].
        class_ids: int64 [R] (0 = background); the first ``num_positive`` rows are > 0.
        deltas: [R, 4] (dx, dy, dw, dh) divided by BBOX_STD_DEV (zero for negatives).
        masks: [num_positive, M, M] 0/1 mask targets of the positive ROIs.
    """

    rois: torch.Tensor
    image_index: torch.Tensor
    class_ids: torch.Tensor
    deltas: torch.Tensor
    masks: torch.Tensor

    @property
    def num_positive(self) -> int:
        return int(self.masks.shape[0])


# ------------------------------------------------------------------------------------------------
# Sampling
# ------------------------------------------------------------------------------------------------
def sample_per_group(
    candidates: torch.Tensor,
    groups: torch.Tensor,
    quota: torch.Tensor,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick at most ``quota[g]`` random candidates in every group ``g``, without a loop.

    Args:
        candidates: bool [N].
        groups: int64 [N] group of every entry, in 0..len(quota)-1.
        quota: int64 [num_groups] how many to keep per group.
        generator: random generator (on the entries' device) for reproducible draws.
    Returns:
        bool [N]: the chosen entries (a subset of ``candidates``).
    """
    if candidates.numel() == 0:
        return candidates.clone()
    noise = torch.rand(
        candidates.shape, generator=generator, device=candidates.device, dtype=torch.float64
    )
    # Sort by group, then candidates (random order) before non-candidates.
    key = groups.to(torch.float64) * 4.0 + noise + (~candidates).to(torch.float64) * 2.0
    order = key.argsort()
    sorted_groups = groups[order]
    starts = torch.searchsorted(sorted_groups, sorted_groups, right=False)
    rank = torch.arange(len(order), device=order.device) - starts
    chosen = torch.zeros_like(candidates)
    chosen[order] = (rank < quota[sorted_groups]) & candidates[order]
    return chosen


def _batched_iou(anchors: torch.Tensor, boxes: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """IoU of [A, 4] anchors with [B, G, 4] boxes: [B, A, G], -1 where ``valid`` [B, G] is
    False (so padding never wins a max)."""
    batch, count = boxes.shape[:2]
    overlaps = box_iou(anchors, boxes.reshape(-1, 4)).view(len(anchors), batch, count)
    overlaps = overlaps.permute(1, 0, 2)
    return overlaps.masked_fill(~valid[:, None, :], -1.0)


# ------------------------------------------------------------------------------------------------
# RPN
# ------------------------------------------------------------------------------------------------
def rpn_targets(
    anchors: torch.Tensor,
    gt: GroundTruth,
    anchors_per_image: int,
    std: torch.Tensor,
    positive_fraction: float = 0.5,
    generator: torch.Generator | None = None,
) -> RpnTargets:
    """Label anchors for the RPN losses and encode the boxes positives should regress to.

    Positive: IoU >= 0.7 with some ground-truth box, or the best anchor of a ground-truth box
    (all anchors tied at its best IoU). Negative: IoU < 0.3 with every box and not overlapping a
    crowd region. Then ``anchors_per_image`` are sampled per image, at most
    ``positive_fraction`` of them positive, the rest negatives; unsampled anchors are ignored.

    Args:
        anchors: [A, 4] (x1, y1, x2, y2).
        gt: the batch's ground truth (boxes [B, G, 4]).
        anchors_per_image: RPN_TRAIN_ANCHORS_PER_IMAGE.
        std: [4] RPN_BBOX_STD_DEV.
    Returns:
        :class:`RpnTargets` with labels [B, A] and deltas [B, A, 4].
    """
    batch, num_anchors = gt.boxes.shape[0], anchors.shape[0]
    overlaps = _batched_iou(anchors, gt.boxes, gt.valid)  # [B, A, G]
    best_iou, matched = overlaps.max(dim=2)  # [B, A]
    crowd = _batched_iou(anchors, gt.crowd_boxes, gt.crowd_valid).amax(dim=2)

    positive = best_iou >= RPN_POSITIVE_IOU
    # Every box gets its best anchor(s), however low the IoU, so no object goes unlearned.
    per_box_best = overlaps.amax(dim=1, keepdim=True)  # [B, 1, G]
    is_best = (overlaps == per_box_best) & (per_box_best > 0)
    positive |= is_best.any(dim=2)
    negative = (best_iou < RPN_NEGATIVE_IOU) & (crowd < CROWD_IOU) & ~positive

    groups = torch.arange(batch, device=anchors.device).repeat_interleave(num_anchors)
    max_positive = int(anchors_per_image * positive_fraction)
    quota = torch.full((batch,), max_positive, device=anchors.device, dtype=torch.int64)
    keep_pos = sample_per_group(positive.reshape(-1), groups, quota, generator).view(batch, -1)
    quota = anchors_per_image - keep_pos.sum(dim=1)
    keep_neg = sample_per_group(negative.reshape(-1), groups, quota, generator).view(batch, -1)

    labels = torch.full((batch, num_anchors), -1, dtype=torch.int64, device=anchors.device)
    labels[keep_neg] = 0
    labels[keep_pos] = 1
    deltas = anchors.new_zeros((batch, num_anchors, 4))
    b, a = keep_pos.nonzero(as_tuple=True)
    deltas[b, a] = encode_deltas(gt.boxes[b, matched[b, a]], anchors[a], std)
    return RpnTargets(labels, deltas)


# ------------------------------------------------------------------------------------------------
# Heads
# ------------------------------------------------------------------------------------------------
def detection_targets(
    rois: torch.Tensor,
    roi_image: torch.Tensor,
    gt: GroundTruth,
    rois_per_image: int,
    positive_ratio: float,
    std: torch.Tensor,
    mask_shape: tuple[int, int],
    generator: torch.Generator | None = None,
) -> DetectionTargets:
    """Sample ROIs for the heads and give each its class, box and mask target.

    The ground-truth boxes join the proposals (so the heads see positives from the first step).
    A ROI is positive at IoU >= 0.5 with a box of its image, negative below (unless it overlaps a
    crowd region). Per image at most ``rois_per_image * positive_ratio`` positives are kept and
    negatives fill up to ``rois_per_image``.

    Args:
        rois: [K, 4] (x1, y1, x2, y2) proposals; roi_image: int64 [K] their image.
        gt: the batch's ground truth.
        rois_per_image: TRAIN_ROIS_PER_IMAGE; positive_ratio: ROI_POSITIVE_RATIO.
        std: [4] BBOX_STD_DEV.
        mask_shape: MASK_SHAPE (M, M).
    Returns:
        :class:`DetectionTargets`, positives first.
    """
    batch, count = gt.boxes.shape[:2]
    gt_image = torch.arange(batch, device=rois.device).repeat_interleave(count)
    gt_valid = gt.valid.reshape(-1)
    rois = torch.cat([rois.to(gt.boxes), gt.boxes.reshape(-1, 4)[gt_valid]])
    image = torch.cat([roi_image, gt_image[gt_valid]])

    # IoU of each RoI with the ground truths of its own image: [R, G].
    overlaps = broadcast_iou(rois[:, None], gt.boxes[image])
    overlaps = overlaps.masked_fill(~gt.valid[image], -1.0)
    best_iou, matched = overlaps.max(dim=1)
    crowd = broadcast_iou(rois[:, None], gt.crowd_boxes[image])
    crowd = crowd.masked_fill(~gt.crowd_valid[image], 0.0)
    positive = best_iou >= ROI_POSITIVE_IOU
    negative = ~positive & (crowd.amax(dim=1) < CROWD_IOU)

    quota = torch.full((batch,), int(rois_per_image * positive_ratio), device=rois.device)
    keep_pos = sample_per_group(positive, image, quota, generator)
    per_image = torch.zeros(batch, dtype=torch.int64, device=rois.device)
    per_image.index_add_(0, image, keep_pos.to(torch.int64))
    keep_neg = sample_per_group(negative, image, rois_per_image - per_image, generator)

    pos = keep_pos.nonzero().squeeze(1)
    neg = keep_neg.nonzero().squeeze(1)
    pos_image, pos_match = image[pos], matched[pos]
    pos_boxes = gt.boxes[pos_image, pos_match]
    class_ids = torch.cat([gt.class_ids[pos_image, pos_match], neg.new_zeros(len(neg))])
    deltas = torch.cat(
        [encode_deltas(pos_boxes, rois[pos], std), rois.new_zeros((len(neg), 4))], dim=0
    )
    masks = mask_targets(rois[pos], pos_image * count + pos_match, gt, mask_shape)
    order = torch.cat([pos, neg])
    return DetectionTargets(rois[order], image[order], class_ids, deltas, masks)


def mask_targets(
    rois: torch.Tensor, flat_index: torch.Tensor, gt: GroundTruth, mask_shape: tuple[int, int]
) -> torch.Tensor:
    """Crop each ROI out of its ground-truth mask and resize it to ``mask_shape``.

    Args:
        rois: [P, 4] (x1, y1, x2, y2) molded-input pixels.
        flat_index: int64 [P] index of each ROI's instance in ``gt.masks.flatten(0, 1)``.
        gt: ground truth; mini masks are addressed in their box's frame.
        mask_shape: (M_h, M_w) (MASK_SHAPE, square in practice).
    Returns:
        [P, M_h, M_w] 0/1 targets in ``gt.masks``' dtype.
    """
    size = (int(mask_shape[0]), int(mask_shape[1]))
    masks = gt.masks.flatten(0, 1)[:, None]  # [B*G, 1, h, w]
    if len(rois) == 0:
        return masks.new_zeros((0, *size))
    boxes = rois
    if gt.mini_masks:
        # Express the ROI in the mini mask's pixels: the mask spans its box exactly.
        box = gt.boxes.reshape(-1, 4)[flat_index]
        height, width = masks.shape[-2:]
        scale = torch.stack(
            [width / (box[:, 2] - box[:, 0]), height / (box[:, 3] - box[:, 1])], dim=1
        ).clamp(max=1e6)
        boxes = (rois - box[:, [0, 1, 0, 1]]) * scale.repeat(1, 2)
    indexed = torch.cat([flat_index[:, None].to(boxes), boxes], dim=1)
    crops = roi_align(masks, indexed, size, spatial_scale=1.0, sampling_ratio=2, aligned=True)
    return (crops[:, 0] >= 0.5).to(masks.dtype)


def mini_masks(masks: torch.Tensor, boxes: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """Crop masks to their boxes and resize them to ``shape`` (USE_MINI_MASK storage).

    Args:
        masks: [N, H, W] float 0/1 full masks.
        boxes: [N, 4] (x1, y1, x2, y2) pixel-edge boxes enclosing each mask.
        shape: MINI_MASK_SHAPE (h, w).
    Returns:
        [N, h, w] 0/1 masks in ``masks``' dtype.
    """
    if len(masks) == 0:
        return masks.new_zeros((0, int(shape[0]), int(shape[1])))
    index = torch.arange(len(masks), dtype=masks.dtype, device=masks.device)[:, None]
    size = (int(shape[0]), int(shape[1]))
    crops = roi_align(
        masks[:, None], torch.cat([index, boxes.to(masks)], dim=1), size, 1.0, 2, True
    )
    return (crops[:, 0] >= 0.5).to(masks.dtype)

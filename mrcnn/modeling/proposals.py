"""Proposal layer: RPN outputs to a few hundred candidate boxes per image.

Decode the deltas of the best-scoring anchors, clip them to the image window, drop degenerate
boxes, suppress overlaps (NMS) and keep the best per image. The whole batch is processed at once:
images (and, in per-level mode, pyramid levels) are kept apart by torchvision's batched NMS.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from torchvision.ops import batched_nms

from mrcnn.structures.boxes import clip_boxes, decode_deltas, large_enough

#: Proposals narrower or shorter than this (pixels) are dropped.
MIN_PROPOSAL_SIZE = 1e-3


def top_k_per_group(order: torch.Tensor, groups: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the first ``k`` entries of each group, in the given order.

    Args:
        order: int64 [M] indices, best first (as NMS returns them).
        groups: int64 [N] group of every index ``order`` can hold (e.g. its image).
        k: how many to keep per group.
    Returns:
        int64 [M'] the kept indices, grouped by ascending group, best first within a group.
    """
    if order.numel() == 0:
        return order
    by_group = torch.sort(groups[order], stable=True)
    order = order[by_group.indices]
    sorted_groups = by_group.values
    starts = torch.searchsorted(sorted_groups, sorted_groups, right=False)
    rank = torch.arange(len(order), device=order.device) - starts
    return order[rank < k]


def stable_top_k(values: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest of each row, ties in index order: the first ``k`` of a
    stable descending sort (TensorFlow's top_k order), without sorting the whole row.

    Args:
        values: [B, N]; k: at most N.
    Returns:
        int64 [B, k], best first.
    """
    # NaN scores (a diverged model) rank above every number, in index order, as a stable sort
    # puts them; compared as NaN they would be neither above nor at the k-th value
    values = torch.where(values.isnan(), float("inf"), values)  # infinities stay as they are
    kth = values.topk(k, dim=1).values[:, -1:]  # [B, 1]: every value above it is in
    rows = []
    # One image at a time: a batch holds only a few.
    for row, threshold in zip(values, kth, strict=True):
        candidates = torch.nonzero(row >= threshold).squeeze(1)  # ascending index order
        order = torch.sort(row[candidates], descending=True, stable=True).indices[:k]
        rows.append(candidates[order])
    return torch.stack(rows)


def select_top_anchors(
    objectness: torch.Tensor, level_counts: Sequence[int], limit: int, per_level: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the best-scoring anchors, over all levels or within each level.

    Args:
        objectness: [B, A] logits.
        level_counts: anchors of each level (summing to A).
        limit: PRE_NMS_LIMIT, per image or per image and level.
        per_level: apply ``limit`` to each level separately.
    Returns:
        (indices, levels): int64 [B, K] anchor indices and [K] the level of each column
        (all zero when not ``per_level``).
    """
    if not per_level:
        k = min(limit, objectness.shape[1])
        indices = objectness.topk(k, dim=1).indices
        return indices, torch.zeros(k, dtype=torch.int64, device=objectness.device)
    indices, levels, start = [], [], 0
    for level, count in enumerate(level_counts):
        k = min(limit, count)
        top = objectness[:, start : start + count].topk(k, dim=1).indices + start
        indices.append(top)
        levels.append(torch.full((k,), level, dtype=torch.int64, device=objectness.device))
        start += count
    return torch.cat(indices, dim=1), torch.cat(levels)


@dataclass
class ProposalSteps:
    """What the proposal layer computes on the way to its proposals (``run_graph`` and
    ``mrcnn inspect`` show these steps).

    Rows are the best-scoring anchors of each image (PRE_NMS_LIMIT of them, per level where
    proposals are chosen per level), image after image, in the layer's order. Boxes are
    (x1, y1, x2, y2) in the layer's frame: network-input pixels here, normalised in Matterport's
    layer (:func:`mrcnn.modeling.matterport.proposal_steps`).

    Attributes:
        anchors: [R, 4] the chosen anchors; refined: [R, 4] after the RPN's deltas;
        clipped: [R, 4] refined and clipped (the proposals' candidates).
        scores: [R] objectness probabilities; image_index: int64 [R].
        keep: int64 [K] the rows that survive NMS and the per-image limit, grouped by image,
            best first: the proposals are ``clipped[keep]``.
    """

    anchors: torch.Tensor
    refined: torch.Tensor
    clipped: torch.Tensor
    scores: torch.Tensor
    image_index: torch.Tensor
    keep: torch.Tensor

    def proposals(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(boxes [K, 4], scores [K], image_index [K]) of the kept rows."""
        return self.clipped[self.keep], self.scores[self.keep], self.image_index[self.keep]

    def map_boxes(self, convert) -> ProposalSteps:
        """The same steps with ``convert`` applied to every box tensor (e.g. to pixels)."""
        return replace(
            self,
            anchors=convert(self.anchors),
            refined=convert(self.refined),
            clipped=convert(self.clipped),
        )


def proposal_steps(
    objectness: torch.Tensor,
    deltas: torch.Tensor,
    anchors: torch.Tensor,
    level_counts: Sequence[int],
    windows: torch.Tensor,
    pre_nms_limit: int,
    post_nms_limit: int,
    nms_threshold: float,
    std: torch.Tensor,
    per_level: bool,
) -> ProposalSteps:
    """The proposal layer, step by step (``.proposals()`` gives its output).

    Args:
        objectness: [B, A] RPN logits.
        deltas: [B, A, 4] RPN deltas (dx, dy, dw, dh), before ``std``.
        anchors: [A, 4] (x1, y1, x2, y2) in network-input pixels.
        level_counts: anchors per pyramid level.
        windows: [B, 4] (x1, y1, x2, y2) of each image inside its padded input.
        pre_nms_limit: anchors kept by score before NMS (per level when ``per_level``).
        post_nms_limit: proposals kept per image after NMS.
        nms_threshold: IoU above which the lower-scoring box is suppressed.
        std: [4] RPN_BBOX_STD_DEV.
        per_level: rank and suppress within each level (torchvision) or across levels.
    Returns:
        :class:`ProposalSteps` in network-input pixels.
    """
    batch = objectness.shape[0]
    indices, levels = select_top_anchors(objectness, level_counts, pre_nms_limit, per_level)
    logits = objectness.gather(1, indices)
    chosen_deltas = deltas.gather(1, indices[..., None].expand(-1, -1, 4))
    chosen_anchors = anchors.to(deltas)[indices.reshape(-1)]
    refined = decode_deltas(chosen_deltas.reshape(-1, 4), chosen_anchors, std)
    image_index = torch.arange(batch, device=refined.device).repeat_interleave(indices.shape[1])
    boxes = clip_boxes(refined, windows.to(refined)[image_index])
    scores = torch.sigmoid(logits.reshape(-1))
    groups = image_index * len(level_counts) + levels.repeat(batch)

    valid = torch.nonzero(large_enough(boxes, MIN_PROPOSAL_SIZE)).squeeze(1)
    keep = valid[batched_nms(boxes[valid], scores[valid], groups[valid], nms_threshold)]
    keep = top_k_per_group(keep, image_index, post_nms_limit)
    return ProposalSteps(chosen_anchors, refined, boxes, scores, image_index, keep)

"""Association: how well each predicted track fits each detection, and the greedy matching.

An association is any callable ``(tracks: PredictedTracks, detections: Detections) -> float
[T, D]`` similarity in [0, 1] (the tracker's cost is ``1 - similarity``). Two are provided:
:class:`MaskOrBoxIoU` (the default) and :class:`BoxIoU`. Both use the project's own IoUs,
:func:`mrcnn.evaluation.overlaps.compute_overlaps` and
:func:`~mrcnn.evaluation.overlaps.compute_overlaps_masks`, so a track and an evaluation agree on
what overlapping means.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from mrcnn.evaluation.overlaps import compute_overlaps, compute_overlaps_masks
from mrcnn.tracking.detections import Detections


@dataclass(frozen=True)
class PredictedTracks:
    """The T live tracks (seen last frame or lost) as predicted for the current frame.

    Attributes:
        boxes: float64 [T, 4] (y1, x1, y2, x2) predicted boxes, original-image pixels.
        class_ids: int64 [T] class of each track.
        masks: bool [H, W, T] each track's last mask moved by its predicted motion, or None
            when no track has a mask; a track without a mask has an all-False column.
        has_mask: bool [T] which tracks have a mask.
    """

    boxes: np.ndarray
    class_ids: np.ndarray
    masks: np.ndarray | None
    has_mask: np.ndarray

    def __len__(self) -> int:
        return len(self.boxes)


class Association(Protocol):
    """Similarity in [0, 1] of every predicted track and every detection."""

    def __call__(
        self, tracks: PredictedTracks, detections: Detections
    ) -> np.ndarray:  # pragma: no cover - a protocol
        """float [T, D]: higher is a better match; pairs below the tracker's thresholds are
        never matched."""
        ...


@dataclass(frozen=True)
class BoxIoU:
    """Box IoU of the predicted boxes and the detections' boxes; masks are ignored."""

    def __call__(self, tracks: PredictedTracks, detections: Detections) -> np.ndarray:
        return compute_overlaps(tracks.boxes, detections.boxes).astype(np.float64)


@dataclass(frozen=True)
class MaskOrBoxIoU:
    """Mask IoU where both the track (its last mask, moved) and the detection have a mask,
    box IoU of the predicted box elsewhere.

    Mask IoU tells apart two objects whose boxes overlap a lot but whose shapes do not
    (a person in front of a car); boxes keep box-only detections and mask-less tracks going.
    """

    def __call__(self, tracks: PredictedTracks, detections: Detections) -> np.ndarray:
        similarity = compute_overlaps(tracks.boxes, detections.boxes).astype(np.float64)
        if tracks.masks is None or detections.masks is None or not tracks.has_mask.any():
            return similarity
        rows = np.flatnonzero(tracks.has_mask)
        # All columns, then the rows: a mask-less track's column is empty and costs nothing,
        # where selecting columns first would copy every track's full-frame mask.
        similarity[rows] = compute_overlaps_masks(tracks.masks, detections.masks)[rows]
        return similarity


def greedy_match(
    similarity: np.ndarray, rows: np.ndarray, columns: np.ndarray, threshold: float
) -> list[tuple[int, int]]:
    """One-to-one (row, column) pairs, highest similarity first, none below ``threshold``.

    Args:
        similarity: float [T, D] of all tracks and detections.
        rows: int [R] the track indices that may be matched; columns: int [C] the detections.
        threshold: the least similarity a pair needs.
    Returns:
        (track index, detection index) pairs into ``similarity``.
    """
    if len(rows) == 0 or len(columns) == 0:
        return []
    block = similarity[np.ix_(rows, columns)]
    candidates = np.flatnonzero(block >= threshold)
    # Stable sort: ties go to the earlier track and detection, so runs are reproducible.
    order = candidates[np.argsort(-block.flat[candidates], kind="stable")]
    used_rows: set[int] = set()
    used_columns: set[int] = set()
    pairs = []
    for flat in order:
        r, c = divmod(int(flat), len(columns))
        if r in used_rows or c in used_columns:
            continue
        used_rows.add(r)
        used_columns.add(c)
        pairs.append((int(rows[r]), int(columns[c])))
    return pairs

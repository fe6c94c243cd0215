"""One frame's detections, checked and put in the form the tracker works in.

The tracker takes the dict :meth:`mrcnn.model.MaskRCNN.detect` returns for one image and keeps
boxes as float (y1, x1, y2, x2) original-image pixels, the order of ``"rois"`` and of
:func:`mrcnn.evaluation.overlaps.compute_overlaps`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from mrcnn.structures.boxes import extract_boxes_from_masks, xyxy_to_yxyx

#: What to tell a user whose input is not ``detect``'s dict.
_EXPECTED = (
    "pass one image's dict from MaskRCNN.detect: 'rois' int [N, 4] (y1, x1, y2, x2) or "
    "'boxes' float [N, 4] (x1, y1, x2, y2), 'scores' [N], 'class_ids' [N], optional 'masks' "
    "bool [H, W, N]"
)


@dataclass(frozen=True)
class Detections:
    """One frame's N detections.

    Attributes:
        boxes: float64 [N, 4] (y1, x1, y2, x2) original-image pixels, y2/x2 exclusive.
        scores: float64 [N].
        class_ids: int64 [N].
        masks: bool [H, W, N] at the original resolution, or None (box-only tracking).
    """

    boxes: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray
    masks: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def frame_shape(self) -> tuple[int, int] | None:
        """(H, W) of the masks, or None without masks."""
        return None if self.masks is None else (self.masks.shape[0], self.masks.shape[1])

    @classmethod
    def from_dict(
        cls, detections: Mapping, frame_shape: tuple[int, int] | None = None
    ) -> Detections:
        """Check and convert one frame of ``MaskRCNN.detect`` output.

        Args:
            detections: "rois" int [N, 4] (y1, x1, y2, x2) and/or "boxes" float [N, 4]
                (x1, y1, x2, y2) original-image pixels ("boxes" wins: it is not rounded);
                "scores" [N]; "class_ids" [N]; optional "masks" bool [H, W, N] (or a
                :class:`~mrcnn.structures.masks.BoxMasks`, made dense here; None = no masks).
            frame_shape: (H, W) of the masks of earlier frames, which these must share.
        Raises:
            ValueError: a missing key, a wrong shape, mismatched lengths, non-finite boxes or
                masks of another frame size, in one line saying what to do.
        """
        if not isinstance(detections, Mapping):
            raise ValueError(
                f"detections must be a dict, got {type(detections).__name__}; " + _EXPECTED
            )
        boxes = _boxes(detections)
        n = len(boxes)
        scores = _vector(detections, "scores", n, np.float64)
        class_ids = _vector(detections, "class_ids", n, np.int64)
        masks = _masks(detections.get("masks"), n, frame_shape)
        return cls(boxes, scores, class_ids, masks)


def detections_from_masks(masks: np.ndarray, class_ids, scores, **extra) -> dict:
    """A ``MaskRCNN.detect``-style dict of instances known by their masks (carried or smoothed
    ones): "rois" int32 [N, 4] (y1, x1, y2, x2) and "boxes" float32 [N, 4] (x1, y1, x2, y2),
    tight around bool ``masks`` [H, W, N]; "class_ids" int32 [N]; "scores" float32 [N]; and
    the ``extra`` per-instance keys as given."""
    rois = extract_boxes_from_masks(masks)
    return {
        "rois": rois,
        "boxes": xyxy_to_yxyx(rois).astype(np.float32),
        "class_ids": np.asarray(class_ids, dtype=np.int32).reshape(-1),
        "scores": np.asarray(scores, dtype=np.float32).reshape(-1),
        "masks": masks,
        **extra,
    }


def _boxes(detections: Mapping) -> np.ndarray:
    """float64 [N, 4] (y1, x1, y2, x2) from "boxes" (x1, y1, x2, y2) or else "rois"."""
    if detections.get("boxes") is not None:
        key = "boxes"
    elif detections.get("rois") is not None:
        key = "rois"
    else:
        raise ValueError("detections have neither 'rois' nor 'boxes'; " + _EXPECTED)
    boxes = np.asarray(detections[key], dtype=np.float64)
    if boxes.size == 0:
        boxes = boxes.reshape(0, 4)  # detect's empty result may come as shape (0,)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"'{key}' has shape {boxes.shape}, expected [N, 4]; " + _EXPECTED)
    if not np.isfinite(boxes).all():
        raise ValueError(f"'{key}' holds NaN or infinite coordinates; drop those detections")
    return xyxy_to_yxyx(boxes) if key == "boxes" else boxes


def _vector(detections: Mapping, key: str, n: int, dtype: type) -> np.ndarray:
    """``detections[key]`` as a [n] array of ``dtype``."""
    if detections.get(key) is None:
        raise ValueError(f"detections have no '{key}'; " + _EXPECTED)
    values = np.asarray(detections[key])
    if values.shape != (n,):
        raise ValueError(
            f"'{key}' has shape {np.shape(detections[key])} but there are {n} boxes; "
            f"give one {key[:-1]} per box, [N]"
        )
    return values.astype(dtype)


def _masks(masks: object, n: int, frame_shape: tuple[int, int] | None) -> np.ndarray | None:
    """bool [H, W, n] masks of the same (H, W) as earlier frames, or None."""
    if masks is None:
        return None
    if hasattr(masks, "to_dense"):  # BoxMasks (detect's mask_format="boxes")
        masks = masks.to_dense()
    masks = np.asarray(masks)
    if masks.ndim != 3 or masks.shape[2] != n:
        raise ValueError(
            f"'masks' has shape {masks.shape} but there are {n} boxes; expected bool [H, W, {n}] "
            "(one mask per detection, last axis), or leave 'masks' out to track boxes only"
        )
    if frame_shape is not None and masks.shape[:2] != tuple(frame_shape):
        raise ValueError(
            f"masks are {masks.shape[0]}x{masks.shape[1]} (H x W) but earlier frames' were "
            f"{frame_shape[0]}x{frame_shape[1]}; use one Tracker per video, or call reset() "
            "before a new one"
        )
    return masks.astype(bool, copy=False)

"""Matterport's ``mrcnn.model`` names beyond detect/train: image metas, molding, load_image_gt,
and the MaskRCNN methods its notebooks and scripts call (:class:`MatterportMethods`).

Conventions are Matterport's: images H x W x 3, molded images [B, H, W, 3] float32, boxes
(y1, x1, y2, x2), in pixels or normalised as Matterport's ``norm_boxes`` does (where its
functions return normalised ones), masks [H, W, N]. Everything runs on this package's network
and helpers; nothing here re-implements a stage.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from mrcnn.boxes import xyxy_to_yxyx
from mrcnn.image import ImageMeta, normalization

__all__ = [
    "compose_image_meta",
    "mold_image",
    "parse_image_meta",
    "unmold_image",
]


# ------------------------------------------------------------------------------------------------
# Image metas and molding
# ------------------------------------------------------------------------------------------------
def compose_image_meta(
    image_id: int,
    original_image_shape: Sequence[int],
    image_shape: Sequence[int],
    window: Sequence[int],
    scale: float,
    active_class_ids: Sequence[int],
) -> np.ndarray:
    """Matterport's image meta: float [1 + 3 + 3 + 4 + 1 + NUM_CLASSES] holding the image id,
    original (H, W, C), molded (H, W, C), window (y1, x1, y2, x2) in molded pixels, scale and
    one 0/1 flag per class of the image's dataset (``config.IMAGE_META_SIZE`` values)."""
    return np.array(
        [image_id]
        + list(original_image_shape)
        + list(image_shape)
        + list(window)
        + [scale]
        + list(active_class_ids)
    )


def parse_image_meta(meta: np.ndarray) -> dict[str, np.ndarray]:
    """Split [B, IMAGE_META_SIZE] image metas into a dict of "image_id" [B], "original_image_shape"
    [B, 3], "image_shape" [B, 3], "window" [B, 4] (y1, x1, y2, x2) (all int32), "scale"
    float32 [B] and "active_class_ids" int32 [B, NUM_CLASSES]."""
    meta = np.asarray(meta)
    return {
        "image_id": meta[:, 0].astype(np.int32),
        "original_image_shape": meta[:, 1:4].astype(np.int32),
        "image_shape": meta[:, 4:7].astype(np.int32),
        "window": meta[:, 7:11].astype(np.int32),
        "scale": meta[:, 11].astype(np.float32),
        "active_class_ids": meta[:, 12:].astype(np.int32),
    }


def mold_image(images: np.ndarray, config) -> np.ndarray:
    """float32 [..., H, W, 3] network input from RGB images: minus MEAN_PIXEL and, where the
    config has one (torchvision's convention), divided by STD_PIXEL."""
    mean, std = normalization(config, torch.float64, "cpu")
    out = np.asarray(images, dtype=np.float64) - mean.numpy().reshape(-1)
    if std is not None:
        out = out / std.numpy().reshape(-1)
    return out.astype(np.float32)


def unmold_image(normalized_images: np.ndarray, config) -> np.ndarray:
    """uint8 RGB images back from :func:`mold_image` output."""
    mean, std = normalization(config, torch.float64, "cpu")
    out = np.asarray(normalized_images, dtype=np.float64)
    if std is not None:
        out = out * std.numpy().reshape(-1)
    # Rounded, not truncated: float32 molding leaves values a hair below whole numbers.
    return np.clip(np.round(out + mean.numpy().reshape(-1)), 0, 255).astype(np.uint8)


def _norm_yxyx(boxes_xyxy: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """(x1, y1, x2, y2) pixels -> Matterport's normalised (y1, x1, y2, x2)."""
    height, width = shape[:2]
    scale = np.array([height - 1, width - 1, height - 1, width - 1], dtype=np.float64)
    return ((xyxy_to_yxyx(np.asarray(boxes_xyxy, np.float64)) - [0, 0, 1, 1]) / scale).astype(
        np.float32
    )


def _image_meta_of(meta_row: np.ndarray) -> ImageMeta:
    """This package's :class:`ImageMeta` from one Matterport image meta row."""
    parsed = parse_image_meta(np.asarray(meta_row)[None])
    original = tuple(int(v) for v in parsed["original_image_shape"][0][:2])
    y1, x1, y2, x2 = (int(v) for v in parsed["window"][0])
    resized = (y2 - y1, x2 - x1)
    scale = (resized[0] / original[0], resized[1] / original[1])
    return ImageMeta(original, resized, (x1, y1, x2, y2), scale)

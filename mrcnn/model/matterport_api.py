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
    "load_image_gt",
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


def _active_class_ids(dataset, image_id: int) -> np.ndarray:
    active = np.zeros(dataset.num_classes, dtype=np.int32)
    source = dataset.image_info[image_id]["source"]
    active[dataset.source_class_ids.get(source, list(range(dataset.num_classes)))] = 1
    return active


def load_image_gt(
    dataset, config, image_id: int, augment: bool = False, augmentation=None, use_mini_mask=False
):
    """One training sample as Matterport's data generator saw it.

    Args:
        augment: flip left-right half of the time (Matterport's deprecated flag).
        augmentation: an imgaug augmenter or a torchvision.transforms.v2 transform, applied to
            image and masks before resizing.
        use_mini_mask: masks as MINI_MASK_SHAPE crops of their boxes.
    Returns:
        (image uint8 [h, w, 3] resized and padded, image_meta [IMAGE_META_SIZE],
        class_ids int32 [N], bbox int32 [N, 4] (y1, x1, y2, x2), mask bool [h, w, N] or
        [mini_h, mini_w, N]); instances the resize wiped out are dropped.
    """
    from mrcnn import utils  # the Matterport adapters sit above this package's modules
    from mrcnn.training.augment import apply_augmentation, to_sample
    from mrcnn.training.imgaug_adapter import adapt_augmentation

    image = dataset.load_image(image_id)
    mask, class_ids = dataset.load_mask(image_id)
    original_shape = image.shape
    if augment and np.random.randint(2):
        image, mask = np.fliplr(image), np.fliplr(mask)
    if augmentation is not None:
        sample = apply_augmentation(
            adapt_augmentation(augmentation), to_sample(image, mask, class_ids)
        )
        image = sample["image"].permute(1, 2, 0).numpy()
        mask = sample["masks"].permute(1, 2, 0).numpy().astype(bool)
        class_ids = sample["labels"].numpy().astype(np.int32)
    image, window, scale, padding, crop = utils.resize_image(
        image,
        min_dim=config.IMAGE_MIN_DIM,
        max_dim=config.IMAGE_MAX_DIM,
        min_scale=config.IMAGE_MIN_SCALE,
        mode=config.IMAGE_RESIZE_MODE,
    )
    mask = utils.resize_mask(mask, scale, padding, crop)
    kept = mask.sum(axis=(0, 1)) > 0
    mask, class_ids = mask[:, :, kept], np.asarray(class_ids)[kept].astype(np.int32)
    bbox = utils.extract_bboxes(mask)
    if use_mini_mask:
        mask = utils.minimize_mask(bbox, mask, config.MINI_MASK_SHAPE)
    meta = compose_image_meta(
        image_id, original_shape, image.shape, window, scale, _active_class_ids(dataset, image_id)
    )
    return image, meta, class_ids, bbox, mask


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

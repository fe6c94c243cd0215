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

from mrcnn.modeling.anchors import backbone_shapes
from mrcnn.modeling.targets import GroundTruth, rpn_targets
from mrcnn.structures.boxes import xyxy_to_yxyx, yxyx_to_xyxy
from mrcnn.structures.image import ImageMeta, normalization

__all__ = [
    "build_rpn_targets",
    "compose_image_meta",
    "compute_backbone_shapes",
    "log",
    "mold_image",
    "parse_image_meta",
    "unmold_image",
]


def log(text: str, array=None) -> None:
    """Print ``text``, and when ``array`` (numpy or torch) is given, its shape, min, max and
    dtype in aligned columns, as Matterport's notebooks use it to look at a stage's values."""
    if array is not None:
        if isinstance(array, torch.Tensor):  # numpy has no bfloat16: widen for min and max
            dtype = str(array.dtype).removeprefix("torch.")
            array = array.detach().cpu().float().numpy()
        else:
            array = np.asarray(array)
            dtype = str(array.dtype)
        span = (
            f"min: {array.min():10.5f}  max: {array.max():10.5f}"
            if array.size
            else f"min: {'':10}  max: {'':10}"
        )
        text = f"{text:<25}shape: {str(array.shape):20}  {span}  {dtype}"
    print(text)


# ------------------------------------------------------------------------------------------------
# Anchors and RPN targets, as the inspection notebooks look at them
# ------------------------------------------------------------------------------------------------
def compute_backbone_shapes(config, image_shape: Sequence[int]) -> np.ndarray:
    """int [levels, 2]: (height, width) of each pyramid level's feature map for a molded
    ``image_shape``, one row per BACKBONE_STRIDES entry."""
    return np.array(backbone_shapes(image_shape[:2], config.BACKBONE_STRIDES), dtype=np.int64)


def build_rpn_targets(
    image_shape: Sequence[int],
    anchors: np.ndarray,
    gt_class_ids: np.ndarray,
    gt_boxes: np.ndarray,
    config,
) -> tuple[np.ndarray, np.ndarray]:
    """The RPN's training targets for one image, by the rules training uses
    (:func:`mrcnn.modeling.targets.rpn_targets`), in Matterport's layout.

    Args:
        image_shape: unused (Matterport's signature).
        anchors: [A, 4] (y1, x1, y2, x2) pixels, e.g. ``model.anchors`` after ``get_anchors``.
        gt_class_ids: int [G]; negative ids mark crowd regions, over which no anchor is
            negative.
        gt_boxes: [G, 4] (y1, x1, y2, x2) pixels.
        config: RPN_TRAIN_ANCHORS_PER_IMAGE and RPN_BBOX_STD_DEV are read.
    Returns:
        rpn_match: int32 [A], 1 positive, -1 negative, 0 neutral (sampled down to
        RPN_TRAIN_ANCHORS_PER_IMAGE, at most half positive; draws follow ``np.random``'s seed);
        rpn_bbox: float64 [RPN_TRAIN_ANCHORS_PER_IMAGE, 4] deltas (dy, dx, log dh, log dw),
        divided by RPN_BBOX_STD_DEV, of the positives in anchor order; zero rows after them.
    """
    del image_shape
    class_ids = torch.as_tensor(np.asarray(gt_class_ids, dtype=np.int64))
    boxes = torch.as_tensor(yxyx_to_xyxy(np.asarray(gt_boxes, dtype=np.float64).reshape(-1, 4)))
    truth = ground_truth_of_image(boxes, class_ids)
    per_image = int(config.RPN_TRAIN_ANCHORS_PER_IMAGE)
    std = torch.as_tensor(np.asarray(config.RPN_BBOX_STD_DEV, dtype=np.float64))
    generator = numpy_seeded_generator()
    anchors_xyxy = torch.as_tensor(yxyx_to_xyxy(np.asarray(anchors, dtype=np.float64)))
    targets = rpn_targets(anchors_xyxy, truth, per_image, std, generator=generator)
    labels = targets.labels[0].numpy()
    rpn_match = np.select([labels == 1, labels == 0], [1, -1], 0).astype(np.int32)
    positive = np.flatnonzero(rpn_match == 1)
    rpn_bbox = np.zeros((per_image, 4))
    # (dx, dy, dw, dh) -> Matterport's (dy, dx, log dh, log dw)
    rpn_bbox[: len(positive)] = targets.deltas[0, positive][:, [1, 0, 3, 2]].numpy()
    return rpn_match, rpn_bbox


def numpy_seeded_generator() -> torch.Generator:
    """A torch generator seeded from ``np.random``: Matterport's helpers drew with numpy, so
    ``np.random.seed`` keeps making the same draws in ours, which sample with torch."""
    return torch.Generator().manual_seed(int(np.random.randint(2**31 - 1)))


def ground_truth_of_image(
    boxes: torch.Tensor,
    class_ids: torch.Tensor,
    masks: torch.Tensor | None = None,
    mini_masks: bool = True,
) -> GroundTruth:
    """Training's :class:`GroundTruth` (a batch of one) of one image, as Matterport's numpy
    helpers take it, with one invalid padding row in each part, as training's batches always
    have (the matching reduces over that axis).

    Args:
        boxes: [G, 4] (x1, y1, x2, y2) molded-image pixels.
        class_ids: int64 [G]; negative ids mark crowd regions.
        masks: float 0/1 [G, h, w] (mini masks when ``mini_masks``), or None when no mask
            targets are wanted.
    """
    crowd = class_ids < 0

    def padded(rows: torch.Tensor, padding: torch.Tensor) -> torch.Tensor:
        return torch.cat([rows, padding])[None]

    no_box, no_flag = boxes.new_zeros(1, 4), torch.zeros(1, dtype=torch.bool)
    if masks is None:
        masks = torch.zeros(len(class_ids), 1, 1)
    return GroundTruth(
        boxes=padded(boxes[~crowd], no_box),
        class_ids=padded(class_ids[~crowd], class_ids.new_zeros(1)),
        masks=padded(masks[~crowd], masks.new_zeros(1, *masks.shape[1:])),
        crowd_boxes=padded(boxes[crowd], no_box),
        crowd_valid=padded(torch.ones(int(crowd.sum()), dtype=torch.bool), no_flag),
        mini_masks=mini_masks,
    )


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


def norm_yxyx(boxes_xyxy: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """(x1, y1, x2, y2) pixels -> Matterport's normalised (y1, x1, y2, x2)."""
    height, width = shape[:2]
    scale = np.array([height - 1, width - 1, height - 1, width - 1], dtype=np.float64)
    return ((xyxy_to_yxyx(np.asarray(boxes_xyxy, np.float64)) - [0, 0, 1, 1]) / scale).astype(
        np.float32
    )


def image_meta_of(meta_row: np.ndarray) -> ImageMeta:
    """This package's :class:`ImageMeta` from one Matterport image meta row."""
    parsed = parse_image_meta(np.asarray(meta_row)[None])
    original = tuple(int(v) for v in parsed["original_image_shape"][0][:2])
    y1, x1, y2, x2 = (int(v) for v in parsed["window"][0])
    resized = (y2 - y1, x2 - x1)
    scale = (resized[0] / original[0], resized[1] / original[1])
    return ImageMeta(original, resized, (x1, y1, x2, y2), scale)

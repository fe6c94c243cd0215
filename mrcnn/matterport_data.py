"""Matterport's ``load_image_gt``: one training sample as its data generator built it.

Named ``mrcnn.model.load_image_gt`` for Matterport's scripts; it sits above the network package
because it applies training's augmentation.
"""

from __future__ import annotations

import numpy as np

from mrcnn import utils
from mrcnn.model.matterport_api import compose_image_meta
from mrcnn.training.augment import apply_augmentation, to_sample
from mrcnn.training.imgaug_adapter import adapt_augmentation


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

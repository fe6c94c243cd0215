"""Matterport's ``load_image_gt`` and ``data_generator``: training samples as its data generator
built them, as numpy arrays in its layouts, for scripts and notebooks that look at them.

Named ``mrcnn.model.load_image_gt`` and ``mrcnn.model.data_generator`` for Matterport's scripts;
this module sits above the network package because it applies training's augmentation. Training
itself reads datasets through a PyTorch DataLoader (:mod:`mrcnn.training.data`); the targets
given here are made by the same functions it uses (:mod:`mrcnn.modeling.targets`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np
import torch

from mrcnn.compat import utils
from mrcnn.compat.api import (
    build_rpn_targets,
    compose_image_meta,
    ground_truth_of_image,
    mold_image,
    numpy_seeded_generator,
)
from mrcnn.datasets.failures import ImageFailure, failure_of
from mrcnn.modeling import targets as target_rules
from mrcnn.modeling.anchors import anchors_for_config
from mrcnn.structures.boxes import xyxy_to_yxyx, yxyx_to_xyxy
from mrcnn.training.augment import apply_augmentation, to_sample
from mrcnn.training.imgaug_adapter import adapt_augmentation

log = logging.getLogger(__name__)

#: Matterport's data_generator raised a loading error again once more than this many occurred.
MATTERPORT_MAX_ERRORS = 5


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


# ------------------------------------------------------------------------------------------------
# The data generator
# ------------------------------------------------------------------------------------------------
def data_generator(
    dataset,
    config,
    shuffle: bool = True,
    augment: bool = False,
    augmentation=None,
    random_rois: int = 0,
    batch_size: int = 1,
    detection_targets: bool = False,
    no_augmentation_sources=None,
) -> Iterator[tuple[list[np.ndarray], list[np.ndarray]]]:
    """Endless batches of training inputs and targets, as Matterport's generator yielded them.

    Images without instances are skipped; an image with more than MAX_GT_INSTANCES keeps a
    random MAX_GT_INSTANCES of them. Random draws follow ``np.random``'s seed.

    Args:
        augment, augmentation: as :func:`load_image_gt`; images of ``no_augmentation_sources``
            are not augmented.
        random_rois: also give this many random ROIs per image, most of them around the
            ground-truth boxes (in place of the RPN's proposals).
        detection_targets: with ``random_rois``, also sample TRAIN_ROIS_PER_IMAGE of them as
            training does and give their class, box and mask targets.
    Yields:
        (inputs, outputs). inputs: molded images float32 [B, H, W, 3], image metas [B,
        IMAGE_META_SIZE], rpn_match int32 [B, A, 1], rpn_bbox [B, RPN_TRAIN_ANCHORS_PER_IMAGE, 4]
        (see :func:`mrcnn.model.build_rpn_targets`), gt_class_ids int32 [B, MAX_GT_INSTANCES],
        gt_boxes int32 [B, MAX_GT_INSTANCES, 4] (y1, x1, y2, x2), gt_masks bool [B, h, w,
        MAX_GT_INSTANCES] (mini masks with USE_MINI_MASK); then, with ``random_rois``,
        rpn_rois int32 [B, random_rois, 4]; with ``detection_targets`` too, rois int32 [B, R, 4]
        (R = TRAIN_ROIS_PER_IMAGE, positives first, zero rows where fewer were sampled).
        outputs: [] or, with detection targets, class ids int32 [B, R, 1], box deltas float32
        [B, R, NUM_CLASSES, 4] (dy, dx, log dh, log dw) / BBOX_STD_DEV at each ROI's class, and
        mask targets float32 [B, R, MASK_SHAPE[0], MASK_SHAPE[1], NUM_CLASSES].
    Raises:
        ValueError: no image of the dataset has an instance, or the images of one batch mold
            to different sizes (use batch_size=1, or a fixed-size IMAGE_RESIZE_MODE).
    """
    image_ids = np.copy(dataset.image_ids)
    skip_sources = set(no_augmentation_sources or ())
    batch: list[dict] = []
    failures: list[ImageFailure] = []
    while True:
        if shuffle:
            np.random.shuffle(image_ids)
        found = False
        for sample in _samples_with_instances(
            dataset, config, image_ids, augment, augmentation, skip_sources, failures
        ):
            found = True
            batch.append(_sample_targets(sample, config, random_rois, detection_targets))
            if len(batch) == batch_size:
                yield _stacked(batch, config, random_rois, detection_targets)
                batch = []
        if not found:
            raise ValueError(
                f"no image of the dataset has an instance ({len(image_ids)} images): the data "
                "generator skips images without instances"
            )


def _samples_with_instances(
    dataset,
    config,
    image_ids: np.ndarray,
    augment: bool,
    augmentation,
    skip_sources: set,
    failures: list[ImageFailure],
) -> Iterator[tuple]:
    """The :func:`load_image_gt` sample of each image in ``image_ids`` order, loaded when asked
    for. Images without a positive class id (none annotated, only crowd regions, or all lost
    to augmentation or resizing) are passed over: they give no training targets.

    As Matterport's generator did, an image whose loading raises is logged ("Error processing
    image", here one line) and passed over, and the error is raised once more than
    :data:`MATTERPORT_MAX_ERRORS` have occurred (``failures`` keeps them across epochs).
    """
    for image_id in image_ids:
        source = dataset.image_info[image_id]["source"]
        augmenting = augmentation if source not in skip_sources else None
        try:
            sample = load_image_gt(
                dataset, config, image_id, augment, augmenting, config.USE_MINI_MASK
            )
        except Exception as error:
            failures.append(failure_of(dataset, image_id, "load_image_gt", error))
            log.warning("Error processing %s; passed over", failures[-1].describe())
            if len(failures) > MATTERPORT_MAX_ERRORS:
                raise
            continue
        if np.any(sample[2] > 0):
            yield sample


def _sample_targets(sample, config, random_rois: int, with_targets: bool) -> dict:
    """One image's inputs and targets, before padding (see :func:`data_generator`)."""
    image, meta, class_ids, boxes, masks = sample
    if len(class_ids) > config.MAX_GT_INSTANCES:
        keep = np.random.choice(len(class_ids), config.MAX_GT_INSTANCES, replace=False)
        class_ids, boxes, masks = class_ids[keep], boxes[keep], masks[:, :, keep]
    anchors, _ = anchors_for_config(config, image.shape[:2])
    rpn_match, rpn_bbox = build_rpn_targets(
        image.shape, xyxy_to_yxyx(anchors.numpy()), class_ids, boxes, config
    )
    out = {
        "image": mold_image(image, config),
        "meta": meta,
        "rpn_match": rpn_match[:, None],
        "rpn_bbox": rpn_bbox,
        "class_ids": class_ids,
        "boxes": boxes,
        "masks": masks,
    }
    if random_rois:
        out["rpn_rois"] = generate_random_rois(image.shape, random_rois, class_ids, boxes)
        if with_targets:
            targets = build_detection_targets(out["rpn_rois"], class_ids, boxes, masks, config)
            out.update(zip(("rois", "roi_class_ids", "deltas", "roi_masks"), targets, strict=True))
    return out


def generate_random_rois(
    image_shape, count: int, gt_class_ids: np.ndarray, gt_boxes: np.ndarray
) -> np.ndarray:
    """``count`` random ROIs in an image of ``image_shape``, int32 [count, 4] (y1, x1, y2, x2):
    nine in ten around the ground-truth boxes (each corner moved by up to the box's size, the
    boxes taking turns), the rest anywhere; each at least one pixel high and wide. Draws follow
    ``np.random``'s seed."""
    height, width = (int(v) for v in image_shape[:2])
    boxes = np.asarray(gt_boxes, np.float64).reshape(-1, 4)[np.asarray(gt_class_ids) > 0]
    around = int(count * 0.9) if len(boxes) else 0
    near = boxes[np.arange(around) % max(len(boxes), 1)]
    sides = np.tile(near[:, 2:] - near[:, :2], 2)  # (h, w, h, w)
    near = near + np.random.uniform(-1.0, 1.0, near.shape) * sides
    anywhere = np.random.uniform(0, [height, width, height, width], (count - around, 4))
    rois = np.concatenate([near, anywhere])
    limits = [height, width]
    start = np.clip(np.minimum(rois[:, :2], rois[:, 2:]), 0, np.subtract(limits, 1))
    end = np.clip(np.maximum(rois[:, :2], rois[:, 2:]), start + 1, limits)
    return np.round(np.concatenate([start, end], axis=1)).astype(np.int32)


def build_detection_targets(rpn_rois, gt_class_ids, gt_boxes, gt_masks, config):
    """The heads' training targets for one image's ROIs, by training's own sampling and rules
    (:func:`mrcnn.modeling.targets.detection_targets`), in Matterport's class-specific layout.

    Args:
        rpn_rois: int [N, 4] (y1, x1, y2, x2) molded-image pixels, e.g. from
            :func:`generate_random_rois`.
        gt_class_ids: int [G]; gt_boxes: int [G, 4] (y1, x1, y2, x2); gt_masks: bool
            [h, w, G], mini masks with USE_MINI_MASK (as :func:`load_image_gt` gives them).
    Returns:
        (rois int32 [R, 4], class ids int32 [R], deltas float32 [R, NUM_CLASSES, 4] (dy, dx,
        log dh, log dw) / BBOX_STD_DEV at each positive's class, masks float32 [R,
        MASK_SHAPE[0], MASK_SHAPE[1], NUM_CLASSES]); R = TRAIN_ROIS_PER_IMAGE, positives first,
        zero rows where fewer were sampled. Draws follow ``np.random``'s seed.
    """
    truth = ground_truth_of_image(
        torch.from_numpy(yxyx_to_xyxy(np.asarray(gt_boxes, np.float32).reshape(-1, 4))),
        torch.from_numpy(np.asarray(gt_class_ids, np.int64)),
        torch.from_numpy(np.asarray(gt_masks).transpose(2, 0, 1).astype(np.float32)),
        mini_masks=bool(config.USE_MINI_MASK),
    )
    generator = numpy_seeded_generator()
    targets = target_rules.detection_targets(
        torch.from_numpy(yxyx_to_xyxy(np.asarray(rpn_rois, np.float32))),
        torch.zeros(len(rpn_rois), dtype=torch.int64),
        truth,
        int(config.TRAIN_ROIS_PER_IMAGE),
        float(config.ROI_POSITIVE_RATIO),
        torch.as_tensor(np.asarray(config.BBOX_STD_DEV), dtype=torch.float32),
        (int(config.MASK_SHAPE[0]), int(config.MASK_SHAPE[1])),
        generator,
    )
    count, classes = int(config.TRAIN_ROIS_PER_IMAGE), int(config.NUM_CLASSES)
    sampled, positives = len(targets.class_ids), targets.num_positive
    class_ids = np.zeros(count, np.int32)
    class_ids[:sampled] = targets.class_ids.numpy()
    rois = np.zeros((count, 4), np.int32)
    rois[:sampled] = np.round(xyxy_to_yxyx(targets.rois.numpy()))
    deltas = np.zeros((count, classes, 4), np.float32)
    where = (np.arange(positives), class_ids[:positives])
    deltas[where] = targets.deltas[:positives, [1, 0, 3, 2]].numpy()  # -> (dy, dx, dh, dw)
    masks = np.zeros((count, *config.MASK_SHAPE[:2], classes), np.float32)
    masks[where[0], :, :, where[1]] = targets.masks.numpy()
    return rois, class_ids, deltas, masks


def _stacked(batch: list[dict], config, random_rois: int, with_targets: bool):
    """(inputs, outputs) of a batch, instances zero-padded to MAX_GT_INSTANCES."""
    shapes = {sample["image"].shape for sample in batch}
    if len(shapes) > 1:
        raise ValueError(
            f"the images of one batch mold to different sizes {sorted(shapes)}: use "
            "batch_size=1, or a fixed-size IMAGE_RESIZE_MODE such as 'square'"
        )
    inputs = _inputs(batch, int(config.MAX_GT_INSTANCES))
    if random_rois:
        inputs.append(np.stack([sample["rpn_rois"] for sample in batch]))
    if not (random_rois and with_targets):
        return inputs, []
    inputs.append(np.stack([sample["rois"] for sample in batch]))
    keys = ("roi_class_ids", "deltas", "roi_masks")
    outputs = [np.stack([sample[key] for sample in batch]) for key in keys]
    outputs[0] = outputs[0][..., None]  # [B, R, 1]: Keras wanted targets of its outputs' rank
    return inputs, outputs


def _inputs(batch: list[dict], limit: int) -> list[np.ndarray]:
    """The seven inputs every batch has, instances zero-padded to ``limit``."""
    class_ids = np.zeros((len(batch), limit), np.int32)
    boxes = np.zeros((len(batch), limit, 4), np.int32)
    masks = np.zeros((len(batch), *batch[0]["masks"].shape[:2], limit), bool)
    for b, sample in enumerate(batch):
        count = len(sample["class_ids"])
        class_ids[b, :count], boxes[b, :count] = sample["class_ids"], sample["boxes"]
        masks[b, :, :, :count] = sample["masks"]
    keys = ("image", "meta", "rpn_match", "rpn_bbox")
    stacked = [np.stack([sample[key] for sample in batch]) for key in keys]
    return [*stacked, class_ids, boxes, masks]

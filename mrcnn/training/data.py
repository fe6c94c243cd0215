"""Training data: load, augment and mold images and masks exactly as inference molds images.

:class:`TrainingSamples` is a ``torch.utils.data.Dataset`` over a prepared
:class:`mrcnn.dataset.Dataset`; :func:`collate` pads a list of samples into a :class:`Batch`;
:class:`EpochSampler` draws the images of each epoch (sharded across distributed ranks).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import Sampler

from mrcnn.datasets.failures import ImageFailure, call_loaders, failure_of
from mrcnn.modeling.targets import GroundTruth, mini_masks
from mrcnn.structures.image import apply_plan, mold_image, plan_for_config
from mrcnn.training.augment import apply_augmentation, boxes_from_masks, to_sample
from mrcnn.training.bad_images import REPLACEMENT_TRIES

#: The "method" of a failure after the loaders returned (see TrainingSamples._prepare).
PREPARING = "augmenting or molding its loaders' result"


@dataclass
class Batch:
    """A molded training batch.

    Attributes:
        images: [B, 3, H, W] molded images; windows: [B, 4] (x1, y1, x2, y2) of each image.
        gt: ground truth in molded-input pixels (see :class:`GroundTruth`).
        image_ids: int64 [B] dataset image ids (for error messages).
        failures: the loads that failed while drawing this batch (those images were replaced
            or, past :data:`~mrcnn.training.bad_images.REPLACEMENT_TRIES`, left out: B can be
            smaller than the batch size, even 0).
    """

    images: torch.Tensor
    windows: torch.Tensor
    gt: GroundTruth
    image_ids: torch.Tensor
    failures: list[ImageFailure] = field(default_factory=list)

    def to(self, device) -> Batch:
        return Batch(
            self.images.to(device, non_blocking=True),
            self.windows.to(device, non_blocking=True),
            self.gt.to(device),
            self.image_ids,
            self.failures,
        )

    def pin_memory(self) -> Batch:
        return Batch(self.images.pin_memory(), self.windows, self.gt, self.image_ids, self.failures)


class TrainingSamples(torch.utils.data.Dataset):
    """One molded image and its ground truth per item.

    An image whose ``load_image`` or ``load_mask`` raises is replaced by another image of the
    dataset (the same one for the same index, so validation stays comparable across epochs);
    the item's ``"failures"`` lists the failed loads, and after ``REPLACEMENT_TRIES`` of them
    the item has no image (``"image"`` None) and :func:`collate` leaves it out.

    Args:
        dataset: a prepared :class:`mrcnn.dataset.Dataset`.
        config: the training config (IMAGE_*, MEAN_PIXEL, USE_MINI_MASK, MAX_GT_INSTANCES...).
        augmentation: a torchvision.transforms.v2 transform (see :mod:`mrcnn.training.augment`)
            applied before molding, or None.
    """

    def __init__(self, dataset, config, augmentation: Callable | None = None) -> None:
        self.dataset = dataset
        self.config = config
        self.augmentation = augmentation

    def __len__(self) -> int:
        return len(self.dataset.image_ids)

    def __getitem__(self, index: int) -> dict:
        """dict of "image" [3, H, W] float32 molded, "window" [4], "boxes" [N, 4], "class_ids"
        int64 [N], "masks" [N, h, w] float 0/1 (mini masks or molded full masks),
        "crowd_boxes" [C, 4], "image_id" and "failures" (see the class docstring)."""
        failures: list[ImageFailure] = []
        for attempt in range(REPLACEMENT_TRIES):
            prepared = self._prepare(int(self.dataset.image_ids[index]))
            if not isinstance(prepared, ImageFailure):
                return prepared | {"failures": failures}
            failures.append(prepared)
            index = _replacement(index, attempt, len(self))
        return {"image": None, "failures": failures}

    def _prepare(self, image_id: int) -> dict | ImageFailure:
        """The molded sample of ``image_id``, or the :class:`ImageFailure` of its loaders or of
        what follows them: masks that do not fit the image, class ids of another length, or
        a user's augmentation failing on this image are this image's failure, not the run's."""
        loaded = call_loaders(self.dataset, image_id)
        if isinstance(loaded, ImageFailure):
            return loaded
        image, (masks, class_ids) = loaded
        try:
            limit = int(self.config.MAX_GT_INSTANCES)
            masks, class_ids = _limit_instances(np.asarray(masks), np.asarray(class_ids), limit)
            sample = apply_augmentation(self.augmentation, to_sample(image, masks, class_ids))
            return self._mold(sample, image_id)
        except Exception as error:
            return failure_of(self.dataset, image_id, PREPARING, error)

    def _mold(self, sample: dict, image_id: int) -> dict:
        cfg = self.config
        image = sample["image"].permute(1, 2, 0).numpy()
        plan = plan_for_config(image.shape[0], image.shape[1], cfg)
        molded = mold_image(image, cfg, plan, torch.float32, "cpu")
        masks = torch.as_tensor(sample["masks"]).to(torch.float32)
        if len(masks):
            masks = (apply_plan(masks, plan) >= 0.5).to(torch.float32)
        boxes = boxes_from_masks(masks)
        labels = torch.as_tensor(sample["labels"]).to(torch.int64)
        # Instances the resize, crop or augmentation wiped out are dropped.
        kept = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        masks, boxes, labels = masks[kept], boxes[kept], labels[kept]
        crowd = labels < 0
        masks, boxes, labels = masks[~crowd], boxes[~crowd], labels[~crowd]
        if cfg.USE_MINI_MASK:
            masks = mini_masks(masks, boxes, tuple(cfg.MINI_MASK_SHAPE))
        return {
            "image": molded,
            "window": torch.tensor(plan.meta().window, dtype=torch.float32),
            "boxes": boxes,
            "class_ids": labels,
            "masks": masks.to(torch.uint8),
            "crowd_boxes": boxes_from_masks(torch.as_tensor(sample["masks"])[kept][crowd])
            if crowd.any()
            else torch.zeros((0, 4)),
            "image_id": image_id,
            "mini": bool(cfg.USE_MINI_MASK),
        }


def _replacement(index: int, attempt: int, size: int) -> int:
    """The index tried after ``index`` failed on try ``attempt``: another one, pseudo-random but
    fixed for the pair (so an epoch's draws, and validation's images, do not depend on timing)."""
    if size < 2:
        return index
    return (index + 1 + int(np.random.default_rng([index, attempt]).integers(size - 1))) % size


def _limit_instances(masks: np.ndarray, class_ids: np.ndarray, limit: int):
    """Keep a random ``limit`` of the instances (MAX_GT_INSTANCES), crowd regions included."""
    if masks.shape[2] <= limit:
        return masks, class_ids
    keep = np.sort(np.random.default_rng().choice(masks.shape[2], limit, replace=False))
    return masks[:, :, keep], np.asarray(class_ids)[keep]


def collate(samples: list[dict]) -> Batch:
    """Stack samples, padding instances to the largest count (at least 1) and images to the
    largest size (bottom and right, zeros = the mean colour); the samples' failed loads go to
    ``Batch.failures`` and samples without an image are left out."""
    failures = [f for s in samples for f in s.get("failures", ())]
    samples = [s for s in samples if s["image"] is not None]
    if not samples:
        return _empty_batch(failures)
    count = max(1, max(len(s["class_ids"]) for s in samples))
    crowds = max(1, max(len(s["crowd_boxes"]) for s in samples))
    height = max(s["image"].shape[1] for s in samples)
    width = max(s["image"].shape[2] for s in samples)
    mask_shape = _mask_shape(samples, height, width)
    batch = len(samples)
    images = torch.zeros((batch, 3, height, width))
    boxes = torch.zeros((batch, count, 4))
    class_ids = torch.zeros((batch, count), dtype=torch.int64)
    masks = torch.zeros((batch, count, *mask_shape), dtype=torch.uint8)
    crowd_boxes = torch.zeros((batch, crowds, 4))
    crowd_valid = torch.zeros((batch, crowds), dtype=torch.bool)
    for i, s in enumerate(samples):
        n, c = len(s["class_ids"]), len(s["crowd_boxes"])
        images[i, :, : s["image"].shape[1], : s["image"].shape[2]] = s["image"]
        boxes[i, :n], class_ids[i, :n] = s["boxes"], s["class_ids"]
        masks[i, :n, : s["masks"].shape[1], : s["masks"].shape[2]] = s["masks"]
        crowd_boxes[i, :c], crowd_valid[i, :c] = s["crowd_boxes"], True
    gt = GroundTruth(boxes, class_ids, masks, crowd_boxes, crowd_valid, samples[0]["mini"])
    windows = torch.stack([s["window"] for s in samples])
    ids = torch.tensor([s["image_id"] for s in samples], dtype=torch.int64)
    return Batch(images, windows, gt, ids, failures)


def _empty_batch(failures: list[ImageFailure]) -> Batch:
    """A batch of no image: every image tried for it failed to load."""
    gt = GroundTruth(
        torch.zeros((0, 1, 4)),
        torch.zeros((0, 1), dtype=torch.int64),
        torch.zeros((0, 1, 1, 1), dtype=torch.uint8),
        torch.zeros((0, 1, 4)),
        torch.zeros((0, 1), dtype=torch.bool),
    )
    empty = torch.zeros(0, dtype=torch.int64)
    return Batch(torch.zeros((0, 3, 1, 1)), torch.zeros((0, 4)), gt, empty, failures)


def _mask_shape(samples: list[dict], height: int, width: int) -> tuple[int, int]:
    if samples[0]["mini"]:
        return tuple(samples[0]["masks"].shape[1:])  # [0, h, w] even without instances
    return (height, width)


class EpochSampler(Sampler[int]):
    """Indices of one epoch: ``steps * batch_size`` images per rank from a shuffled cycle.

    Each epoch draws a new permutation (seeded by ``seed`` and the epoch, so every rank agrees)
    and rank ``r`` of ``world`` takes every ``world``-th index starting at ``r``: the ranks see
    different images. Small datasets are cycled through as often as needed.
    """

    def __init__(
        self, size: int, samples_per_rank: int, rank: int = 0, world: int = 1, seed: int = 0
    ) -> None:
        if size < 1:
            raise ValueError("the dataset has no images")
        self.size, self.samples, self.rank, self.world, self.seed = (
            size,
            samples_per_rank,
            rank,
            world,
            seed,
        )
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.samples

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        needed = self.samples * self.world
        rounds = math.ceil(needed / self.size)
        order = torch.cat([torch.randperm(self.size, generator=generator) for _ in range(rounds)])
        return iter(order[self.rank : needed : self.world].tolist())

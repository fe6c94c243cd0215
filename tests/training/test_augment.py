"""Augmentation keeps image, masks and boxes consistent; molded training samples."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.transforms import v2

from mrcnn.training.augment import (
    RandomRotate90,
    apply_augmentation,
    boxes_from_masks,
    default_augmentation,
    to_sample,
)


def _sample():
    image = np.zeros((40, 60, 3), dtype=np.uint8)
    masks = np.zeros((40, 60, 1), dtype=bool)
    masks[5:15, 10:30, 0] = True
    image[masks[:, :, 0]] = 255
    return to_sample(image, masks, np.array([2]))


def test_rotate90_moves_image_masks_and_boxes_together():
    torch.manual_seed(0)
    for _ in range(8):
        out = RandomRotate90()(_sample())
        mask = out["masks"][0].bool()
        bright = out["image"][0] == 255
        assert torch.equal(mask, bright)
        torch.testing.assert_close(out["boxes"].float(), boxes_from_masks(out["masks"]))


def test_default_augmentation_is_consistent():
    torch.manual_seed(1)
    augment = default_augmentation(colour=0.0)
    placements = set()
    for _ in range(10):
        out = apply_augmentation(augment, _sample())
        mask = out["masks"][0].bool()
        assert mask.any()
        # Pixels inside the mask are bright, outside dark (up to interpolation at the edges).
        assert out["image"][0][mask].float().mean() > 200
        assert out["image"][0][~mask].float().mean() < 30
        assert out["labels"].tolist() == [2]
        placements.add((tuple(mask.shape), tuple(boxes_from_masks(out["masks"])[0].tolist())))
    # It really transforms: flips, quarter turns and zooms put the object in many places.
    assert len(placements) >= 3, placements
    assert {shape for shape, _ in placements} == {(40, 60), (60, 40)}, placements


def test_flip_keeps_boxes_on_masks():
    out = v2.RandomHorizontalFlip(p=1.0)(_sample())
    torch.testing.assert_close(out["boxes"].float(), torch.tensor([[30.0, 5.0, 50.0, 15.0]]))
    torch.testing.assert_close(boxes_from_masks(out["masks"]), torch.tensor([[30.0, 5, 50, 15]]))


def test_training_sample_is_molded_like_inference():
    from mrcnn.structures.image import mold_image, plan_for_config
    from mrcnn.training.data import TrainingSamples, collate
    from tests.helpers.training import config, shapes

    cfg = config(USE_MINI_MASK=False, MAX_GT_INSTANCES=1)
    dataset = shapes(3, size=48)
    item = TrainingSamples(dataset, cfg)[0]
    image = dataset.load_image(0)
    plan = plan_for_config(48, 48, cfg)
    torch.testing.assert_close(item["image"], mold_image(image, cfg, plan, torch.float32, "cpu"))
    assert item["masks"].shape == (1, 64, 64)  # MAX_GT_INSTANCES respected, molded size
    torch.testing.assert_close(item["boxes"], boxes_from_masks(item["masks"]))
    batch = collate([item, TrainingSamples(dataset, cfg)[1]])
    assert batch.images.shape == (2, 3, 64, 64) and batch.gt.boxes.shape[:2] == (2, 1)

"""Matterport's augmentation=: imgaug augmenters run on image and masks with one random draw,
masks moved only by geometric augmenters; without imgaug, a message naming the v2 equivalent.
imgaug does not install next to numpy 2, so a minimal imgaug-like module stands in for it."""

from __future__ import annotations

import sys
import types

import numpy as np
import pytest

import mrcnn.model as modellib
from mrcnn.config import Config
from mrcnn.training.augment import to_sample
from mrcnn.training.imgaug_adapter import ImgaugAugmentation, adapt_augmentation


class HooksImages:
    def __init__(self, activator=None):
        self.activator = activator

    def is_activated(self, images, augmenter, parents, default):
        return (
            default
            if self.activator is None
            else self.activator(images, augmenter, parents, default)
        )


def _fake_imgaug() -> types.ModuleType:
    module = types.ModuleType("imgaug")
    module.HooksImages = HooksImages
    return module


class Fliplr:
    """imgaug-like: flips with probability p; to_deterministic freezes one draw."""

    def __init__(self, p=0.5, rng=None, flip=None):
        self.p, self.rng, self.flip = p, rng or np.random.default_rng(0), flip

    def to_deterministic(self):
        return Fliplr(self.p, self.rng, bool(self.rng.random() < self.p))

    def augment_image(self, image, hooks=None):
        if hooks is not None and not hooks.is_activated([image], self, [], True):
            return image
        return image[:, ::-1] if self.flip else image


class Multiply(Fliplr):
    """imgaug-like colour augmenter: must never touch masks."""

    def to_deterministic(self):
        return Multiply(self.p, self.rng, 0.5)

    def augment_image(self, image, hooks=None):
        if hooks is not None and not hooks.is_activated([image], self, [], True):
            return image
        return (image * self.flip).astype(image.dtype)


class Sequential(Fliplr):
    def __init__(self, children):
        self.children = children

    def to_deterministic(self):
        return Sequential([c.to_deterministic() for c in self.children])

    def augment_image(self, image, hooks=None):
        if hooks is not None and not hooks.is_activated([image], self, [], True):
            return image
        for child in self.children:
            image = child.augment_image(image, hooks)
        return image


def _sample():
    image = np.zeros((6, 8, 3), np.uint8)
    image[:, :2] = 200  # left columns bright
    masks = np.zeros((6, 8, 2), bool)
    masks[1:3, 0:3, 0] = True
    masks[4:6, 5:8, 1] = True
    return image, masks, np.array([1, 2])


def _run(augmenter, module=None):
    image, masks, class_ids = _sample()
    out = ImgaugAugmentation(augmenter, module or _fake_imgaug())(
        to_sample(image, masks, class_ids)
    )
    return out["image"].permute(1, 2, 0).numpy(), out["masks"].permute(1, 2, 0).numpy().astype(bool)


def test_one_random_draw_moves_image_and_masks_together():
    augmenter = Fliplr(0.5, np.random.default_rng(3))
    flipped = 0
    for _ in range(20):
        image, masks = _run(augmenter)
        was_flipped = image[0, -1, 0] == 200
        flipped += was_flipped
        expected = _sample()[1][:, ::-1] if was_flipped else _sample()[1]
        np.testing.assert_array_equal(masks, expected)
    assert 0 < flipped < 20


def test_colour_augmenters_leave_masks_alone():
    image, masks = _run(Sequential([Multiply(), Fliplr(1.0)]))
    np.testing.assert_array_equal(masks, _sample()[1][:, ::-1])
    assert image[0, -1, 0] == 100  # multiplied and flipped


def test_adapt_leaves_v2_transforms_and_none_alone():
    from torchvision.transforms import v2

    flip = v2.RandomHorizontalFlip()
    assert adapt_augmentation(flip) is flip
    assert adapt_augmentation(None) is None


def test_adapt_wraps_imgaug_where_it_imports(monkeypatch):
    monkeypatch.setitem(sys.modules, "imgaug", _fake_imgaug())
    assert isinstance(adapt_augmentation(Fliplr()), ImgaugAugmentation)


def test_without_imgaug_the_message_names_the_v2_equivalent(monkeypatch):
    monkeypatch.setitem(sys.modules, "imgaug", None)  # import fails
    with pytest.raises(
        ValueError, match=r"Fliplr.*imgaug is not installed.*v2\.RandomHorizontalFlip"
    ) as caught:
        adapt_augmentation(Fliplr())
    assert "\n" not in str(caught.value)


def test_train_refuses_imgaug_without_imgaug_before_training(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "imgaug", None)
    cfg = Config.from_overrides({"NUM_CLASSES": 2, "BACKBONE": "resnet18", "DEVICE": "cpu"})
    model = modellib.MaskRCNN("training", cfg, tmp_path)
    with pytest.raises(ValueError, match="v2.RandomHorizontalFlip"):
        model.train(None, None, 0.001, 1, "heads", augmentation=Fliplr())
    assert not list(tmp_path.iterdir())


def test_load_image_gt_applies_an_imgaug_augmenter(monkeypatch):
    from tests.compat.test_methods import _two_boxes

    monkeypatch.setitem(sys.modules, "imgaug", _fake_imgaug())
    cfg = Config.from_overrides({"NUM_CLASSES": 3, "IMAGE_MIN_DIM": 96, "IMAGE_MAX_DIM": 128})
    *_, bbox, _ = modellib.load_image_gt(_two_boxes(), cfg, 0, augmentation=Fliplr(1.0))
    np.testing.assert_array_equal(bbox[0], [32, 128 - 40, 64, 128 - 8])

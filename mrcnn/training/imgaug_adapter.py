"""Matterport's ``augmentation=``: imgaug augmenters, run as a training transform.

Scripts written for Matterport pass an imgaug augmenter (``iaa.Fliplr(0.5)``, an
``iaa.Sometimes`` or ``iaa.Sequential`` of them). Where imgaug imports, :func:`adapt_augmentation`
wraps it so that each sample's image and masks get the same random draw, and masks are changed
only by geometric augmenters (:data:`MASK_AUGMENTERS`, the same rule as Matterport's
``load_image_gt``). Where imgaug is missing (it does not install next to numpy 2), the error names
the torchvision.transforms.v2 transform to use instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mrcnn.training.augment import to_sample

#: imgaug augmenters that also move mask pixels; the others (colour, blur, noise) change only
#: the image. Extend it for your own geometric augmenters.
MASK_AUGMENTERS = [
    "Sequential",
    "SomeOf",
    "OneOf",
    "Sometimes",
    "Fliplr",
    "Flipud",
    "CropAndPad",
    "Affine",
    "PiecewiseAffine",
]

#: The torchvision.transforms.v2 transform that does what an imgaug augmenter does.
V2_EQUIVALENTS = {
    "Fliplr": "v2.RandomHorizontalFlip(p)",
    "Flipud": "v2.RandomVerticalFlip(p)",
    "Affine": "v2.RandomAffine(degrees, translate, scale, shear)",
    "PiecewiseAffine": "v2.ElasticTransform()",
    "CropAndPad": "v2.RandomResizedCrop(size) or v2.Pad(padding)",
    "Crop": "v2.RandomCrop(size)",
    "Rot90": "mrcnn.training.augment.RandomRotate90()",
    "Multiply": "v2.ColorJitter(brightness=...)",
    "Add": "v2.ColorJitter(brightness=...)",
    "GaussianBlur": "v2.GaussianBlur(kernel_size, sigma)",
    "AdditiveGaussianNoise": "v2.GaussianNoise()",
    "Grayscale": "v2.RandomGrayscale(p)",
    "Sometimes": "v2.RandomApply([...], p)",
    "OneOf": "v2.RandomChoice([...])",
    "SomeOf": "v2.RandomChoice([...]) or v2.RandomOrder([...])",
    "Sequential": "v2.Compose([...])",
}


def is_imgaug_augmenter(augmentation: Any) -> bool:
    """Whether ``augmentation`` looks like an imgaug augmenter (rather than a v2 transform)."""
    return callable(getattr(augmentation, "to_deterministic", None)) and callable(
        getattr(augmentation, "augment_image", None)
    )


def adapt_augmentation(augmentation: Any) -> Callable[[dict], dict] | None:
    """The transform the trainer runs for a user's ``augmentation=``.

    A torchvision.transforms.v2 transform (or None) is returned as it is; an imgaug augmenter is
    wrapped in :class:`ImgaugAugmentation`.

    Raises:
        ValueError: an imgaug augmenter while imgaug is not installed, naming the v2 equivalent.
    """
    if augmentation is None or not is_imgaug_augmenter(augmentation):
        return augmentation
    try:
        import imgaug
    except ImportError:
        name = type(augmentation).__name__
        equivalent = V2_EQUIVALENTS.get(name, "a torchvision.transforms.v2 transform")
        raise ValueError(
            f"augmentation={name}(...) is an imgaug augmenter but imgaug is not installed "
            f"(it does not support numpy 2); use torchvision.transforms.v2 instead: {equivalent} "
            "(see mrcnn.training.augment.default_augmentation and docs/migrating.md)"
        ) from None
    return ImgaugAugmentation(augmentation, imgaug)


class ImgaugAugmentation:
    """An imgaug augmenter as a training transform (see :mod:`mrcnn.training.augment`).

    Each call freezes one random draw of the augmenter and applies it to the H x W x 3 image
    and to the H x W x N masks, letting only :data:`MASK_AUGMENTERS` act on the masks.
    """

    def __init__(self, augmenter: Any, imgaug_module: Any) -> None:
        self.augmenter = augmenter
        self.imgaug = imgaug_module

    def _moves_masks(self, images, augmenter, parents, default) -> bool:
        del images, parents, default  # imgaug's hook signature
        return type(augmenter).__name__ in MASK_AUGMENTERS

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        image = sample["image"].permute(1, 2, 0).numpy()  # H x W x 3 uint8
        masks = sample["masks"].permute(1, 2, 0).numpy().astype(np.uint8)  # H x W x N
        frozen = self.augmenter.to_deterministic()
        new_image = frozen.augment_image(image)
        hooks = self.imgaug.HooksImages(activator=self._moves_masks)
        new_masks = frozen.augment_image(masks, hooks=hooks) if masks.shape[2] else masks
        if new_image.shape != image.shape or new_masks.shape != masks.shape:
            raise ValueError(
                f"augmentation changed the image size ({image.shape} -> {new_image.shape}, "
                f"masks {masks.shape} -> {new_masks.shape}); augmenters must keep it "
                "(resize happens after augmentation)"
            )
        labels = sample["labels"].numpy()
        return to_sample(np.ascontiguousarray(new_image), new_masks.astype(bool), labels)

"""The images every backend's ``detect`` is given (PyTorch, ONNX Runtime, OpenVINO), checked
and made H x W x 3 uint8 RGB in one place, so that each says the same about a bad input."""

from __future__ import annotations

import numpy as np

from mrcnn.structures.image import to_rgb_uint8

__all__ = ["checked_image", "checked_images"]


def checked_images(images) -> list[np.ndarray]:
    """A non-empty list (or tuple) of images -> list of H x W x 3 uint8 RGB arrays
    (:func:`checked_image` each). Raises ValueError for one array, another type or an empty
    list, saying what to pass instead."""
    if isinstance(images, np.ndarray):
        raise ValueError("detect expects a list of images, got one array; use detect([image])")
    if not isinstance(images, (list, tuple)):
        raise ValueError(f"detect expects a list of images, got {type(images).__name__}")
    if len(images) == 0:
        raise ValueError("detect got an empty list of images")
    return [checked_image(image, index) for index, image in enumerate(images)]


def checked_image(image, index: int) -> np.ndarray:
    """Image ``index`` of a detect call: a uint8 numpy array, H x W (grey) or H x W x 1, 3 or
    4 (alpha dropped) -> H x W x 3 uint8 RGB. Raises ValueError naming the image's position
    and the problem (a non-array, another dtype, a bad shape, zero size)."""
    where = f"image {index}"
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{where}: expected a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise ValueError(
            f"{where}: dtype {image.dtype}, expected uint8 RGB in 0-255 (for floats in [0, 1] "
            "use (image * 255).round().astype(np.uint8))"
        )
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ValueError(f"{where}: shape {image.shape}, expected H x W or H x W x 1, 3 or 4")
    if image.size == 0:
        raise ValueError(f"{where}: zero-size image (shape {image.shape})")
    return to_rgb_uint8(image, where)

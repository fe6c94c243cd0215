"""Arrays as H x W x 3 uint8 RGB: :func:`to_rgb_uint8` converts what a decoder or a user gives,
and :func:`checked_images` checks the images every backend's ``detect`` is given (PyTorch, ONNX
Runtime, OpenVINO) in one place, so that each says the same about a bad input. numpy only: the
runtimes run without torch."""

from __future__ import annotations

import numpy as np

__all__ = ["checked_image", "checked_images", "to_rgb_uint8"]


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


def to_rgb_uint8(image: np.ndarray, where: str = "image") -> np.ndarray:
    """Convert an array to H x W x 3 uint8 RGB.

    Accepts H x W (grayscale), H x W x 1, H x W x 3, H x W x 4 (RGBA: alpha dropped), in uint8,
    uint16 (scaled by 1/257), bool, or float in [0, 1]. Raises ValueError naming ``where`` and the
    problem for anything else, or for a zero-size image.
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"{where}: expected a numpy array, got {type(image).__name__}")
    if image.size == 0 or 0 in image.shape[:2]:
        raise ValueError(f"{where}: image has zero size (shape {image.shape})")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"{where}: expected H x W, H x W x 1, H x W x 3 or H x W x 4, got shape {image.shape}"
        )
    if image.dtype == np.uint8:
        pass
    elif image.dtype == np.uint16:
        image = (image.astype(np.uint32) // 257).astype(np.uint8)
    elif image.dtype == np.bool_:
        image = image.astype(np.uint8) * 255
    elif np.issubdtype(image.dtype, np.floating):
        if image.min() < 0 or image.max() > 1:
            raise ValueError(
                f"{where}: float images must lie in [0, 1] "
                f"(found {image.min():g}..{image.max():g}); pass uint8 RGB"
            )
        image = np.round(image * 255).astype(np.uint8)
    else:
        raise ValueError(f"{where}: unsupported dtype {image.dtype}; pass uint8 RGB")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image)

"""mrcnn.structures.rgb: arrays made H x W x 3 uint8 RGB; what every backend's detect accepts."""

from __future__ import annotations

import re

import numpy as np
import pytest

from mrcnn.structures.rgb import checked_image, checked_images, to_rgb_uint8


def test_grey_and_alpha_become_rgb_and_rgb_stays_as_it_is():
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    grey, rgba = rgb[:, :, 0], np.dstack([rgb, np.full((2, 3), 7, np.uint8)])
    out = checked_images((rgb, grey, rgba, grey[:, :, None]))
    assert out[0] is rgb
    assert all(image.shape == (2, 3, 3) and image.dtype == np.uint8 for image in out)
    assert (out[1] == grey[:, :, None]).all() and (out[2] == rgb).all()
    assert (out[3] == out[1]).all()


@pytest.mark.parametrize(
    "images, needle",
    [
        (np.zeros((4, 4, 3), np.uint8), "got one array; use detect([image])"),
        ("photo.jpg", "list of images, got str"),
        ([], "empty list of images"),
    ],
)
def test_the_list_itself_is_checked(images, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        checked_images(images)


@pytest.mark.parametrize(
    "image, needle",
    [
        (np.zeros((4, 4, 3), np.float32), "image 2: dtype float32, expected uint8"),
        (np.zeros((4, 4, 2), np.uint8), "image 2: shape (4, 4, 2)"),
        (np.zeros((0, 4, 3), np.uint8), "image 2: zero-size image"),
        ([[1, 2]], "image 2: expected a numpy array, got list"),
    ],
)
def test_each_image_is_named_by_its_position(image, needle):
    with pytest.raises(ValueError) as info:
        checked_image(image, 2)
    assert needle in str(info.value)


def test_to_rgb_uint8_conversions():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    rgb = to_rgb_uint8(gray)
    assert rgb.shape == (3, 4, 3) and (rgb == gray[:, :, None]).all()
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[..., 0] = 7
    assert to_rgb_uint8(rgba).shape == (2, 2, 3) and to_rgb_uint8(rgba)[0, 0].tolist() == [7, 0, 0]
    assert to_rgb_uint8(np.full((2, 2), 65535, np.uint16)).max() == 255
    assert to_rgb_uint8(np.ones((2, 2, 1), bool)).min() == 255
    assert to_rgb_uint8(np.full((2, 2, 3), 0.5))[0, 0, 0] == 128


@pytest.mark.parametrize(
    "array, needle",
    [
        (np.zeros((0, 4, 3), np.uint8), "zero size"),
        (np.zeros((4, 4, 2), np.uint8), "shape (4, 4, 2)"),
        (np.zeros((2, 4, 4, 3), np.uint8), "shape (2, 4, 4, 3)"),
        (np.zeros((4, 4, 3), np.int64), "unsupported dtype int64"),
        (np.full((4, 4, 3), 2.0), "float images must lie in [0, 1]"),
    ],
)
def test_to_rgb_uint8_errors_name_the_image(array, needle):
    with pytest.raises(ValueError) as info:
        to_rgb_uint8(array, where="image 3")
    assert needle in str(info.value) and "image 3" in str(info.value)

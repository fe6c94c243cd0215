"""Batched inference equals per-image inference: ``detect([a, b])`` against ``detect([a])`` and
``detect([b])`` in every resize mode, for images of the same size and of different sizes.

Images that mold to different input sizes would be zero-padded to a common size in one batch,
which changes the features of the smaller one; ``detect`` therefore batches only images that
mold to the same input, and every result equals the image's single-image result.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrcnn.structures.image import mold_batch
from mrcnn.testing import photo_like_image
from tests.helpers.tiny_model import tiny_model

#: Config overrides of each resize mode ("crop" molds whole images at inference, like pad64).
MODES = {
    "square": {},
    "pad64": {},
    "none": {},
    "crop": {},
    "shortest_side": {"IMAGE_MIN_DIM": 96, "IMAGE_MAX_DIM": 160},
}
WIDE = photo_like_image(96, 128, seed=1)
OTHER_WIDE = photo_like_image(96, 128, seed=2)
SMALL = photo_like_image(96, 96, seed=3)  # fits inside WIDE after molding, in every mode
# Smaller than SMALL, but molds to SMALL's input in "pad64" and "shortest_side": the two share a
# batch there with different geometry (window, scale).
NEAR_SMALL = photo_like_image(90, 90, seed=5)


def _model(mode: str):
    torch.set_num_threads(1)
    return tiny_model(IMAGE_RESIZE_MODE=mode, IMAGES_PER_GPU=2, **MODES[mode])


def assert_same_detections(got: dict, expected: dict) -> None:
    assert len(expected["class_ids"]) > 0, "the tiny model should detect something"
    np.testing.assert_array_equal(got["class_ids"], expected["class_ids"])
    np.testing.assert_allclose(got["scores"], expected["scores"], atol=1e-4)
    np.testing.assert_allclose(got["boxes"], expected["boxes"], atol=0.1)
    assert got["masks"].shape == expected["masks"].shape
    assert (got["masks"] != expected["masks"]).mean() < 1e-3


@pytest.mark.parametrize("mode", MODES)
def test_same_size_batch_equals_one_image_at_a_time(mode):
    model = _model(mode)
    together = model.detect([WIDE, OTHER_WIDE])
    assert_same_detections(together[0], model.detect([WIDE])[0])
    assert_same_detections(together[1], model.detect([OTHER_WIDE])[0])


@pytest.mark.parametrize("mode", ["pad64", "none", "shortest_side"])
def test_mixed_size_batch_equals_one_image_at_a_time(mode):
    model = _model(mode)
    small_alone, wide_alone = (mold_batch([i], model.config)[0] for i in (SMALL, WIDE))
    assert small_alone.shape[-2:] != wide_alone.shape[-2:], "the two should mold differently"
    images = [SMALL, WIDE, NEAR_SMALL, OTHER_WIDE, SMALL]
    together = model.detect(images)
    for image, result in zip(images, together, strict=True):
        assert_same_detections(result, model.detect([image])[0])

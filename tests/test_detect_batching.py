"""Batched inference equals per-image inference: ``detect([a, b])`` against ``detect([a])`` and
``detect([b])`` in every resize mode.

Same-size images mold to the same input, so batching must not change any result. Mixed-size
images are zero-padded at the bottom and right to a common size (as torchvision does), which
changes the features of the smaller image; for them the test checks that the padding is the
only coupling: each image's result equals the network run on its own padded row, and the image
that fills the batch gets exactly its single-image result.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from _tiny_model import tiny_model

from mrcnn.image import mold_batch
from mrcnn.maskrcnn import _unmold_detections
from mrcnn.testing import photo_like_image

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
def test_mixed_size_batch_differs_only_by_the_padding(mode):
    model = _model(mode)
    together = model.detect([SMALL, WIDE])
    batch, metas = mold_batch([SMALL, WIDE], model.config)
    small_alone, wide_alone = (mold_batch([i], model.config)[0] for i in (SMALL, WIDE))
    assert batch.shape[-2:] == wide_alone.shape[-2:], "WIDE should fill the batch"
    assert small_alone.shape[-2:] != batch.shape[-2:], "SMALL should be padded"
    # The image that fills the batch sees exactly its own input: its single-image result.
    assert_same_detections(together[1], model.detect([WIDE])[0])
    # Each image equals the network run on its own padded row: nothing else couples them.
    windows = torch.tensor([m.window for m in metas], dtype=batch.dtype)
    with torch.inference_mode():
        for row, meta in enumerate(metas):
            found = model.net.eval()(batch[row : row + 1], windows[row : row + 1])
            alone = _unmold_detections(found, found["image_index"] == 0, meta)
            assert_same_detections(together[row], alone)

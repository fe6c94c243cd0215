"""BoxMasks (issue 12, huge images): the masks of detect kept box by box give the same pixels,
RLEs and splash as the dense [H, W, N] stack, without ever allocating one."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import torch
from pycocotools import mask as mask_utils

from mrcnn.evaluation import encode_masks
from mrcnn.splash.filter import color_splash
from mrcnn.structures import image as image_lib
from mrcnn.structures.masks import BoxMasks
from tests.helpers.tiny_model import tiny_model


def _random_box_masks(seed: int, height: int, width: int, count: int) -> BoxMasks:
    generator = torch.Generator().manual_seed(seed)
    soft = torch.rand((count, 14, 14), generator=generator)
    size = torch.tensor([width, height], dtype=torch.float32)
    corner = torch.rand((count, 2), generator=generator) * size * 1.2 - 0.1 * size
    extent = torch.rand((count, 2), generator=generator) * size
    return BoxMasks((height, width), soft, torch.cat([corner, corner + extent], dim=1))


@pytest.mark.parametrize("seed", range(40))
def test_rle_union_areas_match_the_dense_stack(seed):
    rng = np.random.default_rng(seed)
    height, width = (int(v) for v in rng.integers(1, 50, 2))
    masks = _random_box_masks(seed, height, width, int(rng.integers(0, 6)))
    dense = masks.to_dense()
    np.testing.assert_array_equal(
        dense, image_lib.paste_masks(masks.soft, masks.boxes, (height, width)).numpy()
    )
    for mine, ref in zip(masks.rle(), encode_masks(dense), strict=True):
        assert mine["counts"].decode() == ref["counts"] and list(mine["size"]) == ref["size"]
    np.testing.assert_array_equal(masks.union(), dense.any(axis=2))
    keep = rng.random(len(masks)) < 0.5
    np.testing.assert_array_equal(masks.union(keep), dense[:, :, keep].any(axis=2))
    np.testing.assert_array_equal(masks.areas(), dense.sum(axis=(0, 1)))


def test_full_height_runs_join_across_columns():
    patch_masks = BoxMasks((4, 3), torch.ones((1, 2, 2)), torch.tensor([[-3.0, -3.0, 7.0, 8.0]]))
    dense = patch_masks.to_dense()
    assert dense.all()
    assert (
        patch_masks.rle()[0]["counts"]
        == mask_utils.encode(np.asfortranarray(dense.astype(np.uint8)))[0]["counts"]
    )


def test_splash_of_box_masks_equals_the_dense_splash():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    masks = _random_box_masks(3, 60, 80, 5)
    for effect, feather in (("gray", 0), ("dim", 2.0), ("blur", 0)):
        np.testing.assert_array_equal(
            color_splash(image, masks, effect, feather=feather),
            color_splash(image, masks.to_dense(), effect, feather=feather),
        )


def test_nothing_image_sized_per_instance_is_allocated(monkeypatch):
    """RLEs, the splash and the preview of 100 instances on a 3-megapixel image never build the
    [H, W, N] stack (300 MB): the dense paths are poisoned, numpy's allocations traced."""
    from mrcnn.structures import masks as masks_module

    def dense(*args, **kwargs):
        raise AssertionError("a full [H, W, N] stack was built")

    monkeypatch.setattr(masks_module, "paste_masks", dense)
    monkeypatch.setattr(BoxMasks, "to_dense", dense)
    height, width, count = 1500, 2000, 100
    masks = _random_box_masks(1, height, width, count)
    image = np.zeros((height, width, 3), dtype=np.uint8)
    tracemalloc.start()
    try:
        encode_masks(masks)
        color_splash(image, masks, "gray", feather=2.0)
        masks.scaled((150, 200)).union()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # image-sized buffers (the splash, its float alpha) but nothing per instance
    assert peak < 0.25 * height * width * count, f"{peak / 1e6:.0f} MB traced"


def test_detect_boxes_format_matches_dense():
    model = tiny_model()
    image = np.random.default_rng(0).integers(0, 256, (90, 120, 3), dtype=np.uint8)
    dense = model.detect([image])[0]
    boxes = model.detect([image], mask_format="boxes")[0]
    assert isinstance(boxes["masks"], BoxMasks) and len(boxes["masks"]) == len(dense["scores"])
    np.testing.assert_array_equal(boxes["masks"].to_dense(), dense["masks"])
    np.testing.assert_array_equal(boxes["rois"], dense["rois"])
    with pytest.raises(ValueError, match="mask_format='sparse'"):
        model.detect([image], mask_format="sparse")


def test_large_images_are_molded_from_uint8_rows(monkeypatch):
    """The large-image molding (no full-size float copy) gives the network the same input."""
    model = tiny_model()
    image = np.random.default_rng(1).integers(0, 256, (300, 500, 3), dtype=np.uint8)
    plan = image_lib.plan_for_config(300, 500, model.config)
    usual = image_lib.mold_image(image, model.config, plan, torch.float32, "cpu")
    monkeypatch.setattr(image_lib, "LARGE_IMAGE_PIXELS", 100)
    rows_first = image_lib.mold_image(image, model.config, plan, torch.float32, "cpu")
    assert rows_first.shape == usual.shape
    torch.testing.assert_close(rows_first, usual, atol=1e-3, rtol=0)

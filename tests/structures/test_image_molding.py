"""Molding of large images (resized from uint8 rows, no full-size float copy) against the usual
path and against torch's own bilinear resize, for upscaling, downscaling and odd sizes."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mrcnn.structures.image as image_lib
from mrcnn.config import Config
from mrcnn.structures.resize_plan import ResizePlan, plan_for_config


def _config(**overrides) -> Config:
    values = {"NAME": "molding", "NUM_CLASSES": 2, "DEVICE": "cpu"}
    return Config.from_overrides({**values, **overrides})


@pytest.mark.parametrize(
    ("shape", "overrides"),
    [
        ((37, 53), {"IMAGE_MIN_DIM": 64, "IMAGE_MAX_DIM": 64}),  # upscaled, padded
        ((150, 61), {"IMAGE_MIN_DIM": 32, "IMAGE_MAX_DIM": 64}),  # downscaled, padded
        ((45, 30), {"IMAGE_RESIZE_MODE": "shortest_side", "IMAGE_MIN_DIM": 40}),
    ],
)
@pytest.mark.parametrize("std", [None, (50.0, 60.0, 70.0)])
def test_large_image_molding_equals_the_usual_path(monkeypatch, shape, overrides, std):
    cfg = _config(STD_PIXEL=std, MEAN_PIXEL=(100.0, 120.0, 140.0), **overrides)
    image = np.random.default_rng(2).integers(0, 256, (*shape, 3), dtype=np.uint8)
    plan = plan_for_config(shape[0], shape[1], cfg)
    assert plan.resized_shape != plan.original_shape
    usual = image_lib.mold_image(image, cfg, plan, torch.float32, "cpu")
    monkeypatch.setattr(image_lib, "LARGE_IMAGE_PIXELS", 10)
    from_rows = image_lib.mold_image(image, cfg, plan, torch.float32, "cpu")
    assert from_rows.shape == usual.shape == (3, *plan.output_shape)
    torch.testing.assert_close(from_rows, usual, atol=1e-3, rtol=0)  # float rounding


def test_large_image_molding_is_torch_bilinear_of_the_normalised_image(monkeypatch):
    cfg = _config(
        IMAGE_RESIZE_MODE="none", MEAN_PIXEL=(10.0, 20.0, 30.0), STD_PIXEL=(2.0, 4.0, 8.0)
    )
    image = np.random.default_rng(3).integers(0, 256, (33, 50, 3), dtype=np.uint8)
    # resized to 71 x 19 (up in y, down in x), then padded (top 1, bottom 2, left 3, right 4)
    plan = ResizePlan((33, 50), (71, 19), (1, 2, 3, 4))
    monkeypatch.setattr(image_lib, "LARGE_IMAGE_PIXELS", 10)
    molded = image_lib.mold_image(image, cfg, plan, torch.float64, "cpu")
    tensor = torch.from_numpy(image).permute(2, 0, 1).double()
    normalised = (tensor - torch.tensor([10.0, 20.0, 30.0]).view(3, 1, 1)) / torch.tensor(
        [2.0, 4.0, 8.0]
    ).view(3, 1, 1)
    expected = F.interpolate(normalised[None], (71, 19), mode="bilinear", align_corners=False)
    expected = F.pad(expected[0], (3, 4, 1, 2))
    assert molded.dtype == torch.float64 and molded.shape == (3, 74, 26)
    torch.testing.assert_close(molded, expected, atol=1e-3, rtol=0)


def test_apply_plan_crops_at_the_plans_offset_after_resizing():
    image = torch.arange(2 * 20 * 30, dtype=torch.float64).view(2, 20, 30)
    # resize 20 x 30 -> 40 x 60 (nearest: each pixel doubled), crop 10 x 12 at (y 3, x 5), pad
    plan = ResizePlan((20, 30), (40, 60), (1, 0, 0, 2), crop=(3, 5, 10, 12))
    out = image_lib.apply_plan(image, plan, mode="nearest")
    resized = image.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
    expected = F.pad(resized[:, 3:13, 5:17], (0, 2, 1, 0))
    assert out.shape == (2, *plan.output_shape) == (2, 11, 14)
    assert torch.equal(out, expected)


def test_matterport_flavour_molds_by_matterports_rule():
    # Matterport pads with zeros and then subtracts MEAN_PIXEL (its padding is -MEAN_PIXEL);
    # ours normalises first, so our padding is 0.
    image = np.random.default_rng(4).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    plan = ResizePlan((16, 24), (16, 24), (2, 0, 0, 3))  # 2 rows on top, 3 columns right
    mean = np.array([100.0, 110.0, 120.0])
    cfg = _config(NETWORK_FLAVOUR="matterport", MEAN_PIXEL=tuple(mean), IMAGE_RESIZE_MODE="none")
    molded = image_lib.mold_image(image, cfg, plan, torch.float64, "cpu")
    padded = np.pad(image.astype(np.float64), ((2, 0), (0, 3), (0, 0)))
    torch.testing.assert_close(molded, torch.from_numpy(padded - mean).permute(2, 0, 1))


def test_a_read_only_frame_is_molded_without_a_warning():
    image = np.random.default_rng(5).integers(0, 256, (16, 24, 3), dtype=np.uint8)
    image.flags.writeable = False  # as a decoded video frame can be
    plan = ResizePlan((16, 24), (16, 24), (0, 0, 0, 0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch.from_numpy warns on a read-only array
        molded = image_lib.mold_image(image, _config(), plan, torch.float32, "cpu")
    assert molded.shape == (3, 16, 24)


def test_pasted_patches_default_threshold_is_one_half():
    boxes = torch.tensor([[4.0, 4.0, 20.0, 20.0]])
    for value, inside in ((0.6, True), (0.4, False)):
        masks = torch.full((1, 8, 8), value)
        [(index, top, left, patch)] = image_lib.pasted_patches(masks, boxes, (24, 24))
        assert index == 0 and bool(patch[4:12, 4:12].all()) is inside


@pytest.mark.parametrize(
    "box",
    [[-40.0, 4.0, -20.0, 20.0], [4.0, -40.0, 20.0, -20.0], [30.0, 4.0, 50.0, 20.0]],
    ids=["left of the image", "above it", "right of it"],
)
def test_a_box_outside_the_image_yields_no_patch(box):
    masks = torch.ones((2, 8, 8))
    boxes = torch.tensor([box, [4.0, 4.0, 20.0, 20.0]])
    patches = list(image_lib.pasted_patches(masks, boxes, (24, 24)))
    assert [index for index, *_ in patches] == [1]


def test_only_shortest_side_batches_are_padded_to_a_multiple_of_32():
    images = [np.zeros((40, 50, 3), dtype=np.uint8), np.zeros((45, 30, 3), dtype=np.uint8)]
    cfg = _config(IMAGE_RESIZE_MODE="shortest_side", IMAGE_MIN_DIM=40, IMAGE_MAX_DIM=100)
    batch, _ = image_lib.mold_batch(images, cfg)
    assert batch.shape == (2, 3, 64, 64)  # the largest, 60 x 50, rounded up
    batch, _ = image_lib.mold_batch(images, _config(IMAGE_RESIZE_MODE="none"))
    assert batch.shape == (2, 3, 45, 50)  # the largest of each side, not rounded


@pytest.mark.parametrize(
    ("overrides", "groups"),
    [
        # 64 x 64 square inputs for all (the smaller images are scaled up)
        ({"IMAGE_MIN_DIM": 64, "IMAGE_MAX_DIM": 64}, [[0, 1, 2, 3, 4]]),
        # pad64 with the shorter side scaled up to 64: 40 x 50 -> 64 x 80 and 40 x 70 -> 64 x 112
        # pad to 64 x 128; 45 x 30 -> 96 x 64 and 70 x 50 -> 90 x 64 pad to 128 x 64
        ({"IMAGE_RESIZE_MODE": "pad64", "IMAGE_MIN_DIM": 64}, [[0, 3, 4], [1, 2]]),
        # none: each size is its own input
        ({"IMAGE_RESIZE_MODE": "none"}, [[0, 4], [1], [2], [3]]),
        # shortest_side 40 (max 100): 40 x 50 -> 64 x 64, 45 x 30 -> 60 x 40 -> 64 x 64,
        # 70 x 50 -> 56 x 40 -> 64 x 64, 40 x 70 -> 64 x 96
        (
            {"IMAGE_RESIZE_MODE": "shortest_side", "IMAGE_MIN_DIM": 40, "IMAGE_MAX_DIM": 100},
            [[0, 1, 2, 4], [3]],
        ),
    ],
)
def test_images_are_grouped_by_the_input_each_molds_to_alone(overrides, groups):
    shapes = [(40, 50), (45, 30), (70, 50), (40, 70), (40, 50)]
    images = [np.zeros((*shape, 3), dtype=np.uint8) for shape in shapes]
    cfg = _config(**overrides)
    assert image_lib.same_input_groups(images, cfg) == groups
    for group in groups:  # each group is one input size: a batch of it pads nothing
        alone = {image_lib.mold_batch([images[i]], cfg)[0].shape[-2:] for i in group}
        assert len(alone) == 1
        assert image_lib.mold_batch([images[i] for i in group], cfg)[0].shape[-2:] in alone


def test_crop_mode_molds_whole_images_as_pad64_at_inference():
    image = np.zeros((70, 50, 3), dtype=np.uint8)
    crop_cfg = _config(IMAGE_RESIZE_MODE="crop", IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=128)
    crop = image_lib.inference_plan(70, 50, crop_cfg)
    pad64 = image_lib.inference_plan(70, 50, _config(IMAGE_RESIZE_MODE="pad64", IMAGE_MIN_DIM=64))
    assert crop == pad64 and crop.crop is None and crop.resized_shape == (90, 64)
    batch, metas = image_lib.mold_batch([image], crop_cfg)
    assert batch.shape == (1, 3, 128, 64) and metas[0].crop is None

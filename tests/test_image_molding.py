"""Molding of large images (resized from uint8 rows, no full-size float copy) against the usual
path and against torch's own bilinear resize, for upscaling, downscaling and odd sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import mrcnn.image as image_lib
from mrcnn.config import Config
from mrcnn.resize_plan import ResizePlan, plan_for_config


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


def test_pasted_mask_pixels_exactly_at_the_threshold_stay_out():
    # a constant mask interpolates to exactly its value inside the box: "above the threshold"
    # is strict, so 0.5 is background at threshold 0.5 and foreground just above it
    boxes = torch.tensor([[4.0, 4.0, 20.0, 20.0]])
    at = image_lib.paste_masks(torch.full((1, 8, 8), 0.5), boxes, (24, 24), threshold=0.5)
    assert not at.any()
    above = image_lib.paste_masks(torch.full((1, 8, 8), 0.5), boxes, (24, 24), threshold=0.4999)
    assert above[8:16, 8:16, 0].all() and not above[0, 0, 0]

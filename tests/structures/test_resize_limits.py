"""Images that a config would mold into an enormous network input are refused in one line
(issue 31): a thin strip whose short side "pad64" or "crop" scales up to IMAGE_MIN_DIM."""

from __future__ import annotations

import numpy as np
import pytest

from mrcnn.structures import image as image_module
from mrcnn.structures.resize_plan import InputSizeError, plan_resize
from tests.helpers.tiny_model import tiny_model


@pytest.mark.parametrize("mode", ["pad64", "crop"])
@pytest.mark.parametrize("shape", [(1, 4000), (3000, 2)])
def test_a_thin_strip_scaled_up_is_refused_in_one_line(mode, shape):
    with pytest.raises(InputSizeError) as error:
        plan_resize(*shape, mode, 800, 1024, rng=np.random.default_rng(0))
    message = str(error.value)
    assert "\n" not in message
    assert f"{shape[0]}x{shape[1]} pixels" in message and repr(mode) in message
    assert "IMAGE_RESIZE_MODE=square or shortest_side" in message


@pytest.mark.parametrize(
    "shape, mode, min_scale",
    [
        ((4000, 6000), "pad64", 0),  # a large photo that is not scaled up: the user's size
        ((1040, 1388), "pad64", 2.0),  # IMAGE_MIN_SCALE (the nucleus sample's) is the user's wish
        ((300, 1500), "pad64", 0),  # scaled up 2.7x, within 4 x 1024^2 pixels
        ((1, 4000), "square", 0),  # square and shortest_side bound the long side
        ((1, 4000), "shortest_side", 0),
    ],
)
def test_sizes_the_user_chose_or_the_mode_bounds_are_planned(shape, mode, min_scale):
    plan = plan_resize(*shape, mode, 800, 1024, min_scale)
    assert plan.output_shape[0] >= 1


def test_detect_refuses_a_thin_image_before_molding_it(monkeypatch):
    model = tiny_model(IMAGE_RESIZE_MODE="pad64", IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=128)

    def never(*args, **kwargs):
        raise AssertionError("an oversized image reached molding")

    monkeypatch.setattr(image_module, "mold_image", never)  # nothing big is ever allocated
    thin = np.zeros((2, 3000, 3), np.uint8)
    with pytest.raises(
        InputSizeError, match=r"^an image of 2x3000 pixels would become a 64x96000 "
    ):
        model.detect([thin])

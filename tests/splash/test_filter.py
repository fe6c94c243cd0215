"""The color splash filter: effects, feathering, instance selection, output naming."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mrcnn.outputs import OutputError
from mrcnn.splash.filter import color_splash, encode_image, free_output_path, splash_output_path

H, W = 60, 80
NAMES = ["BG", "balloon", "person"]


def _scene():
    """A colourful image (R, G, B all different) and two instance masks [H, W, 2]."""
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    masks = np.zeros((H, W, 2), dtype=bool)
    masks[10:30, 10:30, 0] = True
    masks[35:55, 45:75, 1] = True
    return image, masks


def test_gray_keeps_inside_and_grays_outside():
    image, masks = _scene()
    out = color_splash(image, masks)
    inside = masks.any(axis=2)
    assert out.dtype == np.uint8 and out.shape == image.shape
    np.testing.assert_array_equal(out[inside], image[inside])
    outside = out[~inside]
    assert (outside[:, 0] == outside[:, 1]).all() and (outside[:, 1] == outside[:, 2]).all()
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    np.testing.assert_array_equal(outside[:, 0], gray[~inside])


def test_no_masks_gives_a_fully_gray_image():
    image, _ = _scene()
    for masks in (None, np.zeros((H, W, 0), dtype=bool)):
        out = color_splash(image, masks)
        assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


def test_blur_effect_is_opencv_gaussian_blur_outside():
    image, masks = _scene()
    inside = masks.any(axis=2)
    out = color_splash(image, masks, "blur", blur_sigma=3)
    np.testing.assert_array_equal(out[inside], image[inside])
    blurred = cv2.GaussianBlur(image, (0, 0), 3)
    np.testing.assert_array_equal(out[~inside], blurred[~inside])
    assert (out[~inside] != image[~inside]).any()


def test_color_and_dim_effects():
    image, masks = _scene()
    inside = masks.any(axis=2)
    out = color_splash(image, masks, "color", background_color=(0, 255, 0))
    np.testing.assert_array_equal(out[inside], image[inside])
    assert (out[~inside] == [0, 255, 0]).all()
    dim = color_splash(image, masks, "dim", dim_factor=0.5)
    np.testing.assert_array_equal(dim[inside], image[inside])
    before, after = image[~inside].astype(int), dim[~inside].astype(int)
    assert (after <= before).all() and after.sum() < 0.6 * before.sum()
    np.testing.assert_allclose(after, before * 0.5, atol=1)


def test_feathering_blends_only_near_edges():
    image, masks = _scene()
    sigma = 2.0
    hard = color_splash(image, masks)
    soft = color_splash(image, masks, feather=sigma)
    inside = masks.any(axis=2).astype(np.uint8)
    # pixels farther than 4 sigma (+1) from the mask boundary are untouched by feathering
    far_in = cv2.erode(inside, np.ones((19, 19), np.uint8)).astype(bool)
    far_out = ~cv2.dilate(inside, np.ones((19, 19), np.uint8)).astype(bool)
    np.testing.assert_array_equal(soft[far_in], image[far_in])
    np.testing.assert_array_equal(soft[far_out], hard[far_out])
    changed = (soft != hard).any(axis=2)
    assert changed.any()
    assert not changed[far_in | far_out].any()
    # intermediate values: between the gray and the original pixel
    gray = color_splash(image, None)
    lo = np.minimum(gray, image).astype(int) - 1
    hi = np.maximum(gray, image).astype(int) + 1
    partial = (soft != image).any(axis=2) & (soft != gray).any(axis=2)
    assert partial.any()
    assert ((soft >= lo) & (soft <= hi)).all()


def test_select_by_class_name_id_and_score():
    image, masks = _scene()
    class_ids = np.array([1, 2])
    scores = np.array([0.9, 0.6])
    first, second = masks[:, :, 0], masks[:, :, 1]

    def kept(**kwargs) -> tuple[bool, bool]:
        out = color_splash(image, masks, class_ids=class_ids, scores=scores, **kwargs)
        return bool((out[first] == image[first]).all()), bool((out[second] == image[second]).all())

    assert kept() == (True, True)
    assert kept(classes=["balloon"], class_names=NAMES) == (True, False)
    assert kept(classes=[2]) == (False, True)
    assert kept(min_score=0.7) == (True, False)
    assert kept(classes=["person"], class_names=NAMES, min_score=0.7) == (False, False)


def test_selection_errors_are_clear():
    image, masks = _scene()
    with pytest.raises(ValueError, match="pass class_ids"):
        color_splash(image, masks, classes=["balloon"])
    with pytest.raises(ValueError, match="unknown class 'cat'; the classes are: balloon, person"):
        color_splash(image, masks, class_ids=[1, 2], class_names=NAMES, classes=["cat"])
    with pytest.raises(ValueError, match="pass scores"):
        color_splash(image, masks, min_score=0.5)
    with pytest.raises(ValueError, match="effect='sepia'"):
        color_splash(image, masks, "sepia")
    with pytest.raises(ValueError, match="masks shape"):
        color_splash(image, masks[:10])
    with pytest.raises(ValueError, match="uint8"):
        color_splash(image.astype(np.float32), masks)


def test_output_names_never_overwrite(tmp_path):
    first = splash_output_path("photos/cat.jpg", tmp_path)
    assert first == tmp_path / "cat_splash.png" and first.exists()
    second = splash_output_path("photos/cat.jpg", tmp_path)
    assert second == tmp_path / "cat_splash_1.png"
    assert splash_output_path("clip.avi", tmp_path) == tmp_path / "clip_splash.mp4"
    assert free_output_path(first, overwrite=True) == first
    assert splash_output_path("x.jpg", tmp_path / "custom.jpg") == tmp_path / "custom.jpg"
    assert splash_output_path("cam.ts", tmp_path, video=True) == tmp_path / "cam_splash.mp4"


def test_output_names_of_the_wrong_kind_are_refused_before_reserving(tmp_path):
    with pytest.raises(OutputError, match="the splash of video clip.mp4 is a video"):
        splash_output_path("clip.mp4", tmp_path / "still.png")
    with pytest.raises(OutputError, match="the splash of video cam.ts is a video"):
        splash_output_path("cam.ts", tmp_path / "still.jpg", video=True)
    with pytest.raises(OutputError, match="the splash of image cat.jpg is an image"):
        splash_output_path("cat.jpg", tmp_path / "cat.mp4")
    assert not any(tmp_path.iterdir())


def test_encode_image_names_an_extension_opencv_cannot_write():
    with pytest.raises(ValueError, match="out.xyz: OpenCV cannot write .xyz images"):
        encode_image(np.zeros((4, 4, 3), np.uint8), ".xyz", where="out.xyz")

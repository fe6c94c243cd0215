"""MaskRCNN.detect: input checks, conversions, batching and the result format."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrcnn.config import Config
from mrcnn.model import MaskRCNN


class DetectConfig(Config):
    NAME = "detect"
    BACKBONE = "resnet50"
    NUM_CLASSES = 3
    IMAGES_PER_GPU = 2
    FPN_CLASSIF_FC_LAYERS_SIZE = 16
    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = 32
    IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    PRE_NMS_LIMIT = 300
    POST_NMS_ROIS_INFERENCE = 30
    DETECTION_MIN_CONFIDENCE = 0.0
    DETECTION_CLASS_MODE = "all_classes"
    DETECTION_MAX_INSTANCES = 5
    DEVICE = "cpu"


def random_image(shape, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape).astype(np.uint8)


IMAGES = [random_image((50, 40, 3), 0), random_image((64, 64, 3), 1), random_image((30, 90, 3), 2)]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return MaskRCNN("inference", DetectConfig(), model_dir="unused")


@pytest.fixture(scope="module")
def batched(model):
    """detect on 3 images of different sizes with IMAGES_PER_GPU = 2, and the batch sizes."""
    sizes = []
    hook = model.net.register_forward_pre_hook(lambda _, args: sizes.append(len(args[0])))
    try:
        results = model.detect(IMAGES)
    finally:
        hook.remove()
    return results, sizes


# ------------------------------------------------------------------ bad inputs
def test_empty_list(model):
    with pytest.raises(ValueError, match="empty list"):
        model.detect([])


def test_single_array_instead_of_a_list(model):
    with pytest.raises(ValueError, match=r"list of images, got one array.*detect\(\[image\]\)"):
        model.detect(IMAGES[0])


def test_not_a_list(model):
    with pytest.raises(ValueError, match="list of images, got str"):
        model.detect("image.jpg")


@pytest.mark.parametrize(
    "bad, needles",
    [
        (np.zeros((20, 20, 3), np.float32), ["dtype float32", "uint8"]),
        (np.zeros((20, 20, 3), np.int64), ["dtype int64", "uint8"]),
        (np.zeros((20, 20, 2), np.uint8), ["shape (20, 20, 2)"]),
        (np.zeros((1, 20, 20, 3), np.uint8), ["shape (1, 20, 20, 3)"]),
        (np.zeros((0, 20, 3), np.uint8), ["zero-size", "(0, 20, 3)"]),
        (np.zeros((20, 0), np.uint8), ["zero-size", "(20, 0)"]),
        ([[1, 2], [3, 4]], ["expected a numpy array", "list"]),
    ],
)
def test_bad_image_names_the_problem_and_the_index(model, bad, needles):
    with pytest.raises(ValueError) as info:
        model.detect([IMAGES[0], bad])
    message = str(info.value)
    assert "image 1" in message
    for needle in needles:
        assert needle in message


# ------------------------------------------------------------------ conversions
def test_grayscale_and_rgba_are_accepted(model):
    gray = random_image((45, 35), 3)
    rgba = random_image((40, 60, 4), 4)
    model.net.train()  # detect switches to eval and restores the mode
    try:
        results = model.detect([gray, rgba])
        assert model.net.training
    finally:
        model.net.eval()
    assert len(results) == 2
    assert results[0]["masks"].shape[:2] == (45, 35)
    assert results[1]["masks"].shape[:2] == (40, 60)
    assert len(results[0]["class_ids"]) > 0


# ------------------------------------------------------------------ batching and results
def test_batching_gives_one_result_per_image(batched):
    results, sizes = batched
    assert sizes == [2, 1]
    assert len(results) == 3
    for image, result in zip(IMAGES, results, strict=True):
        assert result["masks"].shape[:2] == image.shape[:2]


def test_result_types_and_shapes(batched):
    results, _ = batched
    for image, r in zip(IMAGES, results, strict=True):
        n = len(r["class_ids"])
        assert 0 < n <= DetectConfig.DETECTION_MAX_INSTANCES
        assert set(r) == {"rois", "boxes", "class_ids", "scores", "masks"}
        assert r["rois"].dtype == np.int32 and r["rois"].shape == (n, 4)
        assert r["boxes"].dtype == np.float32 and r["boxes"].shape == (n, 4)
        assert r["class_ids"].dtype == np.int32 and r["class_ids"].shape == (n,)
        assert r["scores"].dtype == np.float32 and r["scores"].shape == (n,)
        assert r["masks"].dtype == bool and r["masks"].shape == (*image.shape[:2], n)
        assert (r["class_ids"] > 0).all() and (r["class_ids"] < DetectConfig.NUM_CLASSES).all()
        assert (np.diff(r["scores"]) <= 0).all()
        # rois are the rounded boxes in (y1, x1, y2, x2) order
        np.testing.assert_array_equal(r["rois"], np.round(r["boxes"][:, [1, 0, 3, 2]]))
        h, w = image.shape[:2]
        assert (r["boxes"] >= 0).all()
        assert (r["boxes"][:, [0, 2]] <= w).all() and (r["boxes"][:, [1, 3]] <= h).all()
        assert (r["boxes"][:, 2:] >= r["boxes"][:, :2]).all()


def test_no_proposal_gives_no_instances(model, monkeypatch):
    """A network that keeps no proposal (random weights can propose only degenerate boxes,
    which `mrcnn detect --weights none` met on a balloon photo) finds nothing, without error."""
    propose = model.net.proposals

    def none_kept(*args, **kwargs):
        return tuple(t[:0] for t in propose(*args, **kwargs))

    monkeypatch.setattr(model.net, "proposals", none_kept)
    results = model.detect(IMAGES[:2])
    for image, r in zip(IMAGES[:2], results, strict=True):
        assert r["rois"].shape == (0, 4) and r["class_ids"].shape == (0,)
        assert r["scores"].shape == (0,) and r["masks"].shape == (*image.shape[:2], 0)


def test_masks_lie_around_their_boxes(batched):
    results, _ = batched
    for r in results:
        for i in range(len(r["class_ids"])):
            ys, xs = np.nonzero(r["masks"][..., i])
            if len(ys) == 0:
                continue
            x1, y1, x2, y2 = r["boxes"][i]
            # the pasted mask covers at most the box widened by (28 + 2) / 28 plus a pixel
            margin_x = (x2 - x1) / 28 + 1.5
            margin_y = (y2 - y1) / 28 + 1.5
            assert xs.min() >= x1 - margin_x and xs.max() <= x2 + margin_x
            assert ys.min() >= y1 - margin_y and ys.max() <= y2 + margin_y


def test_verbose_prints_one_line_per_image(model, capsys):
    model.detect([IMAGES[0]], verbose=1)
    out = capsys.readouterr().out
    assert "image 0: 40x50" in out and "instances" in out

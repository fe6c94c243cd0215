"""mrcnn.utils against Matterport's numpy utils (values in matterport_utils/expected.npz, made by
matterport_utils/make_expected.py from Matterport's own code) and hand-worked values."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from mrcnn import utils
from mrcnn.compat import utils as compat_utils  # where the functions read their globals
from mrcnn.weights.loading import WeightsError
from tests.helpers.paths import FIXTURES

EXPECTED = np.load(FIXTURES / "matterport_utils_expected.npz")


def _gt_and_pred():
    e = EXPECTED
    masks, masks_b = e["masks"], e["masks_b"]
    gt_masks = masks[:, :, :3]
    pred_masks = np.concatenate([masks_b, masks[:, :, :2]], axis=2)
    return (
        utils.extract_bboxes(gt_masks),
        e["ap_gt_class_ids"],
        gt_masks,
        utils.extract_bboxes(pred_masks),
        e["ap_pred_class_ids"],
        e["ap_pred_scores"],
        pred_masks,
    )


def test_extract_bboxes_matches_matterport_including_an_empty_mask():
    boxes = utils.extract_bboxes(EXPECTED["masks"])
    assert boxes.dtype == np.int32
    np.testing.assert_array_equal(boxes, EXPECTED["extract_bboxes"])
    np.testing.assert_array_equal(boxes[3], [0, 0, 0, 0])


def test_extract_bboxes_hand_worked():
    mask = np.zeros((5, 6, 1), dtype=bool)
    mask[1:3, 2:5, 0] = True
    np.testing.assert_array_equal(utils.extract_bboxes(mask), [[1, 2, 3, 5]])


def test_box_overlaps_match_matterport():
    e = EXPECTED
    a, b = e["boxes_a"], e["boxes_b"]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    np.testing.assert_allclose(utils.compute_iou(a[0], b, area_a[0], area_b), e["compute_iou"])
    np.testing.assert_allclose(utils.compute_overlaps(a, b), e["compute_overlaps"], rtol=1e-6)
    np.testing.assert_allclose(
        utils.compute_overlaps_masks(e["masks"][:, :, :3], e["masks_b"]),
        e["compute_overlaps_masks"],
        rtol=1e-6,
    )


def test_compute_iou_hand_worked():
    # 10x10 box against one shifted by 5 along x: intersection 50, union 150.
    iou = utils.compute_iou(
        np.array([0, 0, 10, 10]), np.array([[0, 5, 10, 15]]), 100, np.array([100])
    )
    np.testing.assert_allclose(iou, [1 / 3])


def test_non_max_suppression_matches_matterport():
    e = EXPECTED
    keep = utils.non_max_suppression(e["nms_boxes"], e["nms_scores"], 0.3)
    assert keep.dtype == np.int32
    np.testing.assert_array_equal(keep, e["non_max_suppression"])


def test_non_max_suppression_hand_worked():
    # Box 1 overlaps box 0 (the best) with IoU exactly 0.5: kept, as only IoU > threshold
    # suppresses; box 2 (IoU 0.8 with box 0) is dropped; order is by score.
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 5], [0, 0, 10, 8], [20, 20, 30, 30]], np.float32)
    scores = np.array([0.9, 0.5, 0.8, 0.7])
    np.testing.assert_array_equal(utils.non_max_suppression(boxes, scores, 0.5), [0, 3, 1])
    assert utils.non_max_suppression(np.zeros((0, 4)), np.zeros(0), 0.5).shape == (0,)


def test_box_deltas_match_matterport_and_invert():
    e = EXPECTED
    a = e["boxes_a"].astype(np.float32)
    np.testing.assert_allclose(
        utils.apply_box_deltas(a, e["deltas"]), e["apply_box_deltas"], atol=1e-4
    )
    b = e["boxes_b"].astype(np.float32)
    deltas = utils.box_refinement(a[:5], b)
    assert deltas.dtype == np.float32
    np.testing.assert_allclose(deltas, e["box_refinement"], atol=1e-5)
    np.testing.assert_allclose(utils.apply_box_deltas(a[:5], deltas), b, atol=1e-3)


def test_box_deltas_hand_worked():
    # Box 10 high, 20 wide centred at (5, 10): dy=0.1 moves it 1 px down, log(2) doubles the width.
    out = utils.apply_box_deltas(
        np.array([[0.0, 0.0, 10.0, 20.0]]), np.array([[0.1, 0, 0, np.log(2)]])
    )
    np.testing.assert_allclose(out, [[1, -10, 11, 30]], atol=1e-9)


def test_trim_zeros_and_box_normalisation_match_matterport():
    e = EXPECTED
    np.testing.assert_array_equal(utils.trim_zeros(e["padded"]), e["trim_zeros"])
    normed = utils.norm_boxes(e["boxes_a"], (128, 96))
    assert normed.dtype == np.float32
    np.testing.assert_allclose(normed, e["norm_boxes"], rtol=1e-6)
    np.testing.assert_array_equal(utils.denorm_boxes(normed, (128, 96)), e["denorm_boxes"])
    # Hand-worked: the whole 11 x 21 image is (0, 0, 1, 1).
    np.testing.assert_allclose(
        utils.norm_boxes(np.array([[0, 0, 11, 21]]), (11, 21)), [[0, 0, 1, 1]]
    )


def test_anchors_match_matterport():
    e = EXPECTED
    shapes = [[32, 32], [16, 16], [8, 8], [4, 4], [2, 2]]
    anchors = utils.generate_pyramid_anchors(
        (32, 64, 128, 256, 512), [0.5, 1, 2], shapes, [4, 8, 16, 32, 64], 1
    )
    np.testing.assert_allclose(anchors, e["generate_pyramid_anchors"], atol=1e-3)
    strided = utils.generate_anchors(64, [0.5, 1, 2], [8, 6], 8, 2)
    np.testing.assert_allclose(strided, e["generate_anchors_stride2"], atol=1e-3)
    # Hand-worked: ratio 1, scale 4, stride 8: the first cell's anchor is centred on (0, 0).
    np.testing.assert_allclose(
        utils.generate_anchors(4, [1], [1, 2], 8, 1), [[-2, -2, 2, 2], [-2, 6, 2, 10]]
    )


@pytest.mark.parametrize("name", ["square_up", "square_down", "pad64", "none"])
def test_resize_image_geometry_matches_matterport(name):
    e = EXPECTED
    kwargs = {
        "square_up": dict(min_dim=40, max_dim=64, mode="square"),
        "square_down": dict(min_dim=10, max_dim=20, mode="square"),
        "pad64": dict(min_dim=64, max_dim=None, mode="pad64"),
        "none": dict(mode="none"),
    }[name]
    image, window, scale, padding, crop = utils.resize_image(e["image"], **kwargs)
    expected = e[f"resize_{name}_image"]
    assert image.shape == expected.shape and image.dtype == np.uint8
    np.testing.assert_array_equal(window, e[f"resize_{name}_window"])
    assert scale == pytest.approx(float(e[f"resize_{name}_scale"]))
    np.testing.assert_array_equal(np.array(padding), e[f"resize_{name}_padding"])
    assert crop is None
    # Pixels: the same bilinear resize, except where scikit-image's "constant" border mode
    # blends the outermost rows and columns of an enlarged image with black.
    y1, x1, y2, x2 = window
    inner = (slice(y1 + 1, y2 - 1), slice(x1 + 1, x2 - 1))
    diff = np.abs(image[inner].astype(int) - expected[inner].astype(int))
    assert diff.max() <= 1
    outside = np.ones(image.shape[:2], dtype=bool)
    outside[y1:y2, x1:x2] = False
    assert not image[outside].any()


def test_resize_image_crop_mode_returns_its_crop():
    image = np.arange(30 * 40 * 3, dtype=np.uint8).reshape(30, 40, 3)
    out, window, scale, padding, crop = utils.resize_image(image, min_dim=16, mode="crop")
    assert out.shape == (16, 16, 3) and window == (0, 0, 16, 16) and scale == 1
    y, x, h, w = crop
    np.testing.assert_array_equal(out, image[y : y + h, x : x + w])


def test_resize_mask_matches_matterport_but_at_edges():
    e = EXPECTED
    image = np.zeros((40, 50, 3), np.uint8)
    _, _, scale, padding, _ = utils.resize_image(image, min_dim=60, max_dim=64, mode="square")
    masks = utils.resize_mask(e["masks"], scale, padding)
    expected = e["resize_mask"]
    assert masks.shape == expected.shape and masks.dtype == bool
    assert (masks == expected).mean() > 0.97


def test_mini_masks_match_matterport_but_at_edges():
    e = EXPECTED
    masks = e["masks"][:, :, :3]
    boxes = utils.extract_bboxes(masks)
    mini = utils.minimize_mask(boxes, masks, (14, 14))
    assert mini.shape == (14, 14, 3) and mini.dtype == bool
    assert (mini == e["minimize_mask"]).mean() > 0.9
    full = utils.expand_mask(boxes, e["minimize_mask"], (40, 50, 3))
    assert full.shape == (40, 50, 3) and full.dtype == bool
    assert (full == e["expand_mask"]).mean() > 0.97
    assert not full[:, :, 0][
        ~np.pad(
            np.ones(tuple(boxes[0, 2:] - boxes[0, :2]), bool),
            ((boxes[0, 0], 40 - boxes[0, 2]), (boxes[0, 1], 50 - boxes[0, 3])),
        )
    ].any()


def test_minimize_mask_refuses_an_empty_box():
    with pytest.raises(ValueError, match="zero area"):
        utils.minimize_mask(np.array([[2, 2, 2, 5]]), np.ones((8, 8, 1), bool), (4, 4))


def test_unmold_mask_matches_matterport_but_at_edges():
    e = EXPECTED
    full = utils.unmold_mask(e["soft_mask"], (5, 7, 37, 45), (40, 50, 3))
    assert full.shape == (40, 50) and full.dtype == bool
    assert not full[:5].any() and not full[:, :7].any() and not full[37:].any()
    assert (full == e["unmold_mask"]).mean() > 0.97


def test_unmold_mask_hand_worked_places_the_mask_in_its_box():
    full = utils.unmold_mask(np.ones((4, 4), np.float32), (1, 2, 3, 6), (5, 8))
    expected = np.zeros((5, 8), bool)
    expected[1:3, 2:6] = True
    np.testing.assert_array_equal(full, expected)


def test_matching_and_ap_match_matterport():
    e = EXPECTED
    args = _gt_and_pred()
    gt_match, pred_match, overlaps = utils.compute_matches(*args, iou_threshold=0.5)
    np.testing.assert_array_equal(gt_match, e["compute_matches_gt"])
    np.testing.assert_array_equal(pred_match, e["compute_matches_pred"])
    np.testing.assert_allclose(overlaps, e["compute_matches_overlaps"], rtol=1e-6)
    ap, precisions, recalls, _ = utils.compute_ap(*args, iou_threshold=0.5)
    assert ap == pytest.approx(float(e["compute_ap"]))
    np.testing.assert_allclose(precisions, e["compute_ap_precisions"])
    np.testing.assert_allclose(recalls, e["compute_ap_recalls"])
    assert utils.compute_ap_range(*args, verbose=0) == pytest.approx(float(e["compute_ap_range"]))
    recall, ids = utils.compute_recall(args[3], args[0], 0.5)
    assert recall == pytest.approx(float(e["compute_recall"]))
    np.testing.assert_array_equal(ids, e["compute_recall_ids"])


def test_dataset_is_the_package_dataset():
    from mrcnn.dataset import Dataset

    assert utils.Dataset is Dataset


# ------------------------------------------------------------------------------------------------
# download_trained_weights
# ------------------------------------------------------------------------------------------------
def test_download_trained_weights_fetches_through_a_temporary_file(tmp_path, monkeypatch, capsys):
    source = tmp_path / "published.h5"
    source.write_bytes(b"\x89HDF\r\n\x1a\n" + os.urandom(5000))
    monkeypatch.setattr(compat_utils, "COCO_MODEL_URL", source.as_uri())
    target = tmp_path / "out" / "mask_rcnn_coco.h5"
    target.parent.mkdir()
    utils.download_trained_weights(str(target))
    assert target.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in target.parent.iterdir()) == ["mask_rcnn_coco.h5"]
    assert "Downloading pretrained model" in capsys.readouterr().out


def test_download_trained_weights_never_replaces_a_file(tmp_path, monkeypatch):
    target = tmp_path / "mask_rcnn_coco.h5"
    target.write_bytes(b"mine")
    monkeypatch.setattr(compat_utils, "COCO_MODEL_URL", (tmp_path / "missing.h5").as_uri())
    with pytest.raises(FileExistsError, match="exists"):
        utils.download_trained_weights(str(target))
    assert target.read_bytes() == b"mine"


def test_download_trained_weights_offline_names_the_url(tmp_path, monkeypatch):
    import urllib.error

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr("torch.hub.urlopen", offline)
    target = tmp_path / "mask_rcnn_coco.h5"
    with pytest.raises(WeightsError) as caught:
        utils.download_trained_weights(str(target), verbose=0)
    message = str(caught.value)
    assert "\n" not in message
    assert (
        "https://github.com/matterport/Mask_RCNN/releases/download/v2.0/mask_rcnn_coco.h5"
        in message
    )
    assert not target.exists() and not list(tmp_path.iterdir())


def test_resize_is_scikit_images_with_matterports_defaults(monkeypatch):
    image = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    nearest = utils.resize(image, (6, 8), order=0, preserve_range=True)
    assert nearest.shape == (6, 8) and set(np.unique(nearest)) == set(np.unique(image))
    scaled = utils.resize(image, (6, 8))  # skimage's default: floats in [0, 1]
    assert scaled.dtype == np.float64 and scaled.max() <= 1.0
    monkeypatch.setitem(sys.modules, "skimage.transform", None)  # as if not installed
    with pytest.raises(ImportError, match="pip install scikit-image .*utils.resize_image"):
        utils.resize(image, (6, 8))

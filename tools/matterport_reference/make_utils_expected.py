"""Write tests/fixtures/matterport_utils_expected.npz: Matterport's numpy utils run on fixed
inputs, for tests/compat/test_utils_face.py.

Run in a throwaway environment that has numpy, scipy and scikit-image (never this project's),
from the repository root, with the path of Matterport's ``mrcnn/utils.py`` (e.g. from the TF2
port Ben-Sicat/mrcnn_tf2):

    python -m tools.matterport_reference.make_utils_expected /path/to/mrcnn/utils.py

TensorFlow is stubbed: the functions used here are numpy only. Inputs are drawn from a seed
and stored beside the outputs, so the test never needs Matterport's code.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import types
from pathlib import Path

import numpy as np

#: The fixture written (this file is tools/matterport_reference/make_utils_expected.py).
TARGET = (
    Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "matterport_utils_expected.npz"
)


def load_utils(path: str):
    sys.modules.setdefault("tensorflow", types.ModuleType("tensorflow"))
    spec = importlib.util.spec_from_file_location("matterport_utils", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    # scikit-image >= 0.19 refuses order-1 resizes of bool arrays, which older versions took
    # as 0/1 floats (what Matterport's minimize_mask relies on): cast as they did.
    resize = module.resize
    module.resize = lambda image, *a, **k: resize(
        image.astype(np.float64) if image.dtype == bool else image, *a, **k
    )
    return module


def random_boxes(rng, n, size=100):
    y1x1 = rng.integers(0, size - 20, size=(n, 2))
    hw = rng.integers(4, 30, size=(n, 2))
    return np.concatenate([y1x1, y1x1 + hw], axis=1).astype(np.int32)


def random_masks(rng, n, height, width):
    masks = np.zeros((height, width, n), dtype=bool)
    for i in range(n):
        y, x = rng.integers(0, height - 8), rng.integers(0, width - 8)
        h, w = rng.integers(4, height - y), rng.integers(4, width - x)
        masks[y : y + h, x : x + w, i] = True
        masks[y + h // 2 :, x + w // 2 :, i] &= (
            rng.random((height - y - h // 2, width - x - w // 2)) > 0.3
        )
    return masks


def main(utils_path: str) -> None:
    u = load_utils(utils_path)
    rng = np.random.default_rng(2018)
    out = {}

    masks = random_masks(rng, 4, 40, 50)
    masks[:, :, 3] = False  # an empty instance
    out["masks"] = masks
    out["extract_bboxes"] = u.extract_bboxes(masks)

    boxes_a, boxes_b = random_boxes(rng, 6), random_boxes(rng, 5)
    out["boxes_a"], out["boxes_b"] = boxes_a, boxes_b
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    out["compute_iou"] = u.compute_iou(boxes_a[0], boxes_b, area(boxes_a[:1])[0], area(boxes_b))
    out["compute_overlaps"] = u.compute_overlaps(boxes_a, boxes_b)
    masks_b = random_masks(rng, 3, 40, 50)
    out["masks_b"] = masks_b
    out["compute_overlaps_masks"] = u.compute_overlaps_masks(masks[:, :, :3], masks_b)

    nms_boxes = random_boxes(rng, 30, size=60).astype(np.float32)
    nms_scores = rng.permutation(30).astype(np.float32) / 30
    out["nms_boxes"], out["nms_scores"] = nms_boxes, nms_scores
    out["non_max_suppression"] = u.non_max_suppression(nms_boxes, nms_scores, 0.3)

    deltas = rng.normal(0, 0.3, size=(6, 4)).astype(np.float32)
    out["deltas"] = deltas
    out["apply_box_deltas"] = u.apply_box_deltas(boxes_a.astype(np.float32), deltas)
    out["box_refinement"] = u.box_refinement(
        boxes_a[:5].astype(np.float32), boxes_b.astype(np.float32)
    )

    padded = np.concatenate([boxes_a, np.zeros((3, 4), np.int32)])
    out["padded"] = padded
    out["trim_zeros"] = u.trim_zeros(padded)
    out["norm_boxes"] = u.norm_boxes(boxes_a, (128, 96))
    out["denorm_boxes"] = u.denorm_boxes(out["norm_boxes"], (128, 96))

    image = rng.integers(0, 256, size=(30, 40, 3), dtype=np.uint8)
    out["image"] = image
    for name, kwargs in {
        "square_up": dict(min_dim=40, max_dim=64, mode="square"),
        "square_down": dict(min_dim=10, max_dim=20, mode="square"),
        "pad64": dict(min_dim=64, max_dim=None, mode="pad64"),
        "none": dict(mode="none"),
    }.items():
        resized, window, scale, padding, _ = u.resize_image(image, **kwargs)
        out[f"resize_{name}_image"] = resized
        out[f"resize_{name}_window"] = np.array(window)
        out[f"resize_{name}_scale"] = np.array(scale, dtype=np.float64)
        out[f"resize_{name}_padding"] = np.array(padding)
    _, _, scale, padding, _ = u.resize_image(
        masks[:, :, 0].astype(np.uint8)[..., None].repeat(3, 2),
        min_dim=60,
        max_dim=64,
        mode="square",
    )
    out["resize_mask"] = u.resize_mask(masks, scale, padding)

    mini_boxes = u.extract_bboxes(masks[:, :, :3])
    out["minimize_mask"] = u.minimize_mask(mini_boxes, masks[:, :, :3], (14, 14))
    out["expand_mask"] = u.expand_mask(mini_boxes, out["minimize_mask"], (40, 50, 3))
    soft = rng.random((28, 28)).astype(np.float32)
    soft[6:22, 6:22] = 0.9
    out["soft_mask"] = soft
    out["unmold_mask"] = u.unmold_mask(soft, (5, 7, 37, 45), (40, 50, 3))

    feature_shapes = np.array([[32, 32], [16, 16], [8, 8], [4, 4], [2, 2]])
    out["generate_pyramid_anchors"] = u.generate_pyramid_anchors(
        (32, 64, 128, 256, 512), [0.5, 1, 2], feature_shapes, [4, 8, 16, 32, 64], 1
    )
    out["generate_anchors_stride2"] = u.generate_anchors(64, [0.5, 1, 2], [8, 6], 8, 2)

    gt_boxes, gt_masks = u.extract_bboxes(masks[:, :, :3]), masks[:, :, :3]
    gt_class_ids = np.array([1, 2, 1])
    pred_masks = np.concatenate([masks_b, masks[:, :, :2]], axis=2)
    pred_boxes = u.extract_bboxes(pred_masks)
    pred_class_ids = np.array([1, 2, 1, 1, 2])
    pred_scores = np.array([0.9, 0.8, 0.7, 0.95, 0.6])
    args = (gt_boxes, gt_class_ids, gt_masks, pred_boxes, pred_class_ids, pred_scores, pred_masks)
    out["ap_gt_class_ids"], out["ap_pred_class_ids"] = gt_class_ids, pred_class_ids
    out["ap_pred_scores"] = pred_scores
    gt_match, pred_match, overlaps = u.compute_matches(*args, iou_threshold=0.5)
    out["compute_matches_gt"], out["compute_matches_pred"] = gt_match, pred_match
    out["compute_matches_overlaps"] = overlaps
    ap, precisions, recalls, _ = u.compute_ap(*args, iou_threshold=0.5)
    out["compute_ap"], out["compute_ap_precisions"], out["compute_ap_recalls"] = (
        ap,
        precisions,
        recalls,
    )
    out["compute_ap_range"] = u.compute_ap_range(*args, verbose=0)
    recall, positive_ids = u.compute_recall(pred_boxes, gt_boxes, 0.5)
    out["compute_recall"], out["compute_recall_ids"] = recall, positive_ids

    np.savez_compressed(TARGET, **out)
    print(f"wrote {TARGET} ({TARGET.stat().st_size} bytes, {len(out)} arrays)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m tools.matterport_reference.make_utils_expected",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("utils", help="Matterport's mrcnn/utils.py")
    main(parser.parse_args().utils)

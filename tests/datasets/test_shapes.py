"""The synthetic shapes dataset: determinism, sizes, overlap, masks matching the pixels."""

from __future__ import annotations

import numpy as np
import pytest

from mrcnn.datasets import ShapesDataset, from_spec
from mrcnn.datasets.shapes import MAX_BOX_IOU


def _shapes(count=20, size=128, **kwargs) -> ShapesDataset:
    dataset = ShapesDataset()
    dataset.load_shapes(count, size, size, **kwargs)
    dataset.prepare()
    return dataset


def test_same_arguments_same_images():
    first, second = _shapes(seed=3), _shapes(seed=3)
    for i in (0, 7, 19):
        assert np.array_equal(first.load_image(i), second.load_image(i))
        masks_a, ids_a = first.load_mask(i)
        masks_b, ids_b = second.load_mask(i)
        assert np.array_equal(masks_a, masks_b) and np.array_equal(ids_a, ids_b)
    other = _shapes(seed=4)
    assert any(not np.array_equal(first.load_image(i), other.load_image(i)) for i in range(5))
    val = _shapes(subset="val", seed=3)
    assert any(not np.array_equal(first.load_image(i), val.load_image(i)) for i in range(5))


def test_classes_and_generated_on_the_fly():
    dataset = _shapes(count=5)
    assert dataset.class_names == ["BG", "square", "circle", "triangle"]
    assert all(info["path"] is None and "image" not in info for info in dataset.image_info)
    assert dataset.load_report.images_loaded == 5


def test_masks_match_pixels_sizes_and_overlap():
    dataset = _shapes(count=40, size=128, max_shapes=5)
    counts = []
    for image_id in dataset.image_ids:
        info = dataset.image_info[image_id]
        image = dataset.load_image(image_id)
        masks, class_ids = dataset.load_mask(image_id)
        assert image.shape == (128, 128, 3) and image.dtype == np.uint8
        assert masks.shape[:2] == (128, 128) and masks.shape[-1] == len(class_ids) >= 1
        assert set(class_ids.tolist()) <= {1, 2, 3}
        counts.append(len(class_ids))
        # outside every mask: background; inside mask i: that shape's colour
        background = ~masks.any(axis=2)
        assert (image[background] == info["bg_color"]).all()
        visible = {tuple(c) for name, c, _ in info["shapes"]}
        for i in range(masks.shape[-1]):
            colors = {tuple(c) for c in image[masks[:, :, i]].tolist()}
            assert len(colors) == 1 and colors <= visible
        # no pixel belongs to two instances (occlusion removed)
        assert masks.sum(axis=2).max() <= 1
        boxes = dataset.extract_bboxes(masks)
        sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        assert sides.max() <= 128 // 2 + 1
        full = [(x - s, y - s, x + s, y + s) for _, _, (x, y, s) in info["shapes"]]
        assert all(min(b[0], b[1]) >= 0 and max(b[2], b[3]) <= 128 for b in full)
        for a in range(len(full)):
            for b in range(a):
                assert _iou(full[a], full[b]) < MAX_BOX_IOU
    assert max(counts) > 1 and np.mean(counts) > 1.5


def _iou(a, b) -> float:
    w = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union


def test_specs():
    dataset = from_spec("shapes:30:96", "train")
    assert dataset.num_images == 30 and dataset.load_image(0).shape == (96, 96, 3)
    assert from_spec("shapes:30:96", "val").num_images == 3
    assert from_spec("shapes", None).num_images == 500
    assert from_spec("shapes?seed=5&max_shapes=2", "val").num_images == 50
    with pytest.raises(ValueError, match=r"shapes\[:COUNT\[:SIZE\]\]"):
        from_spec("shapes:many", "train")
    with pytest.raises(ValueError, match="at least 32x32"):
        ShapesDataset().load_shapes(1, 16, 16)

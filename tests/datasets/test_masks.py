"""Mask folders (the nucleus layout) and label images."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mrcnn.dataset import DatasetWarning, subset_of
from mrcnn.datasets import LabelDataset, MaskFolderDataset, from_spec
from tests.helpers.data import box_mask, write_image, write_mask_png

W, H = 32, 24


def _nucleus(root, ids=("n1", "n2")):
    for image_id in ids:
        write_image(root / image_id / "images" / f"{image_id}.png", W, H)
        write_mask_png(root / image_id / "masks" / "m1.png", box_mask(H, W, 2, 2, 8, 8))
        write_mask_png(root / image_id / "masks" / "m2.png", box_mask(H, W, 10, 10, 20, 30), 1)
    return root


def test_nucleus_layout(tmp_path):
    root = _nucleus(tmp_path / "cells")
    dataset = from_spec(f"masks:{root}?class_name=nucleus", None)
    assert dataset.class_names == ["BG", "nucleus"] and dataset.num_images == 2
    masks, class_ids = dataset.load_mask(0)
    assert masks.shape == (H, W, 2) and class_ids.tolist() == [1, 1]
    assert masks[:, :, 0].sum() == 36 and masks[:, :, 1].sum() == 200
    assert dataset.load_image(0).shape == (H, W, 3)
    assert dataset.load_report.regions_loaded == 4


def test_nucleus_bad_folders_are_reported(tmp_path):
    root = _nucleus(tmp_path / "cells", ("good",))
    write_image(root / "wrong" / "images" / "wrong.png", W, H)
    write_mask_png(root / "wrong" / "masks" / "small.png", box_mask(10, 10, 1, 1, 5, 5))
    write_mask_png(root / "wrong" / "masks" / "ok.png", box_mask(H, W, 1, 1, 5, 5))
    write_image(root / "nomasks" / "images" / "nomasks.png", W, H)
    (root / "noimage" / "images").mkdir(parents=True)
    (root / "empty" / "images").mkdir(parents=True)
    write_image(root / "empty" / "images" / "empty.png", W, H)
    write_mask_png(root / "empty" / "masks" / "zero.png", np.zeros((H, W), bool))
    dataset = MaskFolderDataset()
    with pytest.warns(DatasetWarning) as record:
        report = dataset.load_folders(root)
    dataset.prepare()
    messages = " ".join(str(w.message) for w in record)
    assert (
        "small.png: skipped region: mask size differs from the image (10x10 vs 32x24)" in messages
    )
    assert "nomasks.png: skipped image: no masks" in messages
    assert "noimage/images: skipped image: no image file" in messages
    assert (report.images_loaded, report.images_skipped) == (3, 2)
    empty = [i for i, info in enumerate(dataset.image_info) if info["id"] == "empty"][0]
    with pytest.warns(DatasetWarning, match="empty mask files dropped"):
        masks, class_ids = dataset.load_mask(empty)
    assert masks.shape == (H, W, 0) and class_ids.shape == (0,)


def test_nucleus_subsets(tmp_path):
    root = tmp_path / "cells"
    _nucleus(root / "train", ("a", "b"))
    _nucleus(root / "val", ("c",))
    assert from_spec(f"masks:{root}", "train").num_images == 2
    assert from_spec(f"masks:{root}", "val").num_images == 1
    assert from_spec(f"masks:{root}", None).num_images == 3
    with pytest.raises(FileNotFoundError, match="has the subsets train, val"):
        from_spec(f"masks:{root}", "test")
    flat = _nucleus(tmp_path / "flat", [f"id{i}" for i in range(12)])
    train = from_spec(f"masks:{flat}", "train")
    assert {info["id"] for info in train.image_info} == {
        f"id{i}" for i in range(12) if subset_of(f"id{i}") == "train"
    }
    with pytest.raises(FileNotFoundError, match="no image folders"):
        from_spec(f"masks:{tmp_path / 'cells' / 'train' / 'a'}", None)


def _labels(root):
    images, masks = root / "images", root / "masks"
    for stem in ("a", "b", "c", "d", "e", "f"):
        write_image(images / f"{stem}.png", W, H)
    masks.mkdir(parents=True)
    a = np.zeros((H, W), np.uint8)
    a[1:5, 1:5], a[10:20, 10:20], a[0, 31] = 1, 2, 7
    Image.fromarray(a).save(masks / "a_mask.png")
    b = np.zeros((H, W), np.uint16)
    b[2:6, 2:6], b[8:12, 8:12] = 300, 1000
    Image.fromarray(b).save(masks / "b.png")
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(masks / "d.png")  # wrong size
    Image.fromarray(np.zeros((H, W), np.uint8)).save(masks / "e.png")  # no instance
    f = np.zeros((H, W, 3), np.uint8)
    f[0:4, 0:4] = (255, 0, 0)
    f[5:9, 5:9] = (0, 0, 255)
    Image.fromarray(f).save(masks / "f.png")
    return images, masks


def test_label_images(tmp_path):
    images, masks_dir = _labels(tmp_path)
    with pytest.warns(DatasetWarning) as record:
        dataset = from_spec(f"labels:{images}:{masks_dir}", None)
    messages = " ".join(str(w.message) for w in record)
    assert "c.png: skipped image: no label image" in messages
    assert "skipped image: label image size differs from the image (5x5 vs 32x24)" in messages
    assert "e.png: skipped image: label image has no instance" in messages
    assert dataset.class_names == ["BG", "object"]
    ids = {info["id"]: i for i, info in enumerate(dataset.image_info)}
    assert sorted(ids) == ["a", "b", "f"]
    masks, class_ids = dataset.load_mask(ids["a"])
    assert masks.shape == (H, W, 3) and class_ids.tolist() == [1, 1, 1]
    assert [int(m.sum()) for m in np.moveaxis(masks, -1, 0)] == [16, 100, 1]
    masks, _ = dataset.load_mask(ids["b"])  # 16-bit values 300 and 1000
    assert [int(m.sum()) for m in np.moveaxis(masks, -1, 0)] == [16, 16]
    masks, _ = dataset.load_mask(ids["f"])  # RGB colours
    assert masks.shape[-1] == 2 and masks[0, 0].sum() == 1
    assert dataset.load_report.regions_loaded == 3 + 2 + 2


def test_label_class_map_and_shared_folder(tmp_path):
    images, masks_dir = _labels(tmp_path)
    dataset = LabelDataset()
    with pytest.warns(DatasetWarning) as record:
        dataset.load_labels(images, masks_dir, class_map={1: "cat", 2: "dog", 300: "cat"})
    messages = " ".join(str(w.message) for w in record)
    assert "a_mask.png value 7: skipped region: value not in class_map" in messages
    dataset.prepare()
    assert dataset.class_names == ["BG", "cat", "dog"]
    ids = {info["id"]: i for i, info in enumerate(dataset.image_info)}
    assert dataset.load_mask(ids["a"])[1].tolist() == [1, 2]
    assert dataset.load_mask(ids["b"])[1].tolist() == [1]

    shared = tmp_path / "shared"
    write_image(shared / "x.png", W, H)
    write_mask_png(shared / "x_mask.png", box_mask(H, W, 0, 0, 4, 4), 3)
    spec = f"labels:{shared}:{shared}?class_map=3=spot"
    assert from_spec(spec, None).class_names == ["BG", "spot"]
    with pytest.raises(ValueError, match="labels:IMAGES_DIR:MASKS_DIR"):
        from_spec(f"labels:{shared}", None)

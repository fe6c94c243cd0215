"""The COCO loader: polygons, RLE, uncompressed RLE, crowd, category mapping, filters."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from mrcnn.dataset import DatasetWarning, subset_of
from mrcnn.datasets import CocoDataset, from_spec
from tests.helpers.data import box_mask, write_coco, write_image

W, H = 40, 30
CATEGORIES = [
    {"id": 7, "name": "dog", "supercategory": "animal"},
    {"id": 3, "name": "cat", "supercategory": "animal"},
    {"id": 12, "name": "emu", "supercategory": "animal"},
]


def _compressed_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def _uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE: run lengths over the column-major pixels, zeros first."""
    flat = mask.flatten(order="F").astype(np.int8)
    changes = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    return {"size": list(mask.shape), "counts": counts}


MASK_B = box_mask(H, W, 5, 20, 15, 35)
MASK_CROWD = box_mask(H, W, 0, 0, 10, 10)


def _write(root, annotations_name="instances.json", images_name="images"):
    images_dir = root / images_name
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        write_image(images_dir / name, W, H)
    images = [
        {"id": 1, "file_name": "a.jpg", "width": W, "height": H, "coco_url": "http://coco/a"},
        {"id": 2, "file_name": "b.jpg", "width": W, "height": H},
        {"id": 3, "file_name": "c.jpg", "width": W, "height": H},
        {"id": 4, "file_name": "gone.jpg", "width": W, "height": H},
    ]
    annotations = [
        {
            "id": 10,
            "image_id": 1,
            "category_id": 3,
            "iscrowd": 0,
            "segmentation": [[2, 2, 12, 2, 12, 12, 2, 12]],
        },
        {
            "id": 11,
            "image_id": 1,
            "category_id": 7,
            "iscrowd": 0,
            "segmentation": _compressed_rle(MASK_B),
        },
        {
            "id": 12,
            "image_id": 2,
            "category_id": 7,
            "iscrowd": 1,
            "segmentation": _uncompressed_rle(MASK_CROWD),
        },
        {"id": 13, "image_id": 2, "category_id": 3, "iscrowd": 0, "segmentation": [[1, 1, 5, 5]]},
        {"id": 14, "image_id": 99, "category_id": 3, "iscrowd": 0, "segmentation": [[1, 1]]},
        {"id": 15, "image_id": 3, "category_id": 55, "iscrowd": 0, "segmentation": []},
        {
            "id": 16,
            "image_id": 4,
            "category_id": 3,
            "iscrowd": 0,
            "segmentation": [[2, 2, 12, 2, 12, 12]],
        },
    ]
    return write_coco(root / annotations_name, images, annotations, CATEGORIES), images_dir


def _load(*args, **kwargs) -> CocoDataset:
    dataset = CocoDataset()
    with pytest.warns(DatasetWarning):
        dataset.load_coco(*args, **kwargs)
    dataset.prepare()
    return dataset


def test_polygons_rle_crowd_and_category_map(tmp_path):
    annotations, images_dir = _write(tmp_path)
    dataset = _load(annotations, images_dir)
    assert dataset.class_names == ["BG", "cat", "dog", "emu"]  # by COCO id: 3, 7, 12
    assert dataset.map_source_class_id("coco.7") == 2
    assert dataset.get_source_class_id(3, "coco") == 12
    assert dataset.num_images == 3  # gone.jpg skipped

    masks, class_ids = dataset.load_mask(0)
    assert masks.shape == (H, W, 2) and masks.dtype == bool
    assert class_ids.tolist() == [1, 2]
    assert masks[2:13, 2:13, 0].sum() >= 100 and not masks[20:, :, 0].any()
    assert np.array_equal(masks[:, :, 1], MASK_B)

    masks, class_ids = dataset.load_mask(1)
    assert class_ids.tolist() == [-2]  # crowd: negative class id
    assert np.array_equal(masks[:, :, 0], MASK_CROWD)

    masks, class_ids = dataset.load_mask(2)  # no usable annotation: empty, not an error
    assert masks.shape == (H, W, 0) and class_ids.shape == (0,)

    report = dataset.load_report
    assert (report.images_loaded, report.images_skipped) == (3, 1)
    assert report.regions_loaded == 3 and report.crowd_regions == 1
    assert report.regions_skipped == 4
    assert "no polygon with 3 or more points" in report.summary()
    assert "unknown image id" in report.summary() and "unknown category id" in report.summary()
    assert dataset.coco is not None and len(dataset.coco.getImgIds()) == 4
    assert "http://coco/a" in dataset.image_reference(0)


QUIET = pytest.mark.filterwarnings("ignore::mrcnn.dataset.DatasetWarning")


@QUIET
def test_class_filter_and_image_count(tmp_path):
    annotations, images_dir = _write(tmp_path)
    dogs = _load(annotations, images_dir, class_names=["dog"])
    assert dogs.class_names == ["BG", "dog"]
    assert [info["id"] for info in dogs.image_info] == [1, 2]
    assert dogs.load_mask(0)[1].tolist() == [1]
    assert _load(annotations, images_dir, class_ids=[3]).class_names == ["BG", "cat"]
    first = CocoDataset()
    first.load_coco(annotations, images_dir, max_images=1)
    assert first.image_info[0]["id"] == 1 and len(first.image_info) == 1
    with pytest.raises(ValueError, match="unknown categories \\['yak'\\]; known: cat, dog, emu"):
        CocoDataset().load_coco(annotations, images_dir, class_names=["yak"])


@QUIET
def test_default_images_dir_and_specs(tmp_path):
    annotations, _ = _write(tmp_path, "annotations/instances_val2017.json", "val2017")
    dataset = from_spec(f"coco:{annotations}", None)  # finds val2017/ next to annotations/
    assert dataset.num_images == 3
    spec = f"coco:{tmp_path}/annotations/instances_{{subset}}2017.json:{tmp_path}/val2017"
    assert from_spec(spec, "val").num_images == 3  # {subset} chooses the file: all its images
    train = from_spec(f"coco:{annotations}:{tmp_path / 'val2017'}", "train")
    expected = [i for i in (1, 2, 3) if subset_of(i) == "train"]  # the hash split by image id
    assert [info["id"] for info in train.image_info] == expected


def test_bad_files_raise_clear_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [], "annotations": [,]}')
    (tmp_path / "images").mkdir()
    with pytest.raises(ValueError, match="malformed JSON at line 1 column"):
        CocoDataset().load_coco(bad, tmp_path / "images")
    captions = write_coco(tmp_path / "captions.json", [], [], [])
    captions.write_text('{"images": [], "annotations": []}')
    with pytest.raises(ValueError, match="not a COCO instances file: no 'categories'"):
        CocoDataset().load_coco(captions, tmp_path / "images")
    only_missing = write_coco(
        tmp_path / "m.json",
        [{"id": 1, "file_name": "x.jpg", "width": 4, "height": 4}],
        [],
        CATEGORIES,
    )
    with pytest.warns(DatasetWarning), pytest.raises(ValueError, match="missing image file"):
        CocoDataset().load_coco(only_missing, tmp_path / "images")
    with pytest.raises(FileNotFoundError, match="images folder .* not found"):
        CocoDataset().load_coco(only_missing, tmp_path / "nowhere")


def test_malformed_entries_are_refused_or_skipped_in_one_line(tmp_path):
    """Issue 12 (found by fuzzing): wrong types in a COCO file give a ValueError naming the
    entry, and an RLE whose counts do not cover the image is skipped, not decoded (pycocotools
    would write past its buffer)."""
    import json

    from mrcnn.datasets import CocoDataset

    (tmp_path / "a.png").write_bytes(b"")
    base = {
        "images": [{"id": 1, "file_name": "a.png", "height": 24.0, "width": 32}],
        "annotations": [],
        "categories": [{"id": 1, "name": "cat"}],
    }
    bad = [
        ({"categories": [{}]}, "whole-number id and a text name"),
        ({"images": [{"id": [1], "file_name": "a.png", "height": 2, "width": 2}]}, "id must be"),
        ({"images": [{"id": 1, "file_name": "a.png", "height": -2, "width": 2}]}, "positive"),
        ({"annotations": [3]}, "is not an object"),
    ]
    for change, needle in bad:
        path = tmp_path / "bad.json"
        path.write_text(json.dumps({**base, **change}))
        with pytest.raises(ValueError, match=needle):
            CocoDataset().load_coco(path, tmp_path)
    from mrcnn.datasets.coco import _segmentation_problem

    assert "cover 5 pixels" in _segmentation_problem({"size": [24, 32], "counts": [5]}, 24, 32)
    assert "cover" in _segmentation_problem({"size": [24, 32], "counts": "0`0"}, 24, 32)
    assert _segmentation_problem({"size": [2, 2], "counts": [1, 2, 1]}, 2, 2) == ""
    assert "not a finite" in _segmentation_problem([[0, 0, 1, "x", 2, 2]], 24, 32)


def test_whole_float_sizes_and_ids_load(tmp_path):
    """Some exporters write 480.0 for 480: such files load and their masks read."""
    import json

    import numpy as np
    from PIL import Image

    from mrcnn.datasets import CocoDataset

    Image.fromarray(np.zeros((24, 32, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    square = [4.0, 4.0, 20.0, 4.0, 20.0, 20.0, 4.0, 20.0]
    data = {
        "images": [{"id": 1, "file_name": "a.png", "height": 24.0, "width": 32.0}],
        "annotations": [{"id": 1, "image_id": 1.0, "category_id": 1.0, "segmentation": [square]}],
        "categories": [{"id": 1.0, "name": "cat"}],
    }
    (tmp_path / "ann.json").write_text(json.dumps(data))
    dataset = CocoDataset()
    dataset.load_coco(tmp_path / "ann.json", tmp_path)
    dataset.prepare()
    masks, class_ids = dataset.load_mask(0)
    assert masks.shape == (24, 32, 1) and class_ids.tolist() == [1] and masks.sum() > 200

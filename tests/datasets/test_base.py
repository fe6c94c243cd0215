"""The Dataset base class, load reports and the shared loader helpers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from mrcnn.dataset import (
    Dataset,
    DatasetWarning,
    LoadReport,
    describe_classes,
    empty_masks,
    read_image_size,
    read_json,
    split_crowd,
    subset_of,
)
from tests.helpers.data import write_image


def _two_source_dataset(tmp_path) -> Dataset:
    dataset = Dataset()
    dataset.add_class("a", 1, "cat")
    dataset.add_class("b", 7, "person, human")
    dataset.add_class("a", 1, "cat")  # repeated: ignored
    dataset.add_image("a", "x.png", write_image(tmp_path / "x.png"))
    dataset.add_image("b", 42, write_image(tmp_path / "y.png"), url="http://example/y")
    dataset.prepare()
    return dataset


def test_prepare_builds_matterport_tables(tmp_path):
    dataset = _two_source_dataset(tmp_path)
    assert dataset.class_names == ["BG", "cat", "person"]
    assert dataset.num_classes == 3
    assert list(dataset.image_ids) == [0, 1]
    assert dataset.num_images == 2
    assert dataset.map_source_class_id("b.7") == 2
    assert dataset.get_source_class_id(2, "b") == 7
    assert dataset.sources == ["a", "b"]
    assert dataset.source_class_ids["a"] == [0, 1]
    assert dataset.image_from_source_map["b.42"] == 1
    assert dataset.image_reference(0).endswith("x.png")
    assert dataset.source_image_link(1) == "http://example/y"


def test_lookup_errors_say_what_is_wrong(tmp_path):
    dataset = _two_source_dataset(tmp_path)
    with pytest.raises(KeyError, match="unknown source class 'a.9'"):
        dataset.map_source_class_id("a.9")
    with pytest.raises(ValueError, match="from source 'a', not 'b'"):
        dataset.get_source_class_id(1, "b")
    with pytest.raises(ValueError, match="must not contain a dot"):
        dataset.add_class("a.b", 1, "x")


def test_load_image_and_empty_mask(tmp_path):
    dataset = _two_source_dataset(tmp_path)
    image = dataset.load_image(0)
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8
    masks, class_ids = dataset.load_mask(0)
    assert masks.shape == (48, 64, 0) and masks.dtype == bool
    assert class_ids.shape == (0,) and class_ids.dtype == np.int32


@pytest.mark.parametrize("mode", ["L", "RGBA", "I;16", "P"])
def test_load_image_converts_modes(tmp_path, mode):
    path = tmp_path / f"img_{mode.replace(';', '')}.png"
    if mode == "I;16":
        Image.fromarray(np.full((10, 12), 65535, dtype=np.uint16)).save(path)
    else:
        Image.new(mode, (12, 10)).save(path)
    dataset = Dataset()
    dataset.add_image("s", 1, path)
    dataset.prepare()
    image = dataset.load_image(0)
    assert image.shape == (10, 12, 3) and image.dtype == np.uint8
    if mode == "I;16":
        assert image.max() == 255


def test_exif_orientation_applied_to_image_and_size(tmp_path):
    path = write_image(tmp_path / "rotated.jpg", width=40, height=20, orientation=6)
    upright = np.asarray(Image.open(write_image(tmp_path / "stored.png", width=40, height=20)))
    assert read_image_size(path) == (40, 20)
    dataset = Dataset()
    dataset.add_image("s", 1, path)
    dataset.prepare()
    image = dataset.load_image(0)
    assert image.shape == (40, 20, 3)
    # Orientation 6: the stored pixels turned 90 degrees clockwise (up to JPEG's loss).
    error = np.abs(image.astype(int) - np.rot90(upright, k=-1)).mean()
    assert error < 4, f"pixels differ from the rotated array by {error:.1f} on average"
    assert dataset.image_size(0) == (40, 20)


def test_extract_bboxes_is_int32_yxyx():
    masks = np.zeros((10, 20, 2), dtype=bool)
    masks[2:5, 3:9, 0] = True
    boxes = Dataset.extract_bboxes(masks)
    assert boxes.dtype == np.int32
    assert boxes.tolist() == [[2, 3, 5, 9], [0, 0, 0, 0]]


def test_split_crowd_separates_negative_ids():
    masks = np.zeros((4, 4, 3), dtype=bool)
    masks[0, 0, 0] = masks[1, 1, 1] = masks[2, 2, 2] = True
    kept, ids, crowd = split_crowd(masks, np.array([1, -2, 3]))
    assert ids.tolist() == [1, 3] and kept.shape == (4, 4, 2)
    assert crowd[1, 1] and crowd.sum() == 1
    _, _, none = split_crowd(*empty_masks(4, 4))
    assert not none.any()


def test_subset_split_is_deterministic_and_about_ninety_ten():
    keys = [f"image_{i}.jpg" for i in range(2000)]
    first = [subset_of(k) for k in keys]
    assert first == [subset_of(k) for k in keys]
    share = first.count("val") / len(keys)
    assert 0.07 < share < 0.13


def test_read_json_reports_line_and_column(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{\n  "a": 1,\n  "b": \n}')
    with pytest.raises(ValueError, match=r"bad.json: malformed JSON at line 4 column 1"):
        read_json(path)
    with pytest.raises(FileNotFoundError, match="annotation file not found"):
        read_json(tmp_path / "missing.json")


def test_load_report_counts_and_caps_warnings():
    report = LoadReport("test")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(30):
            report.skip_region(f"file.json region {i}", "polygon with fewer than 3 points")
        report.skip_image("file.json [a.jpg]", "missing image file")
    assert report.regions_skipped == 30 and report.images_skipped == 1
    assert len(report.problems) == 31
    assert len(caught) == 21  # 20 problems and one "more problems not shown"
    assert all(issubclass(w.category, DatasetWarning) for w in caught)
    text = report.summary()
    assert "skipped 1 images (1 missing image file)" in text
    assert "30 regions (30 polygon with fewer than 3 points)" in text


def test_require_prepare_before_lookup():
    dataset = Dataset()
    dataset.add_class("s", 1, "x")
    with pytest.raises(RuntimeError, match="prepare"):
        dataset.map_source_class_id("s.1")


def test_load_mask_dispatches_on_the_images_format():
    from mrcnn.dataset import image_loader, mask_loader
    from mrcnn.datasets import ShapesDataset

    class Squares(Dataset):
        @mask_loader("square")
        def load_square_mask(self, image_id):
            masks = np.zeros((4, 4, 1), dtype=bool)
            masks[:2, :2, 0] = True
            return masks, np.array([1], dtype=np.int32)

        @image_loader("square")
        def load_square_image(self, image_id):
            return np.full((4, 4, 3), 7, dtype=np.uint8)

    class BiggerSquares(Squares, ShapesDataset):
        def load_square_mask(self, image_id):  # an override by name is the one used
            masks, class_ids = super().load_square_mask(image_id)
            return np.concatenate([masks, masks], axis=-1), np.repeat(class_ids, 2)

    dataset = BiggerSquares()
    dataset.add_class("sq", 1, "square")
    dataset.add_image("sq", 0, None, format="square")
    dataset.add_image("other", 1, None, width=5, height=3)  # no loader for its format
    dataset.load_shapes(1, 32, 32)  # the inherited loaders still serve their format
    dataset.prepare()
    assert dataset.load_mask(0)[0].shape == (4, 4, 2)
    assert dataset.load_image(0).max() == 7
    assert dataset.load_mask(1)[0].shape == (3, 5, 0)
    assert dataset.load_image(2).shape == (32, 32, 3) and dataset.load_mask(2)[0].shape[-1] >= 1
    assert set(BiggerSquares.mask_loaders) == {"square", "shapes"}
    assert "square" not in ShapesDataset.mask_loaders


def test_matterport_style_override_falls_back_to_the_format_loaders():
    from mrcnn.datasets import ShapesDataset

    class Mine(ShapesDataset):
        def load_mask(self, image_id):
            if self.image_info[image_id]["source"] != "mine":
                return super().load_mask(image_id)
            return np.ones((2, 2, 1), dtype=bool), np.array([1], dtype=np.int32)

    dataset = Mine()
    dataset.load_shapes(1, 32, 32)
    dataset.add_image("mine", 0, None, width=2, height=2)
    dataset.prepare()
    assert dataset.load_mask(1)[0].shape == (2, 2, 1)
    reference = ShapesDataset()
    reference.load_shapes(1, 32, 32)
    reference.prepare()
    masks = dataset.load_mask(0)[0]
    assert masks.shape[-1] > 0
    np.testing.assert_array_equal(masks, reference.load_mask(0)[0])


def test_describe_classes_counts_the_background_and_cuts_long_lists():
    small = Dataset()
    small.add_class("shapes", 1, "circle")
    small.add_class("shapes", 2, "square, box")
    small.prepare()
    assert describe_classes(small) == "3 classes including the background (BG, circle, square)"
    coco = Dataset()
    for class_id in range(1, 81):
        coco.add_class("coco", class_id, f"c{class_id}")
    coco.prepare()
    text = describe_classes(coco, shown=3)
    assert text == "81 classes including the background (BG, c1, c2, ... and 78 more)"

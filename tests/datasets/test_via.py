"""The VIA loader: 1.x and 2.x layouts, every shape, classes, subsets, bad input, balloon."""

from __future__ import annotations

import json
import math

import pytest

from mrcnn.dataset import DatasetWarning
from mrcnn.datasets import ShapesDataset, ViaDataset, from_spec
from mrcnn.datasets.via import rasterize, region_geometry
from tests.helpers.data import (
    circle,
    ellipse,
    point,
    polygon,
    polyline,
    rect,
    write_image,
    write_via1,
    write_via2,
)
from tests.helpers.paths import BALLOON

W, H = 80, 60


def _every_shape() -> list:
    return [
        polygon([5, 25, 5], [5, 5, 25]),
        rect(40, 5, 10, 6),
        circle(20, 45, 6),
        ellipse(60, 40, 12, 4, math.pi / 2),
        polyline([1, 2, 3], [1, 2, 3]),
        point(3, 3),
    ]


def _load(path, *args, **kwargs) -> ViaDataset:
    dataset = ViaDataset()
    dataset.load_via(path, *args, **kwargs)
    dataset.prepare()
    return dataset


@pytest.mark.parametrize("writer", [write_via1, write_via2], ids=["via1", "via2"])
def test_every_shape_rasterised(tmp_path, writer):
    write_image(tmp_path / "a.jpg", W, H)
    json_path = writer(tmp_path / "ann.json", {"a.jpg": _every_shape()})
    with pytest.warns(DatasetWarning) as record:
        dataset = _load(json_path, class_name="thing")
    messages = " ".join(str(w.message) for w in record)
    assert "region 4: skipped region: polyline has no area" in messages
    assert "region 5: skipped region: point has no area" in messages
    report = dataset.load_report
    assert (report.images_loaded, report.regions_loaded, report.regions_skipped) == (1, 4, 2)
    assert dataset.class_names == ["BG", "thing"]

    masks, class_ids = dataset.load_mask(0)
    assert masks.shape == (H, W, 4) and masks.dtype == bool
    assert class_ids.tolist() == [1, 1, 1, 1]
    # rect x=40, y=5, 10 x 6 covers exactly columns 40..49 and rows 5..10
    assert masks[:, :, 1].sum() == 60 and masks[5:11, 40:50, 1].all()
    # right-angled triangle with legs of 20 px: about 200-230 pixels, corner inside
    assert 190 < masks[:, :, 0].sum() < 260 and masks[6, 6, 0] and not masks[24, 24, 0]
    # circle of radius 6
    assert masks[45, 20, 2] and not masks[45, 27, 2]
    assert abs(masks[:, :, 2].sum() - math.pi * 36) < 25
    # ellipse rx=12, ry=4 turned by 90 degrees: long along y
    assert masks[50, 60, 3] and masks[30, 60, 3] and not masks[40, 66, 3]
    boxes = dataset.extract_bboxes(masks)
    assert boxes[1].tolist() == [5, 40, 11, 50]


def test_via2_class_attribute_with_declared_options(tmp_path):
    write_image(tmp_path / "a.png", W, H)
    write_image(tmp_path / "b.png", W, H)
    attributes = {
        "region": {"name": {"type": "dropdown", "options": {"cat": "", "dog": "", "emu": ""}}}
    }
    json_path = write_via2(
        tmp_path / "project.json",
        {
            "a.png": [(rect(1, 1, 5, 5), {"name": "dog"}), (rect(10, 10, 5, 5), {"name": "cat"})],
            "b.png": [
                (rect(1, 1, 5, 5), {"name": {"cat": True, "dog": False}}),  # checkbox
                (rect(20, 20, 5, 5), {"name": ""}),  # empty: skipped
                (rect(30, 30, 5, 5), {}),  # missing: skipped
            ],
        },
        attributes,
    )
    with pytest.warns(DatasetWarning) as record:
        dataset = _load(json_path, class_attribute="name")
    messages = " ".join(str(w.message) for w in record)
    assert "[b.png] region 1: skipped region: empty 'name' region attribute" in messages
    assert "[b.png] region 2: skipped region: no 'name' region attribute" in messages
    # emu is declared but unused: kept so that ids do not depend on which subset is loaded
    assert dataset.class_names == ["BG", "cat", "dog", "emu"]
    assert dataset.load_mask(0)[1].tolist() == [2, 1]
    assert dataset.load_mask(1)[1].tolist() == [1]
    assert dataset.load_report.regions_skipped == 2


def test_class_names_fix_order_and_skip_others(tmp_path):
    write_image(tmp_path / "a.png", W, H)
    json_path = write_via1(
        tmp_path / "ann.json",
        {"a.png": [(rect(1, 1, 5, 5), {"kind": "b"}), (rect(9, 9, 5, 5), {"kind": "z"})]},
    )
    with pytest.warns(DatasetWarning, match="class not in class_names"):
        dataset = _load(json_path, class_attribute="kind", class_names=["b", "a"])
    assert dataset.class_names == ["BG", "b", "a"]
    assert dataset.load_mask(0)[1].tolist() == [1]


def test_unknown_class_attribute_is_an_error(tmp_path):
    write_image(tmp_path / "a.png", W, H)
    json_path = write_via1(tmp_path / "ann.json", {"a.png": [(rect(1, 1, 5, 5), {"kind": "b"})]})
    with pytest.raises(ValueError, match="no region of .* has a 'Kind' attribute"):
        _load(json_path, class_attribute="Kind")


def test_folder_layout_subsets_and_default_class_name(tmp_path):
    root = tmp_path / "fruit"
    for subset, names in (("train", ["t1.jpg", "t2.jpg"]), ("val", ["v1.jpg"])):
        for name in names:
            write_image(root / subset / name, W, H)
        write_via1(
            root / subset / "via_region_data.json",
            {n: [polygon([2, 20, 20], [2, 2, 20])] for n in names},
        )
    train = _load(root, "train")
    assert train.num_images == 2 and train.class_names == ["BG", "fruit"]
    assert _load(root, "val").num_images == 1
    assert _load(root, None).num_images == 3
    with pytest.raises(FileNotFoundError, match="has VIA annotations for the subsets train, val"):
        _load(root, "test")


def test_single_json_hash_split_covers_all_images_once(tmp_path):
    names = [f"img{i:02d}.png" for i in range(30)]
    for name in names:
        write_image(tmp_path / name, 16, 16)
    json_path = write_via1(
        tmp_path / "via_region_data.json", {n: [rect(1, 1, 4, 4)] for n in names}
    )
    train, val = _load(tmp_path, "train"), _load(json_path, "val")
    train_ids = {info["id"] for info in train.image_info}
    val_ids = {info["id"] for info in val.image_info}
    assert not train_ids & val_ids and train_ids | val_ids == set(names)
    assert len(val_ids) >= 1 and len(train_ids) > len(val_ids)
    assert _load(tmp_path, None).num_images == 30
    with pytest.raises(ValueError, match="no 'test' subset"):
        _load(json_path, "test")


def test_true_image_size_exif_and_clipping(tmp_path):
    # Stored 40 wide x 20 high, shown (EXIF 6) 20 wide x 40 high, as VIA showed it.
    write_image(tmp_path / "r.jpg", 40, 20, orientation=6)
    json_path = write_via1(
        tmp_path / "ann.json", {"r.jpg": [polygon([10, 100, 100, 10], [30, 30, 100, 100])]}
    )
    dataset = _load(json_path)
    masks, _ = dataset.load_mask(0)
    assert masks.shape == (40, 20, 1) == dataset.load_image(0).shape[:2] + (1,)
    assert masks[30:, 10:, 0].all() and masks.sum() == 10 * 10


def test_bad_regions_warn_with_file_image_and_index(tmp_path):
    write_image(tmp_path / "a.png", W, H)
    json_path = write_via1(
        tmp_path / "ann.json",
        {
            "a.png": [
                polygon([1, 2], [1, 2]),
                {"name": "hexagon"},
                polygon([500, 600, 550], [500, 500, 600]),
                rect(1, 1, 0, 5),
                polygon([1, "x", 3], [1, 2, 3]),
                rect(2, 2, 9, 9),
            ]
        },
    )
    with pytest.warns(DatasetWarning) as record:
        dataset = _load(json_path)
    messages = [str(w.message) for w in record]
    assert any("ann.json [a.png] region 0" in m and "fewer than 3 points" in m for m in messages)
    assert any("region 1" in m and "unknown shape type ('hexagon')" in m for m in messages)
    assert any("region 2" in m and "entirely outside the image" in m for m in messages)
    assert any("region 3" in m and "rect without area" in m for m in messages)
    assert any("region 4" in m and "bad 'all_points_x'" in m for m in messages)
    assert dataset.load_report.regions_skipped == 5 and dataset.load_report.regions_loaded == 1


def test_missing_and_unreadable_images_are_skipped(tmp_path):
    write_image(tmp_path / "good.png", W, H)
    (tmp_path / "broken.jpg").write_bytes(b"not an image at all")
    json_path = write_via1(
        tmp_path / "ann.json",
        {n: [rect(1, 1, 5, 5)] for n in ("good.png", "broken.jpg", "gone.jpg")},
    )
    with pytest.warns(DatasetWarning) as record:
        dataset = _load(json_path)
    messages = " ".join(str(w.message) for w in record)
    assert "[gone.jpg]: skipped image: missing image file" in messages
    assert "[broken.jpg]: skipped image: unreadable image" in messages
    report = dataset.load_report
    assert (report.images_loaded, report.images_skipped) == (1, 2)
    assert "skipped 2 images" in report.summary()


def test_images_without_regions_skipped_unless_kept(tmp_path):
    write_image(tmp_path / "a.png", W, H)
    write_image(tmp_path / "b.png", W, H)
    json_path = write_via1(tmp_path / "ann.json", {"a.png": [rect(1, 1, 5, 5)], "b.png": []})
    with pytest.warns(DatasetWarning, match="no regions"):
        assert _load(json_path).num_images == 1
    dataset = _load(json_path, keep_empty=True)
    assert dataset.num_images == 2
    masks, class_ids = dataset.load_mask(1)
    assert masks.shape == (H, W, 0) and class_ids.shape == (0,)


def test_unusable_files_raise_clear_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"a.png1": {"filename": "a.png", "regions": [}}')
    with pytest.raises(ValueError, match=r"bad.json: malformed JSON at line 1 column \d+"):
        _load(bad)
    empty = tmp_path / "empty" / "ann.json"
    empty.parent.mkdir()
    empty.write_text("{}")
    with pytest.raises(ValueError, match="no images"):
        _load(empty)
    missing = write_via1(tmp_path / "m" / "ann.json", {"x.png": [rect(1, 1, 5, 5)]})
    with pytest.warns(DatasetWarning), pytest.raises(ValueError, match="all 1 were skipped"):
        _load(missing)
    not_via = tmp_path / "nv.json"
    not_via.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(ValueError, match="not a VIA image entry"):
        _load(not_via)
    with pytest.raises(FileNotFoundError, match="neither a file nor a folder"):
        _load(tmp_path / "nowhere")


def test_from_spec_with_options_and_combined_sources(tmp_path):
    write_image(tmp_path / "a.png", W, H)
    json_path = write_via1(tmp_path / "ann.json", {"a.png": [(rect(1, 1, 5, 5), {"k": "cat"})]})
    dataset = from_spec(f"via:{json_path}?class_attribute=k", subset=None)
    assert dataset.class_names == ["BG", "cat"] and dataset.num_images == 1

    class Mixed(ViaDataset, ShapesDataset):
        pass

    mixed = Mixed()
    mixed.load_via(json_path, source="one", class_name="box")
    mixed.load_via(json_path, source="two", class_attribute="k")
    mixed.load_shapes(2, 64, 64)
    mixed.prepare()
    assert mixed.class_names == ["BG", "box", "cat", "square", "circle", "triangle"]
    assert mixed.load_mask(1)[1].tolist() == [2]
    assert mixed.load_image(2).shape == (64, 64, 3)
    assert mixed.load_mask(2)[1].min() >= 3
    assert mixed.load_report.images_loaded == 4


def test_rasterize_accepts_float_vertices():
    # Vertices are pixel centres; pixels the outline passes through are inside (OpenCV).
    geometry = region_geometry(polygon([0.4, 9.4, 9.4, 0.4], [0.4, 0.4, 9.4, 9.4]))
    mask = rasterize(geometry, 12, 12)
    assert mask[0:10, 0:10].all() and mask.sum() == 100


@pytest.mark.skipif(not BALLOON.is_dir(), reason=f"balloon dataset not found at {BALLOON}")
def test_balloon_counts():
    train, val = from_spec(f"via:{BALLOON}", "train"), from_spec(f"via:{BALLOON}", "val")
    assert (train.num_images, val.num_images) == (61, 13)
    assert train.load_report.regions_loaded == 255
    assert val.load_report.regions_loaded == 50
    assert train.class_names == val.class_names == ["BG", "balloon"]
    assert train.load_report.images_skipped == 0 and train.load_report.regions_skipped == 0
    masks, class_ids = val.load_mask(0)
    height, width = val.image_size(0)
    assert masks.shape[:2] == (height, width) and masks.shape[2] == len(class_ids) > 0
    assert masks.any(axis=(0, 1)).all()

"""The CVAT for images 1.1 loader: polygons, boxes, ellipses, RLE masks, layouts, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from mrcnn.dataset import DatasetWarning
from mrcnn.datasets import CvatDataset, from_spec
from tests.helpers.data import write_image

W, H = 80, 60


def write_cvat(path: Path, images: dict[str, list[str]], labels=("car", "bus")) -> Path:
    """A CVAT for images 1.1 file; ``images`` maps an image name to its shape elements."""
    declared = "".join(f"<label><name>{n}</name><type>any</type></label>" for n in labels)
    body = "".join(
        f'<image id="{i}" name="{name}" width="{W}" height="{H}">{"".join(shapes)}</image>'
        for i, (name, shapes) in enumerate(images.items())
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        '<?xml version="1.0" encoding="utf-8"?>\n<annotations><version>1.1</version>'
        f"<meta><task><labels>{declared}</labels></task></meta>{body}</annotations>"
    )
    return path


def rle(bitmap: np.ndarray) -> str:
    """CVAT's run lengths of a bool bitmap: row order, starting with background."""
    flat = bitmap.ravel()
    counts, value, run = [], False, 0
    for pixel in flat:
        if pixel == value:
            run += 1
        else:
            counts.append(run)
            value, run = pixel, 1
    counts.append(run)
    return ", ".join(map(str, counts))


def _load(path, *args, **kwargs) -> CvatDataset:
    dataset = CvatDataset()
    dataset.load_cvat(path, *args, **kwargs)
    dataset.prepare()
    return dataset


def _messages(record) -> str:
    return " | ".join(str(w.message) for w in record)


def test_every_shape_and_skipped_ones(tmp_path):
    write_image(tmp_path / "images" / "a.jpg", W, H)
    bitmap = np.zeros((5, 7), dtype=bool)
    bitmap[1:4, 2:6] = True
    bitmap[4, 6] = True  # the last pixel: the runs end with foreground
    write_cvat(
        tmp_path / "annotations.xml",
        {
            "a.jpg": [
                '<polygon label="car" occluded="0" points="5.0,5.0;25.0,5.0;5.0,25.0"/>',
                '<box label="bus" xtl="40" ytl="5" xbr="50" ybr="11" occluded="0"/>',
                '<box label="bus" xtl="20" ytl="40" xbr="30" ybr="44" rotation="90"/>',
                '<ellipse label="car" cx="60" cy="40" rx="4" ry="12" rotation="0"/>',
                f'<mask label="car" rle="{rle(bitmap)}" left="60" top="2" width="7" height="5"/>',
                '<polyline label="car" points="1,1;5,5;9,1"/>',
                '<points label="car" points="3,3"/>',
                '<tag label="car"/>',
                '<cube label="car"/>',
            ]
        },
        labels=("car", "bus", "van"),
    )
    with pytest.warns(DatasetWarning) as record:
        dataset = from_spec(f"cvat:{tmp_path}", None)  # an export: annotations.xml, images/
    messages = _messages(record)
    assert "annotations.xml [a.jpg] polyline 5: skipped region: polyline has no area" in messages
    assert "points 6: skipped region: points has no area" in messages
    assert "cube 8: skipped region: unknown shape type ('cube')" in messages  # tags are no shapes
    report = dataset.load_report
    assert (report.regions_loaded, report.regions_skipped) == (5, 3)
    assert dataset.class_names == ["BG", "bus", "car", "van"]  # declared, used or not
    masks, class_ids = dataset.load_mask(0)
    assert class_ids.tolist() == [2, 1, 1, 2, 2]
    assert masks[6, 6, 0] and not masks[24, 24, 0]
    assert masks[:, :, 1].sum() == 10 * 6 and masks[5:11, 40:50, 1].all()
    turned = masks[:, :, 2]  # 10 wide x 4 high about (24.5, 41.5), turned upright
    assert turned.sum() == 40 and turned[37:47, 23:27].all()
    assert masks[50, 60, 3] and not masks[40, 65, 3]
    expected = np.zeros((H, W), dtype=bool)
    expected[2:7, 60:67] = bitmap
    assert np.array_equal(masks[:, :, 4], expected)


def test_images_dir_in_the_spec_and_split(tmp_path):
    names = [f"frames/img{i:02d}.png" for i in range(30)]
    for name in names:
        write_image(tmp_path / "pictures" / name, W, H)
    xml = write_cvat(
        tmp_path / "ann" / "task.xml",
        {n: ['<box label="car" xtl="1" ytl="1" xbr="9" ybr="9"/>'] for n in names},
    )
    spec = f"cvat:{xml}:{tmp_path / 'pictures'}"
    train, val = from_spec(spec, "train"), from_spec(spec, "val")
    train_ids = {info["id"] for info in train.image_info}
    val_ids = {info["id"] for info in val.image_info}
    assert not train_ids & val_ids and train_ids | val_ids == set(names)
    assert 1 <= len(val_ids) < len(train_ids)
    with pytest.warns(DatasetWarning) as record:
        with pytest.raises(ValueError, match="all 30 were skipped"):
            from_spec(f"cvat:{xml}", None)  # the images are not beside the XML
    assert "skipped image: missing image file" in str(record[0].message)


def test_bad_files(tmp_path):
    broken = tmp_path / "broken.xml"
    broken.write_text(
        "<annotations>\n<image id='0' name='a.png' width='8' height='8'>\n</annotations>"
    )
    with pytest.raises(ValueError, match=r"broken.xml: malformed XML at line 3 column \d+"):
        _load(broken)
    empty = tmp_path / "empty.xml"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.xml: malformed XML at line 1"):
        _load(empty)
    voc = tmp_path / "voc.xml"
    voc.write_text("<annotation><object/></annotation>")
    with pytest.raises(ValueError, match="voc.xml: not a CVAT for images XML.*<annotation>"):
        _load(voc)
    no_size = tmp_path / "nosize.xml"
    no_size.write_text('<annotations><image id="3" name="a.png"/></annotations>')
    with pytest.raises(ValueError, match="nosize.xml: <image id='3'> \\(a.png\\) lacks"):
        _load(no_size)
    with pytest.raises(FileNotFoundError, match="annotation file not found"):
        _load(tmp_path / "missing.xml")


def test_bad_shapes_and_images(tmp_path):
    write_image(tmp_path / "good.png", W, H)
    write_image(tmp_path / "small.png", 20, 10)
    xml = write_cvat(
        tmp_path / "a.xml",
        {
            "good.png": [
                '<mask label="car" rle="3, 4" left="1" top="1" width="5" height="5"/>',
                '<polygon label="car" points="1,1;2,x;3,3"/>',
                '<polygon label="car" points="1,1;5,5"/>',
                '<box label="" xtl="1" ytl="1" xbr="5" ybr="5"/>',
                '<box label="car" xtl="500" ytl="500" xbr="600" ybr="600"/>',
                '<box label="car" xtl="2" ytl="2" xbr="12" ybr="12"/>',
            ],
            "small.png": ['<box label="car" xtl="1" ytl="1" xbr="5" ybr="5"/>'],
            "gone.png": ['<box label="car" xtl="1" ytl="1" xbr="5" ybr="5"/>'],
        },
    )
    with pytest.warns(DatasetWarning) as record:
        dataset = _load(xml)
    messages = _messages(record)
    assert "[good.png] mask 0: skipped region: mask runs do not fill its box" in messages
    assert "polygon 1: skipped region: bad 'points'" in messages
    assert "polygon 2: skipped region: polygon with fewer than 3 points" in messages
    assert "box 3: skipped region: no label" in messages
    assert "box 4: skipped region: entirely outside the image" in messages
    assert "[small.png]: skipped image: image size differs from the annotation's" in messages
    assert "[gone.png]: skipped image: missing image file" in messages
    report = dataset.load_report
    assert (report.images_loaded, report.regions_loaded, report.regions_skipped) == (1, 1, 5)
    assert math.isclose(dataset.load_mask(0)[0].sum(), 100)

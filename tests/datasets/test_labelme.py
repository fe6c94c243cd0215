"""The LabelMe loader: shapes, groups, embedded and separate images, layouts, bad input."""

from __future__ import annotations

import base64
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mrcnn.dataset import DatasetWarning
from mrcnn.datasets import LabelmeDataset, from_spec
from tests.helpers.data import write_image

W, H = 80, 60


def shape(label, points, kind="polygon", group_id=None, **extra) -> dict:
    return {"label": label, "points": points, "group_id": group_id, "shape_type": kind, **extra}


def write_labelme(
    path: Path,
    shapes: list,
    image_path: str | None = None,
    embed: Path | None = None,
    size: tuple[int, int] = (H, W),
) -> Path:
    """A LabelMe file; ``embed`` puts that image file's bytes into imageData."""
    data = {
        "version": "5.4.1",
        "flags": {},
        "shapes": shapes,
        "imagePath": image_path if image_path is not None else path.with_suffix(".png").name,
        "imageData": base64.b64encode(embed.read_bytes()).decode() if embed else None,
        "imageHeight": size[0],
        "imageWidth": size[1],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def png_base64(bitmap: np.ndarray) -> str:
    buffer = io.BytesIO()
    Image.fromarray(bitmap.astype(np.uint8) * 255).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _load(path, *args, **kwargs) -> LabelmeDataset:
    dataset = LabelmeDataset()
    dataset.load_labelme(path, *args, **kwargs)
    dataset.prepare()
    return dataset


def _messages(record) -> str:
    return " | ".join(str(w.message) for w in record)


def test_shapes_groups_and_skipped_lines(tmp_path):
    write_image(tmp_path / "a.png", W, H)
    bitmap = np.zeros((4, 6), dtype=bool)
    bitmap[1:3, 2:5] = True  # 6 pixels at rows 41..42, columns 52..54
    write_labelme(
        tmp_path / "a.json",
        [
            shape("dog", [[5, 5], [25, 5], [5, 25]]),
            shape("cat", [[49, 10], [40, 5]], "rectangle"),  # corners in any order
            shape("cat", [[20, 45], [26, 45]], "circle"),  # radius 6
            shape("dog", [[50, 40], [55, 43]], "mask", mask=png_base64(bitmap)),
            shape("cat", [[60, 5], [70, 5], [60, 15]], group_id=1),  # one instance ...
            shape("cat", [[60, 30], [70, 30], [60, 40]], group_id=1),  # ... in two parts
            shape("cat", [[3, 3]], "point"),
            shape("cat", [[1, 1], [9, 9]], "line"),
            shape("cat", [[1, 1], [5, 5], [9, 1]], "linestrip"),
            shape("cat", [[1, 1], [5, 5]], "cuboid"),
            shape("", [[5, 5], [25, 5], [5, 25]]),
        ],
    )
    with pytest.warns(DatasetWarning) as record:
        dataset = _load(tmp_path)
    messages = _messages(record)
    for kind in ("point", "line", "linestrip"):
        assert f"skipped region: {kind} has no area" in messages
    assert "a.json shape 9: skipped region: unknown shape type ('cuboid')" in messages
    assert "a.json shape 10: skipped region: no label" in messages
    report = dataset.load_report
    assert (report.images_loaded, report.regions_loaded, report.regions_skipped) == (1, 5, 5)
    assert dataset.class_names == ["BG", "cat", "dog"]
    masks, class_ids = dataset.load_mask(0)
    assert masks.shape == (H, W, 5) and class_ids.tolist() == [2, 1, 1, 2, 1]
    assert masks[6, 6, 0] and not masks[24, 24, 0]
    assert masks[:, :, 1].sum() == 10 * 6 and masks[5:11, 40:50, 1].all()  # both corners inside
    assert abs(masks[:, :, 2].sum() - math.pi * 36) < 25
    assert masks[:, :, 3].sum() == 6 and masks[41:43, 52:55, 3].all()
    assert masks[6, 61, 4] and masks[31, 61, 4] and not masks[20, 61, 4]  # the group's parts


def test_embedded_image_data_without_the_file(tmp_path):
    picture = write_image(tmp_path / "source" / "photo.png", W, H, color=(10, 200, 40))
    json_path = write_labelme(
        tmp_path / "data" / "photo.json",
        [shape("leaf", [[2, 2], [30, 2], [2, 30]])],
        image_path="../elsewhere/photo.png",
        embed=picture,
    )
    dataset = _load(json_path)
    image = dataset.load_image(0)
    assert image.shape == (H, W, 3) and tuple(image[0, 0, :2]) == (10, 200)
    assert np.array_equal(image, np.asarray(Image.open(picture).convert("RGB")))
    assert dataset.image_reference(0).endswith("photo.json (embedded image)")
    assert dataset.load_mask(0)[0].shape == (H, W, 1)
    # The file beside the JSON wins over the embedded copy.
    write_image(tmp_path / "elsewhere" / "photo.png", W, H, color=(1, 2, 3))
    beside = _load(json_path)
    assert tuple(beside.load_image(0)[0, 0, :2]) == (1, 2)


def test_folder_per_subset_and_hash_split(tmp_path):
    for subset, stems in (("train", ["t1", "t2"]), ("val", ["v1"])):
        for stem in stems:
            write_image(tmp_path / "split" / subset / f"{stem}.png", W, H)
            write_labelme(
                tmp_path / "split" / subset / f"{stem}.json",
                [shape(subset, [[1, 1], [9, 1], [1, 9]])],
            )
    train = from_spec(f"labelme:{tmp_path / 'split'}", "train")
    assert train.num_images == 2 and train.class_names == ["BG", "train", "val"]
    assert from_spec(f"labelme:{tmp_path / 'split'}", "val").num_images == 1
    assert from_spec(f"labelme:{tmp_path / 'split'}", None).num_images == 3
    with pytest.raises(FileNotFoundError, match="has the subsets train, val"):
        from_spec(f"labelme:{tmp_path / 'split'}", "test")

    stems = [f"img{i:02d}" for i in range(30)]
    for stem in stems:
        write_image(tmp_path / "flat" / f"{stem}.png", W, H)
        write_labelme(tmp_path / "flat" / f"{stem}.json", [shape("x", [[1, 1], [9, 1], [1, 9]])])
    train = from_spec(f"labelme:{tmp_path / 'flat'}", "train")
    val = from_spec(f"labelme:{tmp_path / 'flat'}", "val")
    train_ids = {info["id"] for info in train.image_info}
    val_ids = {info["id"] for info in val.image_info}
    assert not train_ids & val_ids and train_ids | val_ids == set(stems)
    assert 1 <= len(val_ids) < len(train_ids)


def test_bad_files_and_images(tmp_path):
    broken = tmp_path / "broken" / "a.json"
    broken.parent.mkdir()
    broken.write_text('{"shapes": [{"label": "x", "points": [[1, 2],')
    with pytest.raises(ValueError, match=r"a.json: malformed JSON at line 1 column \d+"):
        _load(broken.parent)
    empty = tmp_path / "empty" / "a.json"
    empty.parent.mkdir()
    empty.write_text("")
    with pytest.raises(ValueError, match="a.json: malformed JSON"):
        _load(empty.parent)
    other = tmp_path / "other" / "coco.json"
    other.parent.mkdir()
    other.write_text(json.dumps({"images": [], "annotations": []}))
    with pytest.raises(ValueError, match="coco.json: not a LabelMe file"):
        _load(other.parent)
    (tmp_path / "nothing").mkdir()
    with pytest.raises(FileNotFoundError, match="no LabelMe JSON files in"):
        _load(tmp_path / "nothing")

    folder = tmp_path / "mixed"
    triangle = [[1, 1], [20, 1], [1, 20]]
    write_image(folder / "good.png", W, H)
    write_labelme(folder / "good.json", [shape("x", triangle), shape("x", [[1, 1]], "circle")])
    write_labelme(folder / "gone.json", [shape("x", triangle)])  # no image, no imageData
    write_image(folder / "small.png", 20, 10)
    write_labelme(folder / "small.json", [shape("x", triangle)])  # says 80 x 60
    garbage = folder / "junk.bin"
    garbage.write_bytes(b"not an image")
    write_labelme(
        folder / "junk.json", [shape("x", triangle)], image_path="nope.png", embed=garbage
    )
    with pytest.warns(DatasetWarning) as record:
        dataset = _load(folder, None)
    messages = _messages(record)
    assert "good.json shape 1: skipped region: circle needs 2 points (1 given)" in messages
    assert "gone.json: skipped image: missing image file" in messages
    assert "small.json: skipped image: image size differs from the annotation's" in messages
    assert "junk.json: skipped image: unreadable embedded image" in messages
    assert dataset.num_images == 1 and dataset.load_report.images_skipped == 3

"""The VIA 3 loader: every shape id, classes from attributes, subsets, bad input."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from mrcnn.dataset import DatasetWarning
from mrcnn.datasets import Via3Dataset, ViaDataset, from_spec
from tests.helpers.data import write_image

W, H = 80, 60
RADIO, TEXT, CHECKBOX = 3, 1, 2


def write_via3(path: Path, files: dict[str, list], attributes: dict | None = None) -> Path:
    """A VIA 3 project: ``files`` maps a file name to its regions, each ``xy`` or
    ``(xy, av)`` or a full metadata dict (for z/xy variations)."""
    project = {
        "project": {"pid": "__VIA_PROJECT_ID__", "pname": "test", "vid_list": []},
        "config": {"file": {"loc_prefix": {"1": "", "2": "", "3": "", "4": ""}}},
        "attribute": attributes if attributes is not None else {},
        "file": {},
        "view": {},
        "metadata": {},
    }
    for n, (fname, regions) in enumerate(files.items(), start=1):
        fid = str(n)
        project["file"][fid] = {"fid": fid, "fname": fname, "type": 2, "loc": 1, "src": fname}
        project["view"][fid] = {"fid_list": [fid]}
        project["project"]["vid_list"].append(fid)
        for r, region in enumerate(regions):
            if isinstance(region, dict):
                entry = {"vid": fid, "flg": 0, "z": [], "xy": [], "av": {}, **region}
            else:
                xy, av = region if isinstance(region, tuple) else (region, {})
                entry = {"vid": fid, "flg": 0, "z": [], "xy": xy, "av": av}
            project["metadata"][f"{fid}_m{r}"] = entry
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(project))
    return path


def kind_attribute(kind: int = RADIO, options: dict | None = None, name: str = "kind") -> dict:
    options = {"0": "cat", "1": "dog", "2": "emu"} if options is None else options
    return {"1": {"aname": name, "anchor_id": "FILE1_Z0_XY1", "type": kind, "options": options}}


def _load(path, *args, **kwargs) -> Via3Dataset:
    dataset = Via3Dataset()
    dataset.load_via3(path, *args, **kwargs)
    dataset.prepare()
    return dataset


def _messages(record) -> str:
    return " | ".join(str(w.message) for w in record)


def test_every_shape_id_rasterised_and_lines_skipped(tmp_path):
    write_image(tmp_path / "a.jpg", W, H)
    project = write_via3(
        tmp_path / "project.json",
        {
            "a.jpg": [
                [2, 40, 5, 10, 6],  # rectangle x, y, w, h
                [3, 20, 45, 6],  # circle
                [4, 60, 40, 4, 12],  # ellipse rx 4, ry 12
                [7, 5, 5, 25, 5, 5, 25],  # polygon
                [8, 30, 30, 35, 28, 40, 31, 33, 36],  # extreme rectangle: 4 side points
                [9, 70, 10, 74, 14, 70, 18],  # extreme circle through 3 points: centre (70, 14)
                [1, 3, 3],  # point
                [5, 1, 1, 9, 9],  # line
                [6, 1, 1, 5, 5, 9, 1],  # polyline
                {"xy": [], "av": {}},  # a file attribute: not a region
                {"z": [2.5], "xy": [2, 1, 1, 5, 5]},  # a region on a video frame
                [42, 1, 2, 3],  # unknown shape id
            ]
        },
    )
    with pytest.warns(DatasetWarning) as record:
        dataset = _load(project, class_name="thing")
    messages = _messages(record)
    for shape in ("point", "line", "polyline"):
        assert f"skipped region: {shape} has no area" in messages
    assert "region 1_m10: skipped region: region on a video frame" in messages
    assert "region 1_m11: skipped region: unknown shape type (42)" in messages
    report = dataset.load_report
    assert (report.regions_loaded, report.regions_skipped) == (6, 5)
    assert dataset.class_names == ["BG", "thing"]
    masks, class_ids = dataset.load_mask(0)
    assert masks.shape == (H, W, 6) and class_ids.tolist() == [1] * 6
    assert masks[:, :, 0].sum() == 60 and masks[5:11, 40:50, 0].all()  # rect: 10 x 6 pixels
    assert abs(masks[:, :, 1].sum() - math.pi * 36) < 25
    assert masks[50, 60, 2] and not masks[40, 65, 2]  # ellipse long along y
    assert masks[6, 6, 3] and not masks[24, 24, 3]
    assert masks[28:37, 30:41, 4].all() and masks[:, :, 4].sum() == 11 * 9  # box of the points
    assert masks[14, 70, 5] and masks[14, 73, 5] and not masks[14, 76, 5]  # radius 4


def test_class_from_the_only_option_attribute(tmp_path):
    write_image(tmp_path / "a.png", W, H)
    project = write_via3(
        tmp_path / "p.json",
        {
            "a.png": [
                ([2, 1, 1, 5, 5], {"1": "1"}),  # dog
                ([2, 10, 10, 5, 5], {"1": "0"}),  # cat
                ([2, 20, 20, 5, 5], {}),  # no value
                ([2, 30, 30, 5, 5], {"1": "7"}),  # no such option
            ]
        },
        kind_attribute(),
    )
    with pytest.warns(DatasetWarning) as record:
        dataset = _load(project)
    messages = _messages(record)
    assert "region 1_m2: skipped region: no 'kind' attribute value" in messages
    assert "region 1_m3: skipped region: unknown 'kind' option ('7')" in messages
    # declared options count, so that ids do not depend on which subset is loaded
    assert dataset.class_names == ["BG", "cat", "dog", "emu"]
    assert dataset.load_mask(0)[1].tolist() == [2, 1]


def test_checkbox_and_text_attributes(tmp_path):
    write_image(tmp_path / "a.png", W, H)
    attributes = {
        **kind_attribute(CHECKBOX),
        "2": {"aname": "note", "anchor_id": "FILE1_Z0_XY1", "type": TEXT},
    }
    regions = [
        ([2, 1, 1, 5, 5], {"1": "2", "2": "tall"}),
        ([2, 10, 10, 5, 5], {"1": "0,1", "2": "short"}),
    ]
    project = write_via3(tmp_path / "p.json", {"a.png": regions}, attributes)
    with pytest.warns(DatasetWarning, match="'kind' has 2 options ticked, need one"):
        by_kind = _load(project)
    assert by_kind.class_names == ["BG", "cat", "dog", "emu"] and by_kind.num_images == 1
    assert by_kind.load_mask(0)[1].tolist() == [3]
    by_note = _load(project, class_attribute="note")
    assert by_note.class_names == ["BG", "short", "tall"]
    assert by_note.load_mask(0)[1].tolist() == [2, 1]
    with pytest.raises(ValueError, match="no region attribute named 'Kind'.*'kind', 'note'"):
        _load(project, class_attribute="Kind")


def test_via_spec_reads_via3_projects_and_splits_deterministically(tmp_path):
    names = [f"img{i:02d}.png" for i in range(30)]
    for name in names:
        write_image(tmp_path / "birds" / name, 16, 16)
    project = write_via3(tmp_path / "birds" / "p.json", {n: [[2, 1, 1, 4, 4]] for n in names})
    train = from_spec(f"via3:{project}", "train")
    val = from_spec(f"via:{project}", "val")  # via: no longer refuses VIA 3 projects
    assert isinstance(val, ViaDataset) and val.class_names == ["BG", "birds"]
    train_ids = {info["id"] for info in train.image_info}
    val_ids = {info["id"] for info in val.image_info}
    assert not train_ids & val_ids and train_ids | val_ids == set(names)
    assert 1 <= len(val_ids) < len(train_ids)
    assert from_spec(f"via3:{project}", None).num_images == 30
    with pytest.raises(ValueError, match="no 'test' subset"):
        from_spec(f"via3:{project}", "test")


def test_bad_files_and_images(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('{"project": {"pid": 1}, "file": {')
    with pytest.raises(ValueError, match=r"broken.json: malformed JSON at line 1 column \d+"):
        _load(broken)
    empty = tmp_path / "empty.json"
    empty.write_text("")
    with pytest.raises(ValueError, match="empty.json: malformed JSON"):
        _load(empty)
    via2 = tmp_path / "via2.json"
    via2.write_text(json.dumps({"_via_img_metadata": {}}))
    with pytest.raises(ValueError, match="via2.json: not a VIA 3 project.*via:PATH"):
        _load(via2)
    bad_file = write_via3(tmp_path / "bf.json", {"a.png": []})
    data = json.loads(bad_file.read_text())
    data["file"]["1"].pop("fname")
    bad_file.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="bf.json: file '1' is not a VIA 3 file entry"):
        _load(bad_file)
    bad_meta = write_via3(tmp_path / "bm.json", {"a.png": [[2, 1, 1, 5, 5]]})
    data = json.loads(bad_meta.read_text())
    data["metadata"]["1_m0"] = [2, 1, 1, 5, 5]
    bad_meta.write_text(json.dumps(data))
    with pytest.raises(ValueError, match="bm.json: metadata '1_m0' is not an object"):
        _load(bad_meta)
    no_images = write_via3(tmp_path / "none.json", {})
    with pytest.raises(ValueError, match="no images"):
        _load(no_images)

    write_image(tmp_path / "good.png", W, H)
    mixed = write_via3(
        tmp_path / "mixed.json",
        {"good.png": [[2, 1, 1, 5, 5], [7, 1, 1, "x", 2, 3, 3]], "gone.png": [[2, 1, 1, 5, 5]]},
    )
    with pytest.warns(DatasetWarning) as record:
        dataset = _load(mixed)
    messages = _messages(record)
    assert "mixed.json [gone.png]: skipped image: missing image file" in messages
    assert "mixed.json [good.png] region 1_m1: skipped region: bad polygon coordinate" in messages
    assert dataset.num_images == 1 and dataset.load_report.images_skipped == 1


def test_of_several_option_attributes_the_shown_label_gives_the_class(tmp_path):
    write_image(tmp_path / "a.png", W, H)
    attributes = {
        **kind_attribute(),
        "2": {
            "aname": "size",
            "anchor_id": "FILE1_Z0_XY1",
            "type": RADIO,
            "options": {"s": "small", "l": "large"},
        },
    }
    regions = [([2, 1, 1, 5, 5], {"1": "0", "2": "l"}), ([2, 9, 9, 5, 5], {"1": "1", "2": "s"})]
    project = write_via3(tmp_path / "p.json", {"a.png": regions}, attributes)
    data = json.loads(project.read_text())
    # Neither is shown as the label: no attribute is chosen, every region is one class.
    assert _load(project).class_names == ["BG", tmp_path.name]
    data["config"]["ui"] = {"spatial_region_label_attribute_id": "2"}
    data["metadata"]["9_lost"] = {"vid": "99", "z": [], "xy": [2, 1, 1, 5, 5], "av": {}}
    project.write_text(json.dumps(data))
    with pytest.warns(DatasetWarning, match="region 9_lost: skipped region: of a view the proj"):
        dataset = _load(project)
    assert dataset.class_names == ["BG", "large", "small"]
    assert dataset.load_mask(0)[1].tolist() == [1, 2]

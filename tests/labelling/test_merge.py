"""Merging into a project a person edits: their regions are kept exactly, detections over them
are skipped, and only annotate's own unedited regions are replaced on a rerun."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from mrcnn.labelling import new_project
from mrcnn.labelling.merge import MARKER, ImageRecord, relative_name
from mrcnn.labelling.polygons import Detection
from tests.helpers.annotations import (
    H,
    W,
    loaded_ious,
    output_path,
    ring,
    write_images,
    write_project,
)

FORMATS = ["via", "labelme", "coco", "cvat"]


def _make_human(format_name: str, output: Path) -> None:
    """Remove annotate's marker from every region: as if a person had drawn them."""
    files = sorted(output.glob("*.json")) if format_name == "labelme" else [output]
    for path in files:
        if format_name == "cvat":
            root = ElementTree.parse(path).getroot()
            for shape in root.iter("polygon"):
                for attribute in shape.findall("attribute"):
                    if attribute.get("name") == MARKER:
                        shape.remove(attribute)
            path.write_text(ElementTree.tostring(root, encoding="unicode"))
            continue
        data = json.loads(path.read_text())
        if format_name == "via":
            regions = [
                r["region_attributes"]
                for e in data["_via_img_metadata"].values()
                for r in e["regions"]
            ]
        elif format_name == "labelme":
            regions = data["shapes"]
        else:
            regions = [a["attributes"] for a in data["annotations"]]
        for region in regions:
            region.pop(MARKER, None)
        path.write_text(json.dumps(data))


def _merge(format_name, source, paths, detections, output):
    project = new_project(format_name, ["ring"])
    project.read(source)
    folder = output if format_name == "labelme" else output.parent
    counts = [
        project.add_image(ImageRecord(p, relative_name(p, folder), H, W), d)
        for p, d in zip(paths, detections, strict=True)
    ]
    folder.mkdir(parents=True, exist_ok=True)
    for target, text in project.contents(output).items():
        target.write_text(text)
    return counts


@pytest.mark.parametrize("format_name", FORMATS)
def test_human_regions_are_kept_and_only_annotates_own_are_replaced(tmp_path, format_name):
    paths = write_images(tmp_path / "images", 1)
    human = Detection.from_mask(ring(30, 30, 18, 0), "ring")
    first = write_project(format_name, paths, [[human]], output_path(format_name, tmp_path / "a"))
    _make_human(format_name, first)
    near = Detection.from_mask(ring(31, 32, 18, 0), "ring", 0.9)  # IoU with the human's ~0.9
    other = Detection.from_mask(ring(60, 90, 15, 0), "ring", 0.8)
    second = output_path(format_name, tmp_path / "b")
    (counts,) = _merge(format_name, first, paths, [[near, other]], second)
    assert (counts.overlapping, counts.written, counts.kept, counts.replaced) == (1, 1, 1, 0)
    assert min(loaded_ious(format_name, second, [[human, other]])) >= 0.95

    moved = Detection.from_mask(ring(62, 88, 15, 0), "ring", 0.7)
    third = output_path(format_name, tmp_path / "c")
    (counts,) = _merge(format_name, second, paths, [[moved]], third)
    assert (counts.written, counts.kept, counts.replaced) == (1, 1, 1)
    assert min(loaded_ious(format_name, third, [[human, moved]])) >= 0.95
    gone = loaded_ious(format_name, third, [[other]])[0]
    assert gone < 0.95  # the earlier machine region was replaced, not kept beside


def test_an_edited_machine_region_counts_as_a_persons(tmp_path):
    paths = write_images(tmp_path / "images", 1)
    detection = Detection.from_mask(ring(40, 60, 20, 0), "ring", 0.9)
    output = write_project("via", paths, [[detection]], tmp_path / "a" / "project.json")
    data = json.loads(output.read_text())
    (entry,) = data["_via_img_metadata"].values()
    entry["regions"][0]["shape_attributes"]["all_points_x"][0] += 2  # a person moved a vertex
    output.write_text(json.dumps(data))
    (counts,) = _merge("via", output, paths, [[]], tmp_path / "b.json")
    assert (counts.kept, counts.replaced) == (1, 0)


@pytest.mark.parametrize(
    ("format_name", "content", "message"),
    [
        ("coco", '{"_via_img_metadata": {}}', "pass --format via"),
        ("via", '{"images": [], "annotations": [], "categories": []}', "pass --format coco"),
        ("via", '{"_via_img_metadata": {', "malformed JSON at line 1"),
        ("cvat", "<annotations><image", "malformed XML"),
    ],
)
def test_a_project_in_another_format_or_broken_is_one_line(tmp_path, format_name, content, message):
    path = tmp_path / ("p.xml" if format_name == "cvat" else "p.json")
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as error:
        new_project(format_name, ["a"]).read(path)
    assert "\n" not in str(error.value)

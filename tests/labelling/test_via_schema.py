"""The VIA 2 project annotate writes is the one VIA itself saves: compared with a project that
VGG Image Annotator 2.0.10 saved after opening annotate's file and being edited by hand
(tests/fixtures/via/README.md says how it was made), and with the balloon dataset's
via_region_data.json, saved by VIA, where it is present. With ``MRCNN_VIA_HTML`` naming VIA 2's
page, the VIA session is redone live in headless Chromium."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from mrcnn.datasets import from_spec
from mrcnn.labelling.annotate import dataset_spec
from mrcnn.labelling.merge import ImageRecord
from mrcnn.labelling.via import ViaProject
from tests.helpers.paths import BALLOON
from tools.browser import chromium_missing
from tools.via_reference.make_fixture import DRAWN_SQUARE, FIXTURE, edit_in_via, write_scene


def _layout(value):
    """The value's structure: dict keys (recursively) and leaf types (int and float as number)."""
    if isinstance(value, dict):
        return {k: _layout(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_layout(value[0])] if value else []
    if isinstance(value, bool):
        return "bool"
    return "number" if isinstance(value, (int, float)) else type(value).__name__


@pytest.fixture
def scene(tmp_path) -> tuple[list[Path], Path]:
    """The fixture's two images and annotate's project of them, written now."""
    return write_scene(tmp_path / "images")


@pytest.fixture
def ours(scene) -> dict:
    return json.loads(scene[1].read_text())


@pytest.fixture(scope="module")
def saved() -> dict:
    return json.loads(FIXTURE.read_text())


def _regions(project: dict) -> dict[str, list[dict]]:
    return {e["filename"]: e["regions"] for e in project["_via_img_metadata"].values()}


def test_project_layout_is_the_one_via_saved(ours, saved):
    assert _layout(ours) == _layout(saved)
    for key in ("_via_settings", "_via_attributes", "_via_data_format_version"):
        assert ours[key] == saved[key], key
    assert ours["_via_image_id_list"] == saved["_via_image_id_list"]
    assert list(ours["_via_img_metadata"]) == list(saved["_via_img_metadata"])
    for entry, saved_entry in zip(
        ours["_via_img_metadata"].values(), saved["_via_img_metadata"].values(), strict=True
    ):
        assert {k: v for k, v in entry.items() if k != "regions"} == {
            k: v for k, v in saved_entry.items() if k != "regions"
        }


def test_via_saved_back_every_region_nobody_edited(ours, saved):
    written, kept = _regions(ours), _regions(saved)
    assert kept["img1.png"] == written["img1.png"]
    relabelled, untouched, drawn = kept["img0.png"]
    assert untouched == written["img0.png"][1]
    assert relabelled["shape_attributes"] == written["img0.png"][0]["shape_attributes"]
    assert relabelled["region_attributes"] == {
        **written["img0.png"][0]["region_attributes"],
        "class": "frame",
    }
    assert drawn["shape_attributes"]["name"] == "polygon"
    assert drawn["region_attributes"]["class"] == "frame"


def test_merge_tells_a_person_s_edits_in_via_from_annotate_s_regions(scene, tmp_path):
    images, _ = scene
    project = ViaProject(["frame", "ring"])
    project.read(FIXTURE)
    first, second = (ImageRecord(p, p.name, 96, 128) for p in images)
    humans, unchanged = project.regions(first)
    assert (len(humans), unchanged) == (2, 1)  # the relabelled ring and the drawn square
    assert all(h.rle is not None for h in humans)
    humans, unchanged = project.regions(second)
    assert (len(humans), unchanged) == (0, 2)


def test_our_loader_reads_the_file_via_saved(scene):
    images, _ = scene
    copy = shutil.copy(FIXTURE, images[0].parent / "edited.json")
    dataset = from_spec(dataset_spec("via", Path(copy)), None)
    by_name = {Path(info["path"]).name: i for i, info in enumerate(dataset.image_info)}
    masks, class_ids = dataset.load_mask(by_name["img0.png"])
    names = [dataset.class_names[i] for i in class_ids]
    assert names == ["frame", "frame", "frame"]
    drawn = masks[:, :, 2]
    vias = _regions(json.loads(FIXTURE.read_text()))["img0.png"][2]["shape_attributes"]
    (x1, x2), (y1, y2) = (
        (min(vias[f"all_points_{a}"]), max(vias[f"all_points_{a}"])) for a in "xy"
    )
    square = np.zeros_like(drawn)
    square[y1 : y2 + 1, x1 : x2 + 1] = True  # vertices on pixel centres: the border is inside
    assert np.array_equal(drawn, square)
    assert (x2 - x1, y2 - y1) == (30, 30) == tuple(np.ptp(DRAWN_SQUARE, axis=0))


def test_via_saves_the_fixture_again_today(tmp_path):
    """The VIA session redone live (needs VIA 2's page: ``MRCNN_VIA_HTML``) saves the
    committed fixture byte for byte, so the fixture is what VIA writes for annotate's file."""
    page = os.environ.get("MRCNN_VIA_HTML")
    if not page:
        pytest.skip("MRCNN_VIA_HTML is not set (VIA 2's src/index.html from ox-vgg/via)")
    if why := chromium_missing():
        pytest.skip(why)
    assert edit_in_via(Path(page), tmp_path) == FIXTURE.read_text()


def test_regions_match_the_balloon_file_saved_by_via(ours):
    path = BALLOON / "val" / "via_region_data.json"
    if not path.is_file():
        pytest.skip(f"{path} absent (the balloon dataset is not beside the checkout)")
    saved_entry = next(iter(json.loads(path.read_text()).values()))
    saved_region = next(iter(saved_entry["regions"].values()))
    region = next(iter(ours["_via_img_metadata"].values()))["regions"][0]
    assert list(region) == list(saved_region)
    shape, saved_shape = region["shape_attributes"], saved_region["shape_attributes"]
    assert list(shape) == list(saved_shape)
    assert all(isinstance(v, int) for v in shape["all_points_x"] + shape["all_points_y"])
    assert all(isinstance(v, int) for v in saved_shape["all_points_x"])
    assert {"filename", "size", "regions", "file_attributes"} <= set(saved_entry)

"""The VIA 2 project annotate writes has the layout VIA itself saves, field by field: compared
with a fixture of that layout (tests/fixtures/via/README.md says where it comes from) and with
the balloon dataset's via_region_data.json, saved by VIA, where it is present."""

from __future__ import annotations

import json

import pytest

from tests.helpers.annotations import output_path, shapes_with_holes, write_images, write_project
from tests.helpers.paths import BALLOON, FIXTURES


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
def ours(tmp_path) -> dict:
    paths = write_images(tmp_path / "images", 2)
    output = write_project("via", paths, shapes_with_holes(False), output_path("via", tmp_path))
    return json.loads(output.read_text())


def test_project_layout_matches_vias_own(ours):
    saved = json.loads((FIXTURES / "via" / "via2_saved_layout.json").read_text())
    assert list(ours) == list(saved)
    assert ours["_via_data_format_version"] == saved["_via_data_format_version"]
    settings, expected = _layout(ours["_via_settings"]), _layout(saved["_via_settings"])
    settings["project"]["name"] = expected["project"]["name"]  # the name differs, not its type
    assert settings == expected
    entry, saved_entry = (
        next(iter(ours["_via_img_metadata"].values())),
        next(iter(saved["_via_img_metadata"].values())),
    )
    assert list(entry) == list(saved_entry)
    assert _layout(entry["regions"][0]["shape_attributes"]) == _layout(
        saved_entry["regions"][0]["shape_attributes"]
    )
    assert list(entry["regions"][0]) == list(saved_entry["regions"][0])
    assert all(isinstance(v, str) for v in entry["regions"][0]["region_attributes"].values())
    declared, saved_declared = ours["_via_attributes"], saved["_via_attributes"]
    assert list(declared) == list(saved_declared)
    dropdown, saved_dropdown = declared["region"]["class"], saved_declared["region"]["kind"]
    assert list(dropdown) == list(saved_dropdown) and dropdown["type"] == saved_dropdown["type"]
    assert set(dropdown["options"]) == {"ring", "frame"}
    assert all(v == "" for v in dropdown["options"].values())
    assert _layout(declared["region"]["score"]) == _layout(saved_declared["region"]["note"])
    assert ours["_via_image_id_list"] == list(ours["_via_img_metadata"])
    assert all(
        key == e["filename"] + str(e["size"]) for key, e in ours["_via_img_metadata"].items()
    )


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

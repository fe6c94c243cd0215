"""The round trip on the balloon validation photos, their ground-truth masks standing in for
detections (a tiny random model detects nothing useful there): each format, our loader, mask
IoU >= 0.95 per instance at the default tolerance."""

from __future__ import annotations

import pytest

from benchmarks.annotate_roundtrip import balloon_cases, round_trip
from mrcnn.labelling import WriteOptions
from tests.helpers.paths import BALLOON


@pytest.fixture(scope="module")
def cases():
    if not (BALLOON / "val" / "via_region_data.json").is_file():
        pytest.skip(f"{BALLOON} absent (the balloon dataset is not beside the checkout)")
    return balloon_cases()[:4]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools on numpy 2
@pytest.mark.parametrize("format_name", ["via", "coco"])
def test_balloon_masks_come_back(cases, tmp_path, format_name):
    ious = round_trip(format_name, cases, tmp_path, WriteOptions())
    assert min(ious) >= 0.95, ious

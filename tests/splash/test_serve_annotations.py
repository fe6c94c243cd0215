"""The page's annotation downloads (``GET /api/uploads/{id}/annotations.json``): a photo's
detections as a VIA 2 project or a LabelMe file, read back by our loaders.

The browser's download of them is in test_serve_browser.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pytest

from tests.helpers.serve import CLASS_NAMES, ShapesModel, blob_photo, local_client

pytest.importorskip("starlette", reason="the serve extra is not installed: pip install '.[serve]'")
pytest.importorskip("multipart", reason="the serve extra is not installed: pip install '.[serve]'")
pytest.importorskip("httpx2", reason="the tests' HTTP client: pip install httpx2")

from mrcnn.datasets import from_spec  # noqa: E402
from mrcnn.evaluation.overlaps import compute_overlaps_masks  # noqa: E402
from mrcnn.splash.service import SplashService  # noqa: E402
from mrcnn.splash.web import create_app  # noqa: E402

NAMES = ["BG", *CLASS_NAMES]
#: The round trip's bar at ``mrcnn annotate``'s default tolerance (as tests/labelling's).
MIN_IOU = 0.95
#: The photo: its name (a stem that is not all digits) and size.
PHOTO_NAME, WIDTH, HEIGHT = "garden party.jpg", 200, 150


@pytest.fixture(scope="module")
def photo(module_tmp) -> Path:
    return blob_photo(module_tmp.mktemp("photo") / PHOTO_NAME, WIDTH, HEIGHT, seed=3)


@pytest.fixture(scope="module")
def client():
    service = SplashService(ShapesModel(min_confidence=0.5), NAMES, score_floor=0.05)
    with local_client(create_app(service)) as client:
        yield client


@pytest.fixture(scope="module")
def upload_id(client, photo) -> str:
    response = client.post("/api/uploads", files={"image": (PHOTO_NAME, photo.read_bytes())})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def download(client, upload_id: str, folder: Path, photo: Path, **params) -> Path:
    """Fetch the annotation file, save it under the name the server gives, beside a copy of
    the photo (where a person would put it), and return its path."""
    response = client.get(f"/api/uploads/{upload_id}/annotations.json", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    disposition = response.headers["content-disposition"]
    prefix = 'attachment; filename="garden_party'  # an ASCII stand-in for old clients
    assert disposition.startswith(prefix), disposition
    folder.mkdir(parents=True)
    (folder / photo.name).write_bytes(photo.read_bytes())
    target = folder / unquote(disposition.split("filename*=UTF-8''")[1])
    target.write_bytes(response.content)
    return target


def loaded(spec: str) -> tuple[np.ndarray, list[str]]:
    """The masks bool [H, W, N] and class names our loader reads from a project of one photo."""
    dataset = from_spec(spec, None)
    assert [Path(info["path"]).name for info in dataset.image_info] == [PHOTO_NAME]
    masks, class_ids = dataset.load_mask(0)
    return masks, [dataset.class_names[i] for i in class_ids]


def assert_come_back(expected: list[tuple[str, np.ndarray]], masks, names) -> None:
    """Each expected (class name, mask) is one loaded instance of its class, IoU >= MIN_IOU."""
    assert len(names) == len(expected), f"{len(names)} instances, expected {len(expected)}"
    ious = compute_overlaps_masks(np.stack([m for _, m in expected], axis=-1), masks)
    for k, (name, _) in enumerate(expected):
        best = int(ious[k].argmax())
        assert ious[k, best] >= MIN_IOU, (name, ious[k])
        assert names[best] == name


# ------------------------------------------------------------------------------------------------
def test_labelme_download_reads_back_as_the_detections(client, upload_id, photo, tmp_path):
    target = download(client, upload_id, tmp_path / "labelme", photo, format="labelme")
    assert target.name == "garden party.json"  # the photo's stem: LabelMe looks for it
    data = json.loads(target.read_text())
    assert data["imagePath"] == PHOTO_NAME and data["imageData"] is None
    assert (data["imageWidth"], data["imageHeight"]) == (WIDTH, HEIGHT)
    # the default threshold (0.5): the small disc of 0.2 is left out; the ring keeps its hole
    assert sorted({(s["label"], s["score"]) for s in data["shapes"]}) == [
        ("balloon", 0.7),
        ("balloon", 0.9),
        ("kite", 0.8),
    ]
    expected = [
        (NAMES[c], np.logical_or.reduce(parts))
        for c, score, parts, _ in ShapesModel.parts(HEIGHT, WIDTH)
        if score >= 0.5
    ]
    assert_come_back(expected, *loaded(f"labelme:{target.parent}"))


def test_via_download_reads_back_with_holes_filled_and_parts_apart(
    client, upload_id, photo, tmp_path
):
    target = download(client, upload_id, tmp_path / "via", photo, format="via", min_score="0.15")
    assert target.name == "garden party_via.json"
    data = json.loads(target.read_text())
    (entry,) = data["_via_img_metadata"].values()
    size = photo.stat().st_size
    assert (entry["filename"], entry["size"]) == (PHOTO_NAME, size)
    assert list(data["_via_img_metadata"]) == [f"{PHOTO_NAME}{size}"]  # the key VIA gives it
    scores = sorted(r["region_attributes"]["score"] for r in entry["regions"])
    assert scores == ["0.200", "0.700", "0.700", "0.800", "0.900"]  # the small disc, 2 parts
    # VIA has neither holes nor grouped parts: the ring comes back filled, the two discs apart
    expected = []
    for class_id, _, parts, hole in ShapesModel.parts(HEIGHT, WIDTH):
        if hole:
            continue  # checked below: filled
        expected += [(NAMES[class_id], part) for part in parts]
    masks, names = loaded(f"via:{target}?class_attribute=class")
    ring = ShapesModel.parts(HEIGHT, WIDTH)[1][2][0]
    yy, xx = np.mgrid[:HEIGHT, :WIDTH]
    filled = np.hypot(yy - 40, xx - 120) <= 30  # the ring's outer disc
    assert_come_back([*expected, ("kite", filled)], masks, names)
    assert compute_overlaps_masks(ring[:, :, None], masks).max() < 0.9


def test_classes_filter_the_download_and_none_gives_an_empty_file(client, upload_id):
    base = f"/api/uploads/{upload_id}/annotations.json"
    kites = client.get(base, params={"format": "labelme", "classes": "2"}).json()
    assert [s["label"] for s in kites["shapes"]] == ["kite"]
    empty = client.get(base, params={"format": "via", "classes": ""})
    assert empty.status_code == 200
    (entry,) = empty.json()["_via_img_metadata"].values()
    assert entry["regions"] == [] and entry["filename"] == PHOTO_NAME


@pytest.mark.parametrize(
    ("query", "status", "words"),
    [
        ("", 400, "no format: give format=via"),
        ("format=coco", 400, "format='coco'"),
        ("format=via&format=labelme", 400, "given 2 times"),
        ("format=via&tolerance=1", 400, "unknown parameter 'tolerance'"),
        ("format=via&min_score=0.01", 400, "min_score=0.01"),
        ("format=via&classes=9", 400, "unknown class ids"),
    ],
)
def test_bad_requests_get_a_json_error_naming_what(client, upload_id, query, status, words):
    response = client.get(f"/api/uploads/{upload_id}/annotations.json?{query}")
    assert response.status_code == status
    assert words in response.json()["error"]


def test_an_unknown_upload_gets_404_saying_to_upload_again(client):
    response = client.get("/api/uploads/0123abcd/annotations.json?format=via")
    assert response.status_code == 404
    assert "upload the photo again" in response.json()["error"]


def test_a_file_name_with_a_folder_is_written_without_it(client, photo):
    response = client.post(
        "/api/uploads", files={"image": ("photos/2024/garden party.jpg", photo.read_bytes())}
    )
    upload_id = response.json()["id"]
    data = client.get(f"/api/uploads/{upload_id}/annotations.json?format=labelme").json()
    assert data["imagePath"] == PHOTO_NAME

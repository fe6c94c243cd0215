"""The splash web app's API (mrcnn/splash/web.py, mrcnn/splash/service.py) on a tiny model.

The browser tests of the page are in test_serve_browser.py.
"""

from __future__ import annotations

import io
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers.serve import (
    CLASS_NAMES,
    blob_photo,
    live_server,
    local_client,
    save_serve_checkpoint,
    serve_model,
)

pytest.importorskip("starlette", reason="the serve extra is not installed: pip install '.[serve]'")
pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install '.[serve]'")
pytest.importorskip("multipart", reason="the serve extra is not installed: pip install '.[serve]'")
httpx = pytest.importorskip("httpx2", reason="the tests' HTTP client: pip install httpx2")

from mrcnn.evaluation import detections_to_coco  # noqa: E402
from mrcnn.splash.filter import color_splash  # noqa: E402
from mrcnn.splash.service import SplashService  # noqa: E402
from mrcnn.splash.web import create_app  # noqa: E402
from mrcnn.structures.image import read_image  # noqa: E402

NAMES = ["BG", *CLASS_NAMES]


@pytest.fixture(scope="module")
def photos(module_tmp) -> list[Path]:
    """Four photos of different sizes, so that a mixed-up answer cannot pass for another's."""
    folder = module_tmp.mktemp("photos")
    sizes_seeds = [(320, 240, 0), (256, 192, 21), (300, 300, 2), (200, 280, 13)]  # 4-8 found
    return [blob_photo(folder / f"{i}.jpg", *spec) for i, spec in enumerate(sizes_seeds)]


@pytest.fixture(scope="module")
def reference_model():
    """A second copy of the served model, for direct ``detect`` calls (threshold 0)."""
    return serve_model(DETECTION_MIN_CONFIDENCE=0.0)


@pytest.fixture()
def service():
    return SplashService(serve_model(DETECTION_MIN_CONFIDENCE=0.5), NAMES, score_floor=0.05)


@pytest.fixture()
def client(service):
    with local_client(create_app(service)) as client:
        yield client


def upload(client, path: Path, name: str | None = None) -> dict:
    response = client.post("/api/uploads", files={"image": (name or path.name, path.read_bytes())})
    assert response.status_code == 201, response.text
    return response.json()


def direct_coco(model, path: Path, min_score: float) -> list[dict]:
    """What a direct ``detect`` gives for that photo at that threshold, as COCO results."""
    result = model.detect([read_image(path)])[0]
    keep = result["scores"] >= min_score
    kept = {k: v[..., keep] if k == "masks" else v[keep] for k, v in result.items()}
    return detections_to_coco([kept], [int(path.stem)])


def assert_same_results(got: list[dict], expected: list[dict], where: str) -> None:
    assert len(got) == len(expected), f"{where}: {len(got)} detections, expected {len(expected)}"
    for g, e in zip(got, expected, strict=True):
        assert g["image_id"] == e["image_id"], where
        assert g["category_id"] == e["category_id"], where
        assert g["category_name"] == NAMES[e["category_id"]], where
        assert g["score"] == pytest.approx(e["score"], abs=1e-4), where
        assert g["bbox"] == pytest.approx(e["bbox"], abs=0.01), where
        assert g["segmentation"]["size"] == e["segmentation"]["size"], where
        assert g["segmentation"]["counts"] == e["segmentation"]["counts"], where


def decode_png(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


# ------------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------------
def test_info_gives_classes_effects_and_thresholds(client):
    info = client.get("/api/info").json()
    assert info["class_names"] == NAMES
    assert info["effects"] == ["gray", "blur", "color", "dim"]
    assert info["default_threshold"] == 0.5  # the model's DETECTION_MIN_CONFIDENCE
    assert info["score_floor"] == 0.05


def test_page_and_its_files_are_served_without_outside_links(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for name in ("serve.js", "serve.css"):
        assert client.get(f"/{name}").status_code == 200
        assert name in page.text
    for text in (page.text, client.get("/serve.js").text, client.get("/serve.css").text):
        assert "http://" not in text and "https://" not in text  # offline: no CDN


def test_upload_gives_a_direct_detect_down_to_the_floor(client, service, photos, reference_model):
    body = upload(client, photos[0])
    assert (body["width"], body["height"]) == (320, 240)
    assert_same_results(body["detections"], direct_coco(reference_model, photos[0], 0.05), "up")
    # the model now detects down to the floor; the page starts at the model's own threshold
    assert service.model.config.DETECTION_MIN_CONFIDENCE == 0.05


def test_threshold_and_classes_filter_without_detecting_again(
    client, service, photos, reference_model, monkeypatch
):
    uploads = [upload(client, p) for p in photos]
    monkeypatch.setattr(service.model, "detect", None)  # a second detection would fail
    for path, body in zip(photos, uploads, strict=True):
        for min_score in (0.05, 0.4, 0.55, 0.7, 1.0):
            got = client.get(
                f"/api/uploads/{body['id']}/detections.json", params={"min_score": min_score}
            ).json()
            expected = direct_coco(reference_model, path, min_score)
            assert_same_results(got, expected, f"{path.name} at {min_score}")
    scores = [d["score"] for body in uploads for d in body["detections"]]
    assert min(scores) < 0.5 < max(scores), "the photos must test a threshold that filters"
    body = uploads[0]
    only_first = client.get(
        f"/api/uploads/{body['id']}/detections.json", params={"min_score": 0.05, "classes": "1"}
    ).json()
    assert only_first == [d for d in body["detections"] if d["category_id"] == 1]
    none = client.get(f"/api/uploads/{body['id']}/detections.json?min_score=0.05&classes=")
    assert none.json() == []
    default = client.get(f"/api/uploads/{body['id']}/detections.json").json()
    assert default == [d for d in body["detections"] if d["score"] >= 0.5]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # pycocotools vs numpy 2
@pytest.mark.parametrize("effect", ["gray", "blur", "dim"])
def test_splash_png_is_the_color_splash_of_the_kept_masks(client, photos, effect):
    from pycocotools import mask as mask_utils

    body = upload(client, photos[1])
    query = {"min_score": 0.05, "effect": effect}
    response = client.get(f"/api/uploads/{body['id']}/splash.png", params=query)
    assert response.headers["content-type"] == "image/png"
    assert 'filename="1_splash.png"' in response.headers["content-disposition"]
    kept = body["detections"]
    assert kept, "the photo must have detections"
    masks = mask_utils.decode([d["segmentation"] for d in kept]).astype(bool)
    expected = color_splash(read_image(photos[1]), masks, effect)
    np.testing.assert_array_equal(decode_png(response.content), expected)


def test_detections_picture_is_the_photo_with_the_detections_drawn(client, photos):
    body = upload(client, photos[2])
    url = f"/api/uploads/{body['id']}/detections.jpg"
    drawn = client.get(url, params={"min_score": 0.05})
    bare = client.get(url, params={"min_score": 0.05, "classes": ""})
    assert drawn.headers["content-type"] == "image/jpeg"
    photo = read_image(photos[2]).astype(int)
    drawn_error = np.abs(decode_png(drawn.content).astype(int) - photo).mean()
    bare_error = np.abs(decode_png(bare.content).astype(int) - photo).mean()
    assert bare_error < 3 < drawn_error  # nothing drawn: the photo (JPEG noise); else masks


def test_detect_endpoint_gives_coco_results_at_a_threshold(client, photos, reference_model):
    files = {"image": (photos[3].name, photos[3].read_bytes())}
    got = client.post("/api/detect", files=files, params={"min_score": 0.6}).json()
    assert_same_results(got, direct_coco(reference_model, photos[3], 0.6), "detect")


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------
def test_bad_uploads_get_a_4xx_and_a_clear_message(client, tmp_path):
    def post(name, data, field="image"):
        response = client.post("/api/uploads", files={field: (name, data)})
        return response.status_code, response.json()["error"]

    status, error = post("notes.txt", b"these are not pixels\n")
    assert status == 415 and "notes.txt" in error and "not an image file" in error
    status, error = post("empty.jpg", b"")
    assert status == 400 and "empty.jpg" in error and "empty" in error
    status, error = post("photo.jpg", b"\xff\xd8\xff\xe0" + b"\0" * 100)  # a broken JPEG
    assert status == 415 and "photo.jpg" in error
    status, error = post("photo.jpg", b"x", field="file")
    assert status == 400 and "'image'" in error
    chunked = client.post(
        "/api/uploads", content=iter([b"abc"]), headers={"content-type": "image/jpeg"}
    )
    assert chunked.status_code == 411 and "Content-Length" in chunked.json()["error"]


def test_too_large_uploads_are_refused_with_413(photos):
    size = photos[0].stat().st_size
    service = SplashService(serve_model(), NAMES, max_upload_bytes=size - 1)
    with local_client(create_app(service)) as client:
        response = client.post("/api/uploads", files={"image": ("0.jpg", photos[0].read_bytes())})
        assert response.status_code == 413
        assert "over the upload limit" in response.json()["error"]
        huge = b"\0" * (size + 100 * 1024)  # refused from its Content-Length, before reading
        response = client.post("/api/detect", files={"image": ("huge.jpg", huge)})
        assert response.status_code == 413
    service = SplashService(serve_model(), NAMES, max_pixels=320 * 240 - 1)
    with local_client(create_app(service)) as client:
        response = client.post("/api/uploads", files={"image": ("0.jpg", photos[0].read_bytes())})
        assert response.status_code == 413
        error = response.json()["error"]
        assert "320 x 240 = 76800 pixels is over the limit of 76799 pixels" in error


def test_bad_parameters_and_unknown_uploads_get_a_4xx(client, photos):
    body = upload(client, photos[0])
    base = f"/api/uploads/{body['id']}"
    cases = {
        f"{base}/splash.png?effect=sepia": (400, "sepia"),
        f"{base}/splash.png?min_score=high": (400, "min_score"),
        f"{base}/splash.png?min_score=0.01": (400, "score-floor"),
        f"{base}/detections.json?classes=7": (400, "unknown class"),
        f"{base}/detections.json?classes=balloon": (400, "class ids"),
        "/api/uploads/0123abcd/splash.png": (404, "upload the photo again"),
    }
    for url, (status, words) in cases.items():
        response = client.get(url)
        assert response.status_code == status, url
        assert words in response.json()["error"], url


def test_old_uploads_expire_from_the_cache(photos):
    service = SplashService(serve_model(), NAMES, cache_size=2)
    with local_client(create_app(service)) as client:
        ids = [upload(client, p)["id"] for p in photos[:3]]
        assert client.get(f"/api/uploads/{ids[0]}/detections.json").status_code == 404
        for upload_id in ids[1:]:
            assert client.get(f"/api/uploads/{upload_id}/detections.json").status_code == 200


# ------------------------------------------------------------------------------------------------
# Load and the command
# ------------------------------------------------------------------------------------------------
def test_a_burst_of_50_requests_from_8_clients_gets_every_answer_right(photos, reference_model):
    service = SplashService(serve_model(), NAMES, score_floor=0.05)
    expected = {p.name: direct_coco(reference_model, p, 0.05) for p in photos}
    detect, running, most_at_once = service.model.detect, [], []

    def counted_detect(images):  # records how many detections run at the same time
        running.append(1)
        most_at_once.append(len(running))
        try:
            return detect(images)
        finally:
            running.pop()

    service.model.detect = counted_detect
    jobs = [photos[i % len(photos)] for i in range(50)]

    def ask(path: Path) -> tuple[str, int, list]:
        with httpx.Client(base_url=base, timeout=120) as http:
            files = {"image": (path.name, path.read_bytes())}
            response = http.post("/api/detect", files=files, params={"min_score": 0.05})
            return path.name, response.status_code, response.json()

    with live_server(create_app(service)) as base:
        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(ask, jobs))
    assert len(answers) == 50
    assert len(most_at_once) == 50 and max(most_at_once) == 1  # served in turn
    for name, status, body in answers:
        assert status == 200, body
        assert_same_results(body, expected[name], name)


def test_serve_command_serves_the_page_until_stopped(tmp_path):
    import socket

    weights = save_serve_checkpoint(tmp_path / "tiny.pt")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "mrcnn", "serve", "--weights", str(weights)]
    command += ["--port", str(port), "--device", "cpu"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        info = _wait_for(f"http://127.0.0.1:{port}/api/info", process)
        assert info["class_names"] == NAMES
        assert "<title>" in httpx.get(f"http://127.0.0.1:{port}/").text
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert f"open http://127.0.0.1:{port}/" in output


def _wait_for(url: str, process: subprocess.Popen, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"mrcnn serve exited: {process.communicate()[0]}")
        try:
            return httpx.get(url, timeout=5).json()
        except httpx.TransportError:
            time.sleep(0.2)
    raise AssertionError(f"mrcnn serve did not answer {url} within {timeout} s")


def test_serve_command_says_how_to_install_the_web_stack(tmp_path, monkeypatch, capsys):
    import importlib.util

    from mrcnn.cli import main

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *args: None if name == "uvicorn" else real_find_spec(name, *args),
    )
    assert main(["serve", "--weights", str(tmp_path / "missing.pt")]) == 1
    error = capsys.readouterr().err
    assert "uvicorn" in error and "pip install 'mrcnn[serve]'" in error


def test_serve_command_refuses_a_busy_port_before_loading(tmp_path, capsys):
    import socket

    from mrcnn.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        argv = ["serve", "--weights", str(tmp_path / "not-loaded.pt"), "--port", str(port)]
        assert main(argv) == 1
    error = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in error and "--port" in error

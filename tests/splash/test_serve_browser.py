"""The splash page in a real browser: headless Chromium (Debian's) driven by Selenium.

Uses the system chromedriver (/usr/bin/chromedriver) and Chromium: nothing is downloaded. The
server runs a tiny model in a thread on a free localhost port and is always stopped.
"""

from __future__ import annotations

import base64
import io
import json
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from tests.helpers.paths import BALLOON
from tests.helpers.serve import CLASS_NAMES, blob_photo, live_server, serve_model
from tools.browser import chromium_missing, headless_chromium

#: A val photo with two detections of the test model, scoring about 0.70 and 0.43.
PHOTO_NAME = "24631331976_defa3bb61f_k.jpg"

if why := chromium_missing():
    pytest.skip(why, allow_module_level=True)
if not BALLOON.is_dir():
    pytest.skip(f"balloon photos not found at {BALLOON}", allow_module_level=True)
pytest.importorskip("uvicorn", reason="the serve extra is not installed: pip install '.[serve]'")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from mrcnn.splash.service import SplashService  # noqa: E402
from mrcnn.splash.web import create_app  # noqa: E402


def balloon_photo() -> Path:
    photos = sorted((BALLOON / "val").glob("*.jpg"))
    if not photos:
        pytest.skip(f"no .jpg photos in {BALLOON / 'val'}")
    named = BALLOON / "val" / PHOTO_NAME
    return named if named.is_file() else photos[0]


@pytest.fixture(scope="module")
def server():
    service = SplashService(serve_model(DETECTION_MIN_CONFIDENCE=0.3), ["BG", *CLASS_NAMES])
    with live_server(create_app(service)) as url:
        yield url


@pytest.fixture()
def browser(tmp_path):
    driver = headless_chromium(tmp_path / "downloads")
    driver.downloads = tmp_path / "downloads"
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver, condition, timeout: float = 60):
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition(d))


def rendered(driver) -> str:
    """The query of the last complete render (both pictures loaded), "" while rendering."""
    return driver.find_element(By.ID, "results").get_attribute("data-rendered") or ""


def test_upload_a_balloon_photo_change_the_threshold_and_download(server, browser, tmp_path):
    photo = balloon_photo()
    width, height = Image.open(photo).size
    browser.get(server + "/")
    wait(browser, lambda d: "classes" in d.find_element(By.ID, "model-info").text)
    browser.find_element(By.ID, "file-input").send_keys(str(photo))

    # the splash appears at the model's threshold, beside the detections
    wait(browser, lambda d: "min_score=0.30" in rendered(d))
    splash = browser.find_element(By.ID, "splash-image")
    assert browser.execute_script("return arguments[0].naturalWidth", splash) in (width, height)
    detections = browser.execute_script("return state.upload.detections")
    scores = sorted((d["score"] for d in detections), reverse=True)
    assert scores and scores[0] >= 0.3, f"the test model found nothing in {photo.name}"
    shown_before = len([s for s in scores if s >= 0.3])
    assert _table_rows(browser) == shown_before

    # a threshold between the two best scores (or above the only one) shows fewer
    threshold = round((scores[0] + scores[1]) / 2 if len(scores) > 1 else scores[0] + 0.01, 2)
    threshold = min(1.0, threshold)
    shown_after = len([s for s in scores if s >= threshold])
    assert shown_after < shown_before
    browser.execute_script(
        "const t = document.getElementById('threshold'); t.value = arguments[0];"
        "t.dispatchEvent(new Event('change'));",
        threshold,
    )
    wait(browser, lambda d: f"min_score={threshold:.2f}" in rendered(d))
    assert _table_rows(browser) == shown_after
    caption = browser.find_element(By.ID, "detections-caption").text
    assert caption.startswith(f"Detections: {shown_after} detection")

    # another effect re-renders the splash
    Select(browser.find_element(By.ID, "effect")).select_by_value("blur")
    wait(browser, lambda d: "effect=blur" in rendered(d))

    # download: the file is the splash at that threshold and effect, as the API gives it
    browser.find_element(By.ID, "download").click()
    expected_name = f"{photo.stem}_splash.png"
    target = browser.downloads / expected_name
    wait(browser, lambda d: target.is_file() and not list(d.downloads.glob("*.crdownload")))
    href = browser.find_element(By.ID, "download").get_attribute("href")
    with urllib.request.urlopen(href) as response:
        assert target.read_bytes() == response.read()
    downloaded = Image.open(io.BytesIO(target.read_bytes()))
    assert downloaded.format == "PNG" and downloaded.size == (width, height)
    assert f"min_score={threshold:.2f}" in href and "effect=blur" in href

    browser.save_screenshot(str(tmp_path / "page.png"))
    assert Image.open(tmp_path / "page.png").size[0] > 0


def test_uploading_a_text_file_shows_the_error(server, browser, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo\n")
    browser.get(server + "/")
    wait(browser, lambda d: "classes" in d.find_element(By.ID, "model-info").text)
    browser.find_element(By.ID, "file-input").send_keys(str(notes))
    error = browser.find_element(By.ID, "error")
    wait(browser, lambda d: error.is_displayed())
    assert "notes.txt" in error.text and "not an image file" in error.text
    assert not browser.find_element(By.ID, "results").is_displayed()

    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    browser.find_element(By.ID, "file-input").send_keys(str(empty))
    wait(browser, lambda d: "empty.jpg" in error.text and "empty" in error.text)


def test_dropping_a_photo_on_the_page_uploads_it(server, browser, tmp_path):
    photo = blob_photo(tmp_path / "dropped.jpg", 320, 240, seed=0)
    browser.get(server + "/")
    wait(browser, lambda d: "classes" in d.find_element(By.ID, "model-info").text)
    browser.execute_script(
        """
        const bytes = Uint8Array.from(atob(arguments[0]), (c) => c.charCodeAt(0));
        const transfer = new DataTransfer();
        transfer.items.add(new File([bytes], "dropped.jpg", { type: "image/jpeg" }));
        const zone = document.getElementById("drop-zone");
        zone.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true }));
        """,
        base64.b64encode(photo.read_bytes()).decode("ascii"),
    )
    wait(browser, lambda d: "min_score=0.30" in rendered(d))
    assert "dropped.jpg" in browser.find_element(By.ID, "status").text
    splash = browser.find_element(By.ID, "splash-image")
    assert browser.execute_script("return arguments[0].naturalWidth", splash) == 320


def test_download_the_detections_as_labelme_and_via_files(server, browser, tmp_path):
    photo = blob_photo(tmp_path / "garden party.jpg", 320, 240, seed=0)
    browser.get(server + "/")
    wait(browser, lambda d: "classes" in d.find_element(By.ID, "model-info").text)
    browser.find_element(By.ID, "file-input").send_keys(str(photo))
    wait(browser, lambda d: "min_score=0.30" in rendered(d))
    shown = _table_rows(browser)
    link = browser.find_element(By.ID, "download-annotations")
    for format_name, file_name in (
        ("labelme", "garden party.json"),  # beside the photo, LabelMe opens it with it
        ("via", "garden party_via.json"),
    ):
        Select(browser.find_element(By.ID, "annotation-format")).select_by_value(format_name)
        href = link.get_attribute("href")
        assert f"format={format_name}" in href and "min_score=0.30" in href
        link.click()
        target = browser.downloads / file_name
        wait(
            browser, lambda d, t=target: t.is_file() and not list(d.downloads.glob("*.crdownload"))
        )
        with urllib.request.urlopen(href) as response:
            assert target.read_bytes() == response.read()  # the file is the API's, as shown
        status = browser.find_element(By.ID, "status").text
        assert status.startswith(f"Saved {file_name}")
    data = json.loads((browser.downloads / "garden party.json").read_text())
    assert data["imagePath"] == "garden party.jpg"
    assert len({s["group_id"] or id(s) for s in data["shapes"]}) <= shown

    # an error (the photo left the server's cache) is shown in one line, and nothing is saved
    browser.execute_script("state.upload.id = 'gone'; setAnnotationsLink();")
    link.click()
    error = browser.find_element(By.ID, "error")
    wait(browser, lambda d: error.is_displayed())
    assert "upload 'gone' is unknown" in error.text and "\n" not in error.text
    assert sorted(p.name for p in browser.downloads.iterdir()) == [
        "garden party.json",
        "garden party_via.json",
    ]


def _table_rows(driver) -> int:
    return len(driver.find_elements(By.CSS_SELECTOR, "#detections-table tbody tr"))

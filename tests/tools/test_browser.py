"""tools/browser.py: the headless Chromium of the browser tests and the VIA driver."""

from __future__ import annotations

import glob
import tempfile
from pathlib import Path

import pytest

from tools.browser import chromium_missing, headless_chromium

pytestmark = pytest.mark.skipif(chromium_missing() is not None, reason=str(chromium_missing()))
TEMP = Path(tempfile.gettempdir())


def test_chromium_leaves_no_temporary_folder_behind(tmp_path):
    """Chromium puts a singleton-socket folder in the temporary directory of each run: it goes
    to the driver's own folder, removed on quit, not to /tmp."""
    stray, ours = str(TEMP / "org.chromium.Chromium.*"), str(TEMP / "mrcnn-chromium-*")
    stray_before, ours_before = set(glob.glob(stray)), set(glob.glob(ours))
    driver = headless_chromium(tmp_path / "downloads")
    try:
        driver.get("data:text/html,<p id=hi>hi</p>")
        assert driver.find_element("id", "hi").text == "hi"
        scratch = set(glob.glob(ours)) - ours_before
        assert any(glob.glob(str(Path(s) / "org.chromium.Chromium.*")) for s in scratch)
    finally:
        driver.quit()
    assert not set(glob.glob(stray)) - stray_before
    assert not set(glob.glob(ours)) & scratch
    assert (tmp_path / "downloads").is_dir()

"""Headless Chromium for the browser tests and tools: Debian's ``chromium`` and
``/usr/bin/chromedriver`` through selenium, downloads going to a folder; nothing is downloaded
from the network."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

CHROMEDRIVER = Path("/usr/bin/chromedriver")


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def chromium_missing() -> str | None:
    """Why the browser cannot run here, or None."""
    if not CHROMEDRIVER.exists() or not chromium_binary():
        return "headless Chromium is missing: apt-get install chromium chromium-driver"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is missing: pip install selenium"
    return None


def headless_chromium(downloads: Path):
    """A selenium Chrome driver on headless Chromium (1400 x 1100 window) whose downloads go to
    ``downloads`` (created) without asking; the caller quits it, which also removes Chromium's
    temporary folder."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    downloads.mkdir(parents=True, exist_ok=True)
    options = Options()
    options.binary_location = chromium_binary()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument("--window-size=1400,1100")
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    # Chromium's own temporary files (its singleton socket folder) go to a folder removed on
    # quit: by default each run leaves one in /tmp.
    scratch = tempfile.mkdtemp(prefix="mrcnn-chromium-")
    service = Service(str(CHROMEDRIVER), env={**os.environ, "TMPDIR": scratch})
    try:
        driver = webdriver.Chrome(service=service, options=options)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    quit_browser = driver.quit

    def quit_and_clean() -> None:
        try:
            quit_browser()
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    driver.quit = quit_and_clean
    return driver

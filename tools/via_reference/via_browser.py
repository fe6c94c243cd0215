"""VGG Image Annotator 2 (VIA), driven in headless Chromium the way a person uses it: the
toolbar's Open Project, Add Files, the polygon tool on the image, the on-image annotation
editor's dropdown, and the toolbar's Save Project, whose download is read back.

VIA is one HTML page (``via-2.x.y/src/index.html`` of the public repository ox-vgg/via, beside its
``via.js`` and ``via.css``); nothing of it is in this repository. The page is opened from disk
(``file://``), so nothing is downloaded. Coordinates given here are image pixels; the page's
canvas scale is read from VIA so that clicks land on those pixels.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tools.browser import headless_chromium

#: Seconds to wait for VIA to load a file, draw, or for Chromium to finish a download.
TIMEOUT = 30.0


def _wait(condition, what: str):
    """``condition()``'s first truthy value, polled by selenium's WebDriverWait (which needs a
    driver argument; the conditions here read the page through their own)."""
    from selenium.webdriver.support.ui import WebDriverWait

    waiting = WebDriverWait(None, TIMEOUT, poll_frequency=0.05)
    return waiting.until(lambda _: condition(), f"VIA did not {what} within {TIMEOUT:.0f} s")


class ViaPage:
    """One VIA page in a Chromium window; see the module docstring."""

    def __init__(self, driver, downloads: Path) -> None:
        self.driver, self.downloads = driver, downloads

    def version(self) -> str:
        return self.driver.execute_script("return VIA_VERSION")

    def _toolbar(self, handler: str) -> None:
        from selenium.webdriver.common.by import By

        self.driver.find_element(By.CSS_SELECTOR, f"svg[onclick='{handler}()']").click()

    def _choose_files(self, paths: list[Path]) -> None:
        """Give the file chooser VIA just opened these files (what a person picks in it)."""
        from selenium.webdriver.common.by import By

        chooser = self.driver.find_element(By.ID, "invisible_file_input")
        chooser.send_keys("\n".join(str(Path(p).resolve()) for p in paths))

    def message(self) -> str:
        return self.driver.execute_script(
            "return document.getElementById('message_panel_content').textContent"
        )

    def open_project(self, project: Path) -> str:
        """Toolbar > Open Project; returns VIA's message ("Imported project [..] with N files.")."""
        self._toolbar("project_open_select_project_file")
        self._choose_files([project])
        return _wait(lambda: "project" in self.message() and self.message(), "import the project")

    def add_files(self, images: list[Path]) -> str:
        """Add Files (Project > Add local files): VIA matches them to the project's entries by
        file name. Returns VIA's message ("Loaded N images." counts the new ones only)."""
        script = self.driver.execute_script
        script("document.getElementById('message_panel_content').textContent = ''")
        script("sel_local_images()")  # what the Add Files button calls
        self._choose_files(images)
        message = _wait(lambda: self.message().startswith("Loaded") and self.message(), "add files")
        _wait(lambda: script("return _via_current_image_loaded"), "show an image")
        return message

    def _click(self, x: float, y: float) -> None:
        """Click image pixel (x, y) on the region canvas."""
        from selenium.webdriver.common.action_chains import ActionChains
        from selenium.webdriver.common.by import By

        canvas = self.driver.find_element(By.ID, "region_canvas")
        scale = self.driver.execute_script("return _via_canvas_scale")
        size = canvas.size
        dx = round(x / scale - size["width"] / 2)
        dy = round(y / scale - size["height"] / 2)
        ActionChains(self.driver).move_to_element_with_offset(canvas, dx, dy).click().perform()
        time.sleep(0.1)

    def _key(self, key: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.driver).send_keys(key).perform()
        time.sleep(0.1)

    def region_count(self) -> int:
        return self.driver.execute_script(
            "return _via_img_metadata[_via_image_id_list[_via_image_index]].regions.length"
        )

    def draw_polygon(self, points: list[tuple[float, float]]) -> None:
        """The polygon tool: a click per vertex (image pixels), Enter to close it."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys

        before = self.region_count()
        self.driver.find_element(By.ID, "region_shape_polygon").click()
        for x, y in points:
            self._click(x, y)
        self._key(Keys.ENTER)
        _wait(lambda: self.region_count() == before + 1, "close the polygon")
        self._key(Keys.ESCAPE)  # deselect, as a person does before picking another region

    def set_dropdown(self, inside: tuple[float, float], attribute: str, value: str) -> None:
        """Click the region under image pixel ``inside`` and pick ``value`` in the on-image
        annotation editor's ``attribute`` dropdown."""
        from selenium.webdriver.common.by import By
        from selenium.webdriver.common.keys import Keys
        from selenium.webdriver.support.ui import Select

        self._click(*inside)
        region = _wait(
            lambda: self.driver.execute_script(
                "return _via_is_region_selected ? String(_via_user_sel_region_id) : ''"
            ),
            f"select the region at {inside}",
        )
        dropdown = self.driver.find_element(By.ID, f"{attribute}__{region}")
        Select(dropdown).select_by_value(value)
        self._key(Keys.ESCAPE)

    def save_project(self) -> str:
        """Toolbar > Save Project > OK; returns the text of the project file VIA downloaded."""
        from selenium.webdriver.common.by import By

        before = set(self.downloads.iterdir())
        self._toolbar("project_save_with_confirm")
        ok = "//*[@id='user_input_panel']//*[contains(@onclick,'user_input_parse_and_invoke')]"
        self.driver.find_element(By.XPATH, ok).click()

        def saved() -> Path | None:
            new = [p for p in set(self.downloads.iterdir()) - before if p.suffix == ".json"]
            return new[0] if new else None

        return _wait(saved, "save the project").read_text()


@contextmanager
def via_page(index_html: Path, downloads: Path) -> Iterator[ViaPage]:
    """VIA's page opened in headless Chromium, downloads going to ``downloads``."""
    index_html = Path(index_html).resolve()
    if not index_html.is_file():
        raise FileNotFoundError(f"{index_html}: not VIA's page (via-2.x.y/src/index.html)")
    driver = headless_chromium(downloads)
    try:
        driver.get(index_html.as_uri())
        yield ViaPage(driver, downloads)
    finally:
        driver.quit()

"""Make ``tests/fixtures/via/via2_saved_by_via.json``: a project that VGG Image Annotator 2.0.10
itself saved, after opening the VIA project ``mrcnn annotate`` writes and being edited by hand.

The session, in headless Chromium (``tools/via_reference/via_browser.py``):

1. the two generated images and annotate's project of their detections are written to one
   folder (``tests.helpers.annotations``: the scene the VIA tests use);
2. Open Project (annotate's file), then Add Files (the two images, which VIA matches by name);
3. on the first image a person draws a square with the polygon tool and picks ``frame`` in its
   ``class`` dropdown, and relabels annotate's ring as ``frame`` ("correcting" the model);
4. Save Project: VIA's download is the fixture.

Run from the repository root, with VIA 2 checked out anywhere (the public repository
ox-vgg/via; its ``via-2.x.y/src`` folder)::

    python -m tools.via_reference.make_fixture --via /path/to/via/via-2.x.y/src/index.html

``tests/labelling/test_via_schema.py`` compares annotate's project with the fixture, and redoes
this session live when ``MRCNN_VIA_HTML`` names the page.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from tests.helpers.annotations import shapes_with_holes, write_images, write_project
from tests.helpers.paths import FIXTURES
from tools.via_reference.via_browser import via_page

FIXTURE = FIXTURES / "via" / "via2_saved_by_via.json"
#: The square a person draws on the first image (image pixels, clockwise from top left).
DRAWN_SQUARE = [(10, 60), (40, 60), (40, 90), (10, 90)]
#: A pixel inside the drawn square, and one inside annotate's ring on the first image.
INSIDE_SQUARE, INSIDE_RING = (25, 75), (35, 30)


def write_scene(folder: Path) -> tuple[list[Path], Path]:
    """The two images and annotate's VIA project of their (hole-free) shapes, side by side in
    ``folder`` as docs/training.md advises (VIA finds images by file name)."""
    images = write_images(folder, 2)
    project = write_project("via", images, shapes_with_holes(False), folder / "project.json")
    return images, project


def edit_in_via(index_html: Path, work: Path) -> str:
    """The text of the project VIA saved after the session above, made in ``work``."""
    images, project = write_scene(work / "images")
    with via_page(index_html, work / "downloads") as via:
        if not via.version().startswith("2."):
            raise SystemExit(f"{index_html} is VIA {via.version()}; the fixture is VIA 2's")
        via.open_project(project)
        via.add_files(images)
        via.draw_polygon(DRAWN_SQUARE)
        via.set_dropdown(INSIDE_SQUARE, "class", "frame")
        via.set_dropdown(INSIDE_RING, "class", "frame")
        saved = via.save_project()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--via", type=Path, required=True, help="VIA 2's src/index.html")
    parser.add_argument("--output", type=Path, default=FIXTURE, help=f"default: {FIXTURE}")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        saved = edit_in_via(args.via, Path(work))
    args.output.write_text(saved)  # VIA's bytes, unchanged
    project = json.loads(saved)
    regions = sum(len(e["regions"]) for e in project["_via_img_metadata"].values())
    print(f"wrote {args.output}: VIA {project['_via_data_format_version']}, {regions} regions")


if __name__ == "__main__":
    main()

"""LabelMe's own reader loads what ``--format labelme`` writes (polygons, grouped parts and
mask shapes). Needs a Python with the ``labelme`` package: set MRCNN_LABELME_PYTHON to it, e.g.
a side environment made with ``python3 -m venv /work/sidevenvs/labelme`` and ``pip install
labelme`` (it pulls PyQt5, so it stays out of the project's environment)."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.helpers.annotations import output_path, shapes_with_holes, write_images, write_project
from tests.helpers.paths import REPO

PYTHON = os.environ.get("MRCNN_LABELME_PYTHON", "")


@pytest.mark.skipif(
    not PYTHON, reason="MRCNN_LABELME_PYTHON (a python with the labelme package) is not set"
)
def test_labelme_label_file_loads_our_files(tmp_path):
    paths = write_images(tmp_path / "images", 2)
    output = write_project("labelme", paths, shapes_with_holes(), output_path("labelme", tmp_path))
    script = REPO / "tools" / "labelme_reader_check.py"
    done = subprocess.run(
        [PYTHON, str(script), str(output)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.startswith("OK 2 files"), done.stdout + done.stderr

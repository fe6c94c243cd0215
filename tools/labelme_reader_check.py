"""Load LabelMe JSON files with LabelMe's own reader (``labelme``'s ``LabelFile``) and check each
shape the way LabelMe draws it; print "OK <files> files, <shapes> shapes" or the first problem.

Run it with the Python of an environment where the ``labelme`` package is installed (it pulls
PyQt5, so keep it out of the project's environment)::

    /work/sidevenvs/labelme/bin/python tools/labelme_reader_check.py OUT_FOLDER

It imports nothing from mrcnn. Exit status 0 when every file loads, 1 otherwise.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _label_file_class():
    try:
        from labelme.label_file import LabelFile  # labelme before 6
    except ImportError:
        from labelme._label_file import LabelFile  # labelme 6
    return LabelFile


def check(folder: Path) -> tuple[int, int]:
    """(files, shapes) loaded; raises on the first file or shape LabelMe cannot use."""
    import numpy as np
    from labelme import utils

    label_file = _label_file_class()
    files = shapes = 0
    for path in sorted(folder.glob("*.json")):
        loaded = label_file(str(path))
        height, width = utils.img_data_to_arr(loaded.image_data).shape[:2]
        for shape in loaded.shapes:
            if shape["shape_type"] == "mask":
                (x1, y1), (x2, y2) = np.asarray(shape["points"]).astype(int)
                if shape["mask"].shape != (y2 - y1 + 1, x2 - x1 + 1):
                    raise ValueError(f"{path}: mask size {shape['mask'].shape} != its points' box")
                pixels = int(shape["mask"].sum())
            else:
                pixels = int(
                    utils.shape_to_mask((height, width), shape["points"], shape["shape_type"]).sum()
                )
            if pixels == 0:
                raise ValueError(f"{path}: a {shape['shape_type']} shape covers no pixel")
            shapes += 1
        files += 1
    if not files:
        raise ValueError(f"no JSON files in {folder}")
    return files, shapes


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: labelme_reader_check.py FOLDER", file=sys.stderr)
        return 2
    try:
        files, shapes = check(Path(argv[0]))
    except Exception as error:  # noqa: BLE001 - any failure of LabelMe's reader is the answer
        print(f"FAILED: {type(error).__name__}: {error}")
        return 1
    print(f"OK {files} files, {shapes} shapes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

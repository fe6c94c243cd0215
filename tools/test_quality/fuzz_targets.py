"""Hypothesis strategies and targets for fuzzing the dataset loaders and ``--set`` parsing.

Shared by ``tests/tools/test_fuzz.py`` (a few hundred examples) and ``tools.test_quality.fuzz``
(tens of thousands). Each target writes one generated input, loads it the way the CLI does (and
reads every loaded image's masks, as training would), and lets only the errors through that the
CLI reports as one line: ``ValueError``, ``OSError`` and ``RuntimeError`` with a message. Any
other exception fails the property.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
from hypothesis import strategies as st
from PIL import Image

#: The exception types the CLI turns into "error: ..." lines.
ALLOWED = (ValueError, OSError, RuntimeError)

#: Examples run per target, for the report.
COUNTS: Counter = Counter()
#: How deep the examples got (loaded datasets, images whose masks were read), for the report.
DEPTH: Counter = Counter()

_IMAGE_NAMES = ("a.png", "b.jpg", "c.png")

# ------------------------------------------------------------------------------------------------
# Strategies
# ------------------------------------------------------------------------------------------------
number = st.one_of(
    st.integers(-(10**6), 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=3),
    st.none(),
    st.booleans(),
)
small_number = st.one_of(st.integers(-5, 60), st.floats(-5, 60), number)
coordinates = st.one_of(
    st.lists(small_number, max_size=8),
    number,
    st.dictionaries(st.text(max_size=2), number, max_size=2),
)
json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)

_shape_attributes = st.fixed_dictionaries(
    {
        "name": st.one_of(
            st.sampled_from(["polygon", "rect", "circle", "ellipse", "polyline", "point", ""]),
            number,
        )
    },
    optional={
        key: (coordinates if key.startswith("all_points") else small_number)
        for key in ("all_points_x", "all_points_y", "x", "y", "width", "height", "cx", "cy")
        + ("r", "rx", "ry", "theta")
    },
)
_region = st.one_of(
    st.fixed_dictionaries(
        {"shape_attributes": st.one_of(_shape_attributes, number)},
        optional={
            "region_attributes": st.one_of(
                st.dictionaries(
                    st.sampled_from(["name", "type"]),
                    st.one_of(st.sampled_from(["cat", "dog", ""]), number, json_value),
                    max_size=2,
                ),
                number,
            )
        },
    ),
    number,
)
_regions = st.one_of(
    st.lists(_region, max_size=4),  # VIA 2.x
    st.dictionaries(st.integers(0, 9).map(str), _region, max_size=4),  # VIA 1.x
    number,
)
_via_entry = st.fixed_dictionaries(
    {"filename": st.one_of(st.sampled_from([*_IMAGE_NAMES, "missing.png"]), number)},
    optional={"regions": _regions, "size": number, "file_attributes": json_value},
)
_pixel = st.one_of(st.integers(-3, 40), st.floats(-3, 40, allow_nan=False))
_points = st.integers(0, 7).flatmap(
    lambda n: st.tuples(
        st.lists(_pixel, min_size=n, max_size=n), st.lists(_pixel, min_size=n, max_size=n)
    )
)
_plausible_shape = st.one_of(
    _points.map(lambda xy: {"name": "polygon", "all_points_x": xy[0], "all_points_y": xy[1]}),
    st.fixed_dictionaries(
        {"name": st.just("rect"), "x": _pixel, "y": _pixel, "width": _pixel, "height": _pixel}
    ),
    st.fixed_dictionaries({"name": st.just("circle"), "cx": _pixel, "cy": _pixel, "r": _pixel}),
    st.fixed_dictionaries(
        {"name": st.just("ellipse"), "cx": _pixel, "cy": _pixel, "rx": _pixel, "ry": _pixel},
        optional={"theta": st.floats(-7, 7)},
    ),
    _shape_attributes,
)
_plausible_region = st.fixed_dictionaries(
    {
        "shape_attributes": _plausible_shape,
        "region_attributes": st.dictionaries(
            st.just("name"), st.sampled_from(["cat", "dog", ""]), max_size=1
        ),
    }
)
_plausible_entry = st.fixed_dictionaries(
    {
        "filename": st.sampled_from(_IMAGE_NAMES),
        "regions": st.one_of(
            st.lists(_plausible_region, max_size=4),
            st.dictionaries(st.integers(0, 9).map(str), _plausible_region, max_size=3),
        ),
    },
    optional={"size": st.integers(0, 10**6)},
)
plausible_via = st.lists(_plausible_entry, min_size=1, max_size=3).map(
    lambda entries: {f"{e['filename']}{i}": e for i, e in enumerate(entries)}
)
via_document = st.one_of(
    plausible_via,
    st.dictionaries(st.text(max_size=8), st.one_of(_via_entry, number), max_size=4),
    st.fixed_dictionaries(
        {"_via_img_metadata": st.dictionaries(st.text(max_size=8), _via_entry, max_size=3)},
        optional={"_via_settings": json_value},
    ),
    json_value,
)

_rle = st.fixed_dictionaries(
    {"size": st.one_of(st.lists(small_number, max_size=3), number)},
    optional={"counts": st.one_of(st.lists(small_number, max_size=6), st.text(max_size=6), number)},
)
_coco_annotation = st.fixed_dictionaries(
    {},
    optional={
        "id": small_number,
        "image_id": st.one_of(st.integers(0, 4), st.integers(0, 4).map(float), number),
        "category_id": st.one_of(st.integers(0, 3), st.integers(0, 3).map(float), number),
        "segmentation": st.one_of(
            st.lists(st.lists(small_number, max_size=10), max_size=2), _rle, number
        ),
        "bbox": st.one_of(st.lists(small_number, max_size=5), number),
        "iscrowd": st.one_of(st.integers(0, 1), number),
        "area": small_number,
    },
)
_coco_image = st.fixed_dictionaries(
    {},
    optional={
        "id": st.one_of(st.integers(0, 4), st.integers(0, 4).map(float), number),
        "file_name": st.one_of(st.sampled_from([*_IMAGE_NAMES, "missing.png"]), number),
        "height": st.one_of(st.just(24), st.just(24.0), small_number),
        "width": st.one_of(st.just(32), st.just(32.0), small_number),
    },
)
_plausible_rle = st.fixed_dictionaries(
    {
        "size": st.one_of(st.just([24, 32]), st.lists(small_number, max_size=3)),
        "counts": st.one_of(
            st.lists(st.integers(0, 800), max_size=6),
            st.text(alphabet=st.characters(min_codepoint=48, max_codepoint=111), max_size=8),
        ),
    }
)
_plausible_annotation = st.fixed_dictionaries(
    {
        "id": st.integers(1, 99),
        "image_id": st.integers(1, 3),
        "category_id": st.integers(1, 2),
        "segmentation": st.one_of(
            st.lists(st.lists(_pixel, max_size=12), max_size=2), _plausible_rle, number
        ),
    },
    optional={"iscrowd": st.integers(0, 1), "bbox": st.lists(_pixel, max_size=4)},
)
plausible_coco = st.fixed_dictionaries(
    {
        "images": st.just(
            [
                {"id": i + 1, "file_name": name, "height": 24, "width": 32}
                for i, name in enumerate(_IMAGE_NAMES)
            ]
        ),
        "annotations": st.lists(_plausible_annotation, max_size=6),
        "categories": st.just([{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}]),
    }
)
coco_document = st.one_of(
    plausible_coco,
    st.fixed_dictionaries(
        {
            "images": st.one_of(st.lists(_coco_image, max_size=4), number),
            "annotations": st.one_of(st.lists(_coco_annotation, max_size=5), number),
            "categories": st.one_of(
                st.lists(
                    st.fixed_dictionaries(
                        {},
                        optional={
                            "id": st.one_of(st.integers(0, 3), st.integers(0, 3).map(float)),
                            "name": st.one_of(st.sampled_from(["cat", "dog"]), number),
                        },
                    ),
                    max_size=3,
                ),
                number,
            ),
        }
    ),
    json_value,
)

_array = st.tuples(
    st.integers(1, 12),
    st.integers(1, 12),
    st.sampled_from(["L", "RGB", "RGBA", "I;16", "1", "P"]),
    st.integers(0, 2**16 - 1),
    st.sampled_from(["zeros", "blob", "noise"]),
)
mask_folder = st.fixed_dictionaries(
    {
        "image": st.one_of(_array, st.just("garbage"), st.none()),
        "masks": st.lists(st.one_of(_array, st.just("garbage")), max_size=3),
    }
)
mask_folders = st.lists(mask_folder, min_size=1, max_size=3)
_matched_pair = st.tuples(st.integers(1, 12), st.integers(1, 12)).flatmap(
    lambda hw: st.fixed_dictionaries(
        {
            "image": st.tuples(
                st.just(hw[0]), st.just(hw[1]), st.sampled_from(["RGB", "L"]), st.just(7),
                st.just("noise"),
            ),
            "label": st.tuples(
                st.just(hw[0]), st.just(hw[1]), st.sampled_from(["L", "I;16", "P", "RGB"]),
                st.integers(0, 300), st.sampled_from(["zeros", "blob", "noise"]),
            ),
            "suffix": st.sampled_from(["_mask.png", ".png"]),
        }
    )
)  # fmt: skip
label_pair = _matched_pair | st.fixed_dictionaries(
    {
        "image": st.one_of(_array, st.just("garbage")),
        "label": st.one_of(_array, st.just("garbage"), st.none()),
        "suffix": st.sampled_from(["_mask.png", ".png", ".jpg"]),
    }
)
label_pairs = st.lists(label_pair, min_size=1, max_size=3)
class_maps = st.one_of(
    st.none(), st.dictionaries(st.integers(-2, 300), st.sampled_from(["a", "b", ""]), max_size=3)
)

_config_keys = st.sampled_from(
    [
        "IMAGE_MAX_DIM",
        "IMAGE_MIN_DIM",
        "NUM_CLASSES",
        "RPN_ANCHOR_SCALES",
        "MEAN_PIXEL",
        "STD_PIXEL",
        "LOSS_WEIGHTS",
        "DEVICE",
        "AMP",
        "OPTIMIZER",
        "LEARNING_RATE",
        "BACKBONE",
        "MASK_SHAPE",
        "MINI_MASK_SHAPE",
        "DETECTION_MIN_CONFIDENCE",
        "TRAIN_BN",
        "NAME",
        "IMAGE_RESIZE_MODE",
        "BACKBONE_STRIDES",
        "RPN_ANCHOR_RATIOS",
        "nonsense",
        "",
    ]
)
_literal_text = st.one_of(
    st.text(max_size=12),
    st.from_regex(r"[\[\(\{]?[-+0-9a-z.,:'\" eE]{0,14}[\]\)\}]?", fullmatch=True),
    st.sampled_from(["nan", "inf", "-1", "1e999", "{[]: 1}", "((((((((1))))))))", "[1,2,3,4,5]"]),
)
set_items = st.lists(
    st.one_of(st.tuples(_config_keys, _literal_text).map("=".join), st.text(max_size=15)),
    min_size=1,
    max_size=3,
)


# ------------------------------------------------------------------------------------------------
# Targets
# ------------------------------------------------------------------------------------------------
class Workspace:
    """A temporary folder with a few small images, reused across examples."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mrcnn_fuzz_"))
        self._log = logging.getLogger("mrcnn.datasets")
        self._log_was_disabled, self._log.disabled = self._log.disabled, True  # summary lines
        rng = np.random.default_rng(0)
        for name in _IMAGE_NAMES:
            Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(
                self.root / name
            )

    def fresh(self, name: str) -> Path:
        folder = self.root / name
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        return folder

    def close(self) -> None:
        self._log.disabled = self._log_was_disabled
        shutil.rmtree(self.root, ignore_errors=True)


def _exercise(dataset) -> None:
    """What training does with a loaded dataset: prepare it and read every image's masks."""
    dataset.prepare()
    DEPTH["loaded a dataset"] += 1
    DEPTH["images whose masks were read"] += len(dataset.image_ids)
    for image_id in dataset.image_ids:
        masks, class_ids = dataset.load_mask(image_id)
        assert masks.ndim == 3 and masks.shape[2] == len(class_ids), (masks.shape, class_ids)


def _allowed(call) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            call()
        except ALLOWED as error:
            assert str(error).strip(), f"{type(error).__name__} without a message"


def run_via(workspace: Workspace, document, raw: bool, class_attribute: str | None) -> None:
    from mrcnn.datasets import ViaDataset

    COUNTS["via"] += 1
    path = workspace.root / "via_region_data.json"
    path.write_text(document if raw else json.dumps(document))

    def load():
        dataset = ViaDataset()
        dataset.load_via(path, class_attribute=class_attribute, keep_empty=True)
        _exercise(dataset)

    _allowed(load)


def run_coco(workspace: Workspace, document, raw: bool) -> None:
    from mrcnn.datasets import CocoDataset

    COUNTS["coco"] += 1
    path = workspace.root / "instances.json"
    path.write_text(document if raw else json.dumps(document))

    def load():
        dataset = CocoDataset()
        dataset.load_coco(path, workspace.root)
        _exercise(dataset)

    _allowed(load)


def _write_array(path: Path, spec) -> None:
    if spec == "garbage":
        path.write_bytes(b"\x89PNG not really")
        return
    height, width, mode, value, pattern = spec
    rng = np.random.default_rng(value)
    if pattern == "zeros":
        array = np.zeros((height, width), dtype=np.uint16)
    elif pattern == "blob":
        array = np.zeros((height, width), dtype=np.uint16)
        array[height // 4 : height // 2 + 1, width // 4 : width // 2 + 1] = value
    else:
        array = rng.integers(0, max(1, value) + 1, (height, width), dtype=np.uint16)
    if mode == "I;16":
        image = Image.fromarray(array.astype(np.uint16))
    else:
        image = Image.fromarray((array % 256).astype(np.uint8)).convert(mode)
    if path.suffix == ".jpg" and image.mode not in ("L", "RGB"):
        image = image.convert("RGB")  # what JPEG can hold
    image.save(path)


def run_mask_folders(workspace: Workspace, folders) -> None:
    from mrcnn.datasets import MaskFolderDataset

    COUNTS["masks"] += 1
    root = workspace.fresh("masks")
    for index, spec in enumerate(folders):
        stem = f"s{index}"
        (root / stem / "masks").mkdir(parents=True)
        if spec["image"] is not None:
            (root / stem / "images").mkdir()
            _write_array(root / stem / "images" / f"{stem}.png", spec["image"])
        for k, mask in enumerate(spec["masks"]):
            _write_array(root / stem / "masks" / f"m{k}.png", mask)

    def load():
        dataset = MaskFolderDataset()
        dataset.load_folders(root, keep_empty=True)
        _exercise(dataset)

    _allowed(load)


def run_labels(workspace: Workspace, pairs, class_map) -> None:
    from mrcnn.datasets import LabelDataset

    COUNTS["labels"] += 1
    root = workspace.fresh("labels")
    images, labels = root / "images", root / "labels"
    images.mkdir()
    labels.mkdir()
    for index, pair in enumerate(pairs):
        _write_array(images / f"p{index}.png", pair["image"])
        if pair["label"] is not None:
            _write_array(labels / f"p{index}{pair['suffix']}", pair["label"])

    def load():
        dataset = LabelDataset()
        dataset.load_labels(images, labels, class_map=class_map, keep_empty=True)
        _exercise(dataset)

    _allowed(load)


def run_set(items: list[str]) -> None:
    from mrcnn.config import load_config

    COUNTS["--set"] += 1
    _allowed(lambda: load_config(None, items))

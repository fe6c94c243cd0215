"""Dataset loaders and :func:`from_spec`, which builds one from a dataset spec string.

Specs (the CLI's ``--dataset``):
    ``via:PATH``                          VIA annotations (:class:`ViaDataset`)
    ``via3:FILE``                         a VIA 3 project (:class:`Via3Dataset`)
    ``labelme:PATH``                      LabelMe JSON files (:class:`LabelmeDataset`)
    ``cvat:XML[:IMAGES_DIR]``             CVAT for images 1.1 XML (:class:`CvatDataset`)
    ``coco:ANNOTATIONS_JSON[:IMAGES_DIR]``  COCO instances (:class:`CocoDataset`)
    ``masks:PATH``                        one folder per image with images/ and masks/
    ``labels:IMAGES_DIR:MASKS_DIR``       one label image per image (:class:`LabelDataset`)
    ``shapes[:COUNT[:SIZE]]``             synthetic shapes (:class:`ShapesDataset`)

Loader options may follow a ``?``: ``via:data/fruit?class_attribute=name``,
``coco:ann.json?class_names=person,car&max_images=500``, ``labels:img:lab?class_map=1=cat,2=dog``.
``{subset}`` in a spec is replaced by the subset, for layouts keeping subsets in separate files:
``coco:annotations/instances_{subset}2017.json`` reads ``instances_val2017.json`` for "val".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mrcnn.datasets.base import Dataset
from mrcnn.datasets.coco import CocoDataset
from mrcnn.datasets.cvat import CvatDataset
from mrcnn.datasets.labelme import LabelmeDataset
from mrcnn.datasets.masks import LabelDataset, MaskFolderDataset
from mrcnn.datasets.shapes import ShapesDataset, shapes_spec_options
from mrcnn.datasets.stats import (
    anchor_coverage,
    collect_instances,
    instance_statistics,
    sample_image_ids,
)
from mrcnn.datasets.via import ViaDataset
from mrcnn.datasets.via3 import Via3Dataset

__all__ = [
    "CocoDataset",
    "CvatDataset",
    "Dataset",
    "LabelDataset",
    "LabelmeDataset",
    "MaskFolderDataset",
    "ShapesDataset",
    "Via3Dataset",
    "ViaDataset",
    "anchor_coverage",
    "collect_instances",
    "from_spec",
    "instance_statistics",
    "sample_image_ids",
]

KINDS = ("via", "via3", "labelme", "cvat", "coco", "masks", "labels", "shapes")

#: Images of the shapes spec when it gives no count: (train, val).
SHAPES_DEFAULT_COUNT = (500, 50)

#: Options whose value is a comma-separated list.
_LIST_OPTIONS = {"class_names", "class_ids"}


def from_spec(spec: str, subset: str | None = "train", **options: Any) -> Dataset:
    """A prepared dataset for a spec (see the module docstring).

    Args:
        spec: e.g. ``via:data/balloon``, ``coco:ann.json:images``, ``shapes:200:128``.
        subset: "train", "val", another subset folder name, or None for every image. Layouts
            without a folder per subset split their images deterministically ~90/10 by name.
        options: passed to the loader (``class_attribute``, ``class_names``, ``max_images``,
            ``class_map``, ``seed``...); they override options given in the spec.
    Returns:
        the prepared :class:`~mrcnn.dataset.Dataset` subclass; ``dataset.load_report`` tells what
        was loaded and skipped.
    """
    spec, spec_options = _split_options(spec)
    spec_options.update(options)
    if "{subset}" in spec:
        if subset is None:
            raise ValueError(f"dataset spec {spec!r} has {{subset}}: name a subset")
        spec, subset = spec.replace("{subset}", subset), None
    kind, _, rest = spec.partition(":")
    builders = {
        "via": _via,
        "via3": _via3,
        "labelme": _labelme,
        "cvat": _cvat,
        "coco": _coco,
        "masks": _masks,
        "labels": _labels,
        "shapes": _shapes,
    }
    if kind not in builders:
        hint = ""
        if Path(spec).exists():
            example = "cvat" if spec.lower().endswith(".xml") else "via"
            hint = f"; prefix the path with its format, e.g. {example}:{spec}"
        raise ValueError(
            f"unknown dataset spec {spec!r}: use one of via:PATH, via3:FILE, labelme:PATH, "
            "cvat:XML[:IMAGES], coco:ANNOTATIONS[:IMAGES], masks:PATH, "
            f"labels:IMAGES_DIR:MASKS_DIR, shapes[:COUNT[:SIZE]]{hint}"
        )
    if kind != "shapes" and not rest:
        raise ValueError(f"dataset spec {spec!r} names no path: write {kind}:PATH")
    dataset = builders[kind](rest, subset, spec_options)
    dataset.prepare()
    return dataset


def _via(rest: str, subset: str | None, options: dict) -> Dataset:
    dataset = ViaDataset()
    dataset.load_via(rest, subset, **options)
    return dataset


def _via3(rest: str, subset: str | None, options: dict) -> Dataset:
    dataset = Via3Dataset()
    dataset.load_via3(rest, subset, **options)
    return dataset


def _labelme(rest: str, subset: str | None, options: dict) -> Dataset:
    dataset = LabelmeDataset()
    dataset.load_labelme(rest, subset, **options)
    return dataset


def _cvat(rest: str, subset: str | None, options: dict) -> Dataset:
    annotations, images_dir = _file_and_folder(rest, ".xml")
    if images_dir:
        options = {**options, "images_dir": images_dir}
    dataset = CvatDataset()
    dataset.load_cvat(annotations, subset, **options)
    return dataset


def _file_and_folder(rest: str, suffix: str) -> tuple[str, str | None]:
    """``"a.json:imgs"`` -> (``"a.json"``, ``"imgs"``); without a folder, (rest, None)."""
    if f"{suffix}:" in rest:
        head, folder = rest.split(f"{suffix}:", 1)
        return head + suffix, folder or None
    return rest, None


def _coco(rest: str, subset: str | None, options: dict) -> Dataset:
    annotations, images_dir = _file_and_folder(rest, ".json")
    dataset = CocoDataset()
    dataset.load_coco(annotations, images_dir, subset, **options)
    return dataset


def _masks(rest: str, subset: str | None, options: dict) -> Dataset:
    dataset = MaskFolderDataset()
    dataset.load_folders(rest, subset, **options)
    return dataset


def _labels(rest: str, subset: str | None, options: dict) -> Dataset:
    parts = rest.split(":")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"labels spec must be labels:IMAGES_DIR:MASKS_DIR, got 'labels:{rest}'")
    dataset = LabelDataset()
    dataset.load_labels(parts[0], parts[1], subset, **options)
    return dataset


def _shapes(rest: str, subset: str | None, options: dict) -> Dataset:
    values = shapes_spec_options(rest)
    values.update(options)
    count = values.pop("count", None)
    if count is None:
        count = SHAPES_DEFAULT_COUNT[1] if subset == "val" else SHAPES_DEFAULT_COUNT[0]
    elif subset == "val":
        count = max(1, int(count) // 10)  # a tenth of the training count, like the split
    dataset = ShapesDataset()
    dataset.load_shapes(int(count), subset=subset, **values)
    return dataset


def _split_options(spec: str) -> tuple[str, dict[str, Any]]:
    """``"via:x?a=1&b=c"`` -> (``"via:x"``, ``{"a": 1, "b": "c"}``)."""
    if "?" not in spec:
        return spec, {}
    spec, _, query = spec.partition("?")
    options: dict[str, Any] = {}
    for item in filter(None, query.split("&")):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"dataset option {item!r} must look like key=value")
        options[key] = _option_value(key, value)
    return spec, options


def _option_value(key: str, value: str) -> Any:
    if key == "class_map":  # "1=cat,2=dog"
        pairs = [p.partition("=") for p in value.split(",") if p]
        if not all(sep and k.strip().isdigit() for k, sep, _ in pairs):
            raise ValueError(f"class_map must look like 1=cat,2=dog, got {value!r}")
        return {int(k): v for k, _, v in pairs}
    if key in _LIST_OPTIONS:
        items = [v for v in value.split(",") if v]
        return [int(v) for v in items] if key == "class_ids" else items
    if value.lower() in ("true", "false"):
        return value.lower() == "true"
    if value.lstrip("-").isdigit():
        return int(value)
    return value

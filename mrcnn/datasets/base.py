"""The Dataset base class (Matterport's API), its format registry and mask helpers
(``mrcnn.dataset`` re-exports them; what else the loaders share is in
:mod:`mrcnn.datasets.loading`).

A dataset holds classes and images from one or more *sources* (e.g. "via", "coco", "shapes").
Each source numbers its classes its own way; :meth:`Dataset.prepare` maps every
``(source, source_class_id)`` to one contiguous internal id, with 0 the background ("BG")::

    dataset = Dataset()
    dataset.add_class("balloon", 1, "balloon")
    dataset.add_image("balloon", "a.jpg", path="photos/a.jpg")
    dataset.prepare()
    image = dataset.load_image(0)           # H x W x 3 uint8 RGB
    masks, class_ids = dataset.load_mask(0)  # bool [H, W, N], int32 [N]

Loaders register a method per image format: images added with ``format="coco"`` get their
masks from the method marked ``@mask_loader("coco")`` (and their pixels from an
``@image_loader`` method for generated data); :meth:`Dataset.load_mask` dispatches on the
image's format. Matterport-style subclasses may still override :meth:`Dataset.load_mask` and
call ``super().load_mask(image_id)`` for images that are not theirs.

Crowd regions follow Matterport's COCO convention: ``load_mask`` returns them with a *negative*
class id (``-class_id``); the trainer must not use them as positives (see :func:`split_crowd`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mrcnn.datasets.loading import LoadReport, read_image_size, require_images
from mrcnn.structures.boxes import extract_boxes_from_masks
from mrcnn.structures.image import read_image


# ------------------------------------------------------------------------------------------------
# The base class
# ------------------------------------------------------------------------------------------------
def mask_loader(image_format: str):
    """Mark a Dataset method ``(self, image_id) -> (masks, class_ids)`` as the mask loader of
    the images added with ``format=image_format``."""

    def mark(method):
        method.mask_format = image_format
        return method

    return mark


def image_loader(image_format: str):
    """Mark a Dataset method ``(self, image_id) -> image`` as the image loader of the images
    added with ``format=image_format`` (generated images without a file)."""

    def mark(method):
        method.image_format = image_format
        return method

    return mark


def _loaders(cls: type, attribute: str, marker: str) -> dict[str, str]:
    """{format: method name} of the methods of ``cls`` and its bases marked with ``marker``."""
    merged: dict[str, str] = {}
    for base in reversed(cls.__mro__[1:]):
        merged.update(getattr(base, attribute, {}))
    for name, value in vars(cls).items():
        image_format = getattr(value, marker, None)
        if image_format is not None:
            merged[image_format] = name
    return merged


class Dataset:
    """A set of images with instance masks, from one or more sources.

    After :meth:`prepare`: ``class_names`` (``class_names[0] == "BG"``), ``num_classes``,
    ``image_ids`` (0..num_images-1), ``image_info`` (one dict per image: at least ``id``,
    ``source``, ``path``), ``class_info``, ``sources``.
    """

    #: {image format: name of the method giving its masks}, from the :func:`mask_loader` marks.
    mask_loaders: ClassVar[dict[str, str]] = {}
    #: {image format: name of the method giving its pixels}, from the :func:`image_loader` marks.
    image_loaders: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.mask_loaders = _loaders(cls, "mask_loaders", "mask_format")
        cls.image_loaders = _loaders(cls, "image_loaders", "image_format")

    def __init__(self, class_map: dict | None = None) -> None:
        self._image_ids: np.ndarray = np.zeros(0, dtype=np.int64)
        self.image_info: list[dict[str, Any]] = []
        # Background is always the first class.
        self.class_info: list[dict[str, Any]] = [{"source": "", "id": 0, "name": "BG"}]
        self.source_class_ids: dict[str, list[int]] = {}
        #: Reports of every ``load_*`` call, in order; ``load_report`` is their sum.
        self.load_reports: list[LoadReport] = []
        self._prepared = False

    # --- building ---------------------------------------------------------------------------
    def add_class(self, source: str, class_id: int, name: str) -> None:
        """Register class ``class_id`` of ``source`` (ids need not be contiguous)."""
        if "." in source:
            raise ValueError(f"source name {source!r} must not contain a dot")
        for info in self.class_info:
            if info["source"] == source and info["id"] == class_id:
                return  # already known: loaders may add the same class again
        self.class_info.append({"source": source, "id": class_id, "name": name})
        self._prepared = False

    def add_image(self, source: str, image_id: Any, path: str | Path | None, **kwargs) -> None:
        """Register one image; ``kwargs`` are kept in its ``image_info`` dict."""
        info = {"id": image_id, "source": source, "path": None if path is None else str(path)}
        info.update(kwargs)
        self.image_info.append(info)
        self._prepared = False

    def prepare(self, class_map: dict | None = None) -> None:
        """Build the internal class and image tables; call after the last add_class/add_image.

        ``class_map`` is accepted for Matterport compatibility and unused.
        """
        self.num_classes = len(self.class_info)
        self.class_ids = np.arange(self.num_classes)
        # "person, human" style names are shortened to their first part (as Matterport does).
        self.class_names = [_short_name(c["name"]) for c in self.class_info]
        self.num_images = len(self.image_info)
        self._image_ids = np.arange(self.num_images)
        self.class_from_source_map = {
            f"{c['source']}.{c['id']}": i for i, c in enumerate(self.class_info)
        }
        self.image_from_source_map = {
            f"{info['source']}.{info['id']}": i for i, info in enumerate(self.image_info)
        }
        self.sources = sorted({c["source"] for c in self.class_info} - {""} | self._image_sources())
        self.source_class_ids = {}
        for source in self.sources:
            self.source_class_ids[source] = [
                i for i, c in enumerate(self.class_info) if i == 0 or c["source"] == source
            ]
        self._prepared = True

    def _image_sources(self) -> set[str]:
        return {info["source"] for info in self.image_info}

    # --- lookups ------------------------------------------------------------------------------
    @property
    def image_ids(self) -> np.ndarray:
        """int64 [num_images]: the internal image ids 0..num_images-1 (after :meth:`prepare`)."""
        return self._image_ids

    def map_source_class_id(self, source_class_id: str) -> int:
        """Internal class id of ``"source.class_id"``, e.g. ``"coco.18"`` -> 17."""
        self._require_prepared()
        try:
            return self.class_from_source_map[source_class_id]
        except KeyError:
            raise KeyError(
                f"unknown source class {source_class_id!r}; known: "
                f"{', '.join(sorted(self.class_from_source_map)[:20])}"
            ) from None

    def get_source_class_id(self, class_id: int, source: str) -> int:
        """The id ``source`` uses for internal class ``class_id``."""
        info = self.class_info[class_id]
        if info["source"] != source:
            raise ValueError(
                f"class {class_id} ({info['name']!r}) is from source {info['source']!r}, "
                f"not {source!r}"
            )
        return info["id"]

    def image_reference(self, image_id: int) -> str:
        """A string that locates the image for a person: its path (or source and id)."""
        info = self.image_info[image_id]
        return info.get("path") or f"{info['source']}:{info['id']}"

    def source_image_link(self, image_id: int) -> str | None:
        """The image's path or URL."""
        info = self.image_info[image_id]
        return info.get("url") or info.get("path")

    # --- loading ------------------------------------------------------------------------------
    def load_image(self, image_id: int) -> np.ndarray:
        """The image as H x W x 3 uint8 RGB (EXIF orientation applied; grayscale, RGBA and
        16-bit files converted)."""
        info = self.image_info[image_id]
        loader = self.image_loaders.get(info.get("format"))
        if loader is not None:
            return getattr(self, loader)(image_id)
        if not info.get("path"):
            raise ValueError(
                f"image {image_id} ({info['source']}:{info['id']}) has no path; "
                "override load_image for generated images"
            )
        return read_image(info["path"])

    def load_mask(self, image_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Instance masks of an image.

        Returns:
            (masks, class_ids): bool [H, W, N] and int32 [N] internal class ids. Crowd regions
            have the negated class id (Matterport's COCO convention). An image without
            instances gives N = 0. Images of a format without a :func:`mask_loader` have none.
        """
        loader = self.mask_loaders.get(self.image_info[image_id].get("format"))
        if loader is not None:
            return getattr(self, loader)(image_id)
        height, width = self.image_size(image_id)
        return empty_masks(height, width)

    def image_size(self, image_id: int) -> tuple[int, int]:
        """(height, width) of the image as :meth:`load_image` returns it, from ``image_info``
        when known (no pixel decoding), else from the file header."""
        info = self.image_info[image_id]
        if info.get("height") and info.get("width"):
            return int(info["height"]), int(info["width"])
        if info.get("path"):
            return read_image_size(info["path"])
        image = self.load_image(image_id)
        return image.shape[0], image.shape[1]

    @staticmethod
    def extract_bboxes(masks: np.ndarray) -> np.ndarray:
        """int32 [N, 4] boxes (y1, x1, y2, x2), exclusive y2/x2, around bool [H, W, N] masks."""
        return extract_boxes_from_masks(masks)

    # --- loading helpers for the loaders -----------------------------------------------------
    def add_loaded_image(
        self,
        report: LoadReport,
        source: str,
        image_id: Any,
        path: str | Path | None,
        region_count: int,
        *,
        keep_empty: bool = True,
        empty_reason: str = "no regions",
        where: str | None = None,
        **info: Any,
    ) -> bool:
        """:meth:`add_image`, counting the image and its ``region_count`` regions as loaded in
        ``report``; an image without regions is instead counted as skipped for
        ``empty_reason`` (at ``where``, default its path) unless ``keep_empty``. Returns whether
        the image was added."""
        if not region_count and not keep_empty:
            report.skip_image(where or str(path or f"{source}:{image_id}"), empty_reason)
            return False
        self.add_image(source, image_id, path, **info)
        report.images_loaded += 1
        report.regions_loaded += region_count
        return True

    def keep_report(
        self, report: LoadReport, where: str | None = None, subset: str | None = None
    ) -> LoadReport:
        """End a ``load_*`` call: log the report's summary, keep it in ``load_reports`` and,
        when ``where`` names the input, raise if no image was loaded (:func:`require_images`)."""
        self.load_reports.append(report.finish())
        if where is not None:
            require_images(self, report, where, subset)
        return report

    # --- reports ------------------------------------------------------------------------------
    @property
    def load_report(self) -> LoadReport:
        """The sum of the reports of every ``load_*`` call so far."""
        total = LoadReport("all" if len(self.load_reports) != 1 else self.load_reports[0].source)
        for report in self.load_reports:
            total.merge(report)
        return total

    def _require_prepared(self) -> None:
        if not self._prepared:
            raise RuntimeError("call dataset.prepare() after adding classes and images")

    def __len__(self) -> int:
        return len(self.image_info)

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__}: {len(self.image_info)} images, "
            f"{len(self.class_info)} classes>"
        )


def _short_name(name: str) -> str:
    return ",".join(str(name).split(",")[:1]).strip()


def describe_classes(dataset, shown: int = 10) -> str:
    """``"3 classes including the background (BG, circle, square)"``: a prepared dataset's
    class count as the error messages and the trainer give it, the names cut after ``shown``."""
    names = list(getattr(dataset, "class_names", []))
    listed = ", ".join(names[:shown])
    if len(names) > shown:
        listed += f", ... and {len(names) - shown} more"
    return f"{dataset.num_classes} classes including the background ({listed})"


def empty_masks(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(bool [height, width, 0], int32 [0]): the masks of an image without instances."""
    return np.zeros((height, width, 0), dtype=bool), np.zeros(0, dtype=np.int32)


def split_crowd(
    masks: np.ndarray, class_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Separate crowd regions (negative class ids) from the instances.

    Args:
        masks: bool [H, W, N]; class_ids: int [N] where crowd regions are negative.
    Returns:
        (masks, class_ids, crowd): bool [H, W, M] and int32 [M] of the ordinary instances, and
        bool [H, W] union of the crowd regions (all False when there are none).
    """
    class_ids = np.asarray(class_ids)
    crowd = class_ids < 0
    crowd_union = masks[:, :, crowd].any(axis=2) if crowd.any() else np.zeros(masks.shape[:2], bool)
    return masks[:, :, ~crowd], class_ids[~crowd].astype(np.int32), crowd_union

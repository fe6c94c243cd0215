"""What the loaders share: load reports (what was loaded and skipped, and why), the
deterministic train/val split, and reading JSON files and image sizes with messages that say
which file was wrong."""

from __future__ import annotations

import json
import logging
import warnings
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger("mrcnn.datasets")

#: Share of the images a hash split puts into the "val" subset.
VAL_SHARE = 0.1

#: Problems shown as warnings per load; the rest are only kept in ``LoadReport.problems``.
MAX_WARNINGS = 20


class DatasetWarning(UserWarning):
    """A problem in the data that was skipped (a missing image, a malformed region, ...)."""


# ------------------------------------------------------------------------------------------------
# Load reports
# ------------------------------------------------------------------------------------------------
@dataclass
class LoadReport:
    """What one ``load_*`` call loaded and skipped, and why.

    ``problems`` lists every problem; the first :data:`MAX_WARNINGS` are also emitted as
    :class:`DatasetWarning` warnings.
    """

    source: str
    images_loaded: int = 0
    regions_loaded: int = 0
    images_skipped: int = 0
    regions_skipped: int = 0
    crowd_regions: int = 0
    image_reasons: Counter = field(default_factory=Counter)
    region_reasons: Counter = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)

    def skip_image(self, where: str, reason: str, detail: str = "") -> None:
        """Count a skipped image; ``where`` names the file, ``reason`` is a short category."""
        self.images_skipped += 1
        self.image_reasons[reason] += 1
        self.problem(f"{where}: skipped image: {reason}" + (f" ({detail})" if detail else ""))

    def skip_region(self, where: str, reason: str, detail: str = "") -> None:
        """Count a skipped region; ``where`` names the file, image and region index."""
        self.regions_skipped += 1
        self.region_reasons[reason] += 1
        self.problem(f"{where}: skipped region: {reason}" + (f" ({detail})" if detail else ""))

    def problem(self, message: str) -> None:
        """Record a problem and warn about it (the first MAX_WARNINGS only)."""
        self.problems.append(message)
        if len(self.problems) <= MAX_WARNINGS:
            warnings.warn(message, DatasetWarning, stacklevel=3)
        elif len(self.problems) == MAX_WARNINGS + 1:
            warnings.warn(
                f"{self.source}: more problems not shown; see dataset.load_report.problems",
                DatasetWarning,
                stacklevel=3,
            )

    def merge(self, other: LoadReport) -> None:
        for name in ("images_loaded", "regions_loaded", "images_skipped", "regions_skipped"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.crowd_regions += other.crowd_regions
        self.image_reasons.update(other.image_reasons)
        self.region_reasons.update(other.region_reasons)
        self.problems.extend(other.problems)

    def summary(self) -> str:
        """One line: counts loaded and skipped, with the reasons."""
        text = (
            f"{self.source}: loaded {self.images_loaded} images with {self.regions_loaded} regions"
        )
        if self.crowd_regions:
            text += f" ({self.crowd_regions} crowd)"
        text += f"; skipped {self.images_skipped} images"
        text += _reasons(self.image_reasons)
        text += f" and {self.regions_skipped} regions" + _reasons(self.region_reasons)
        return text

    def finish(self) -> LoadReport:
        """Log the summary line (as a warning when something was skipped) and return self."""
        level = logging.WARNING if self.images_skipped or self.regions_skipped else logging.INFO
        logger.log(level, self.summary())
        return self

    def __str__(self) -> str:
        return self.summary()


def _reasons(counter: Counter) -> str:
    if not counter:
        return ""
    return " (" + ", ".join(f"{n} {reason}" for reason, n in counter.most_common()) + ")"


# ------------------------------------------------------------------------------------------------
# Helpers shared by the loaders
# ------------------------------------------------------------------------------------------------
def subset_of(key: Any, val_share: float = VAL_SHARE) -> str:
    """ "train" or "val" for an image key, the same on every run and machine.

    The split hashes ``str(key)`` with CRC-32, so adding or removing images never moves the
    others between subsets; about ``val_share`` of the keys land in "val".
    """
    bucket = zlib.crc32(str(key).encode("utf-8")) % 1000
    return "val" if bucket < round(val_share * 1000) else "train"


def check_split_subset(subset: str | None, where: str) -> None:
    """Raise unless ``subset`` is None, "train" or "val" (the hash split's subsets)."""
    if subset not in (None, "train", "val"):
        raise ValueError(
            f"{where} has no {subset!r} subset: without a folder per subset only 'train' and "
            "'val' (a deterministic ~90/10 split by image name) or None (all images) exist"
        )


def in_subset(key: Any, subset: str | None) -> bool:
    """Whether an image key belongs to ``subset`` (None: every image)."""
    return subset is None or subset_of(key) == subset


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a malformed one raises ValueError with the line and column."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"{path}: malformed JSON at line {error.lineno} column {error.colno}: {error.msg}"
        ) from error
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not a UTF-8 text file ({error})") from error


#: EXIF orientations that swap width and height (rotations by 90 or 270 degrees).
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)


def read_image_size(path: str | Path) -> tuple[int, int]:
    """(height, width) of an image file as :func:`mrcnn.structures.image.read_image` returns it
    (EXIF orientation applied), from the header only. Raises FileNotFoundError or ValueError."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image file not found: {path}")
    try:
        with Image.open(path) as pil:
            width, height = pil.size
            orientation = pil.getexif().get(0x0112, 1)
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"cannot read image {path}: {error}") from error
    if orientation in _TRANSPOSING_ORIENTATIONS:
        width, height = height, width
    return int(height), int(width)


def require_images(dataset: Any, report: LoadReport, where: str, subset: str | None) -> None:
    """Raise when a load added no image, saying why."""
    if report.images_loaded:
        return
    subset_text = f" in subset {subset!r}" if subset else ""
    if report.images_skipped:
        raise ValueError(
            f"{where}: no usable images{subset_text}: all {report.images_skipped} were skipped"
            f"{_reasons(report.image_reasons)}; first problem: {report.problems[0]}"
        )
    raise ValueError(
        f"{where}: no images{subset_text}"
        + (
            "; the hash split puts about 10% of the images into 'val', so a tiny dataset may "
            "have none there: add images or use subset=None"
            if subset == "val"
            else ""
        )
    )

"""Images whose ``load_image`` or ``load_mask`` raises: what failed, said on one line.

Training, evaluation and ``mrcnn inspect-data`` call a dataset's loaders through
:func:`call_loaders`, which turns an error of one image into an :class:`ImageFailure` (picklable,
so it crosses DataLoader worker processes) instead of ending the run; each caller then decides
what to do with the image (skip it, replace it, list it).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

#: Longest error message kept in a failure's line (a message can hold a whole array).
MESSAGE_CHARS = 300


@dataclass(frozen=True)
class ImageFailure:
    """One image that could not be loaded.

    Attributes:
        image_id: the dataset's internal image id.
        reference: ``image_info[image_id]["path"]``, else ``dataset.image_reference(image_id)``
            ("" when neither says anything).
        method: the loader that raised: "load_image" or "load_mask" (training also records
            an image whose loaders' result it could not augment or mold).
        error_type: the exception's class name, e.g. "IndexError".
        message: the exception's message on one line (shortened past :data:`MESSAGE_CHARS`).
    """

    image_id: int
    reference: str
    method: str
    error_type: str
    message: str

    def describe(self) -> str:
        """``image 7 (photos/a.jpg): load_mask raised IndexError: index 640 is out of ...``."""
        where = f" ({self.reference})" if self.reference else ""
        said = f": {self.message}" if self.message else ""
        return f"image {self.image_id}{where}: {self.method} raised {self.error_type}{said}"


def image_reference(dataset, image_id: int) -> str:
    """The image's path, else what ``dataset.image_reference`` says, else ""."""
    try:
        info = dataset.image_info[image_id]
        path = info.get("path") if isinstance(info, dict) else None
        return str(path) if path else str(dataset.image_reference(image_id) or "")
    except Exception:  # a user's image_reference may fail like its loaders: the id still names it
        return ""


def failure_of(dataset, image_id: int, method: str, error: BaseException) -> ImageFailure:
    """The :class:`ImageFailure` of ``error``, raised by ``dataset.<method>(image_id)``."""
    message = " ".join(str(error).split())
    if len(message) > MESSAGE_CHARS:
        message = message[: MESSAGE_CHARS - 3] + "..."
    return ImageFailure(
        int(image_id), image_reference(dataset, image_id), method, type(error).__name__, message
    )


def call_loaders(
    dataset, image_id: int, methods: Sequence[str] = ("load_image", "load_mask")
) -> list[Any] | ImageFailure:
    """``[dataset.<method>(image_id) for method in methods]``, or the :class:`ImageFailure` of
    the first one that raises (any ``Exception``: these are the user's code)."""
    results = []
    for method in methods:
        try:
            results.append(getattr(dataset, method)(int(image_id)))
        except Exception as error:
            return failure_of(dataset, image_id, method, error)
    return results


def warn_below_bars(logger: logging.Logger, line: str) -> None:
    """``logger.warning(line)`` with any progress bar on the terminal cleared first and drawn
    again after, so that the line stands on its own (as ``tqdm.write`` does for prints)."""
    with tqdm.external_write_mode(file=sys.stderr):
        logger.warning(line)

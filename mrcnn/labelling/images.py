"""Running a model over image files one at a time, for the labelling commands (``mrcnn
annotate``, ``mrcnn rank``): a progress bar, one line per image below it, and an image that
cannot be read (or that the config cannot size) reported and skipped while the others go on."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from mrcnn.structures.image import read_image
from mrcnn.structures.resize_plan import InputSizeError

#: What reading or running one image may raise without ending the run: an unreadable or
#: missing file, an image the config cannot size, an image ``detect`` refuses.
IMAGE_ERRORS = (ValueError, OSError, InputSizeError)

Result = TypeVar("Result")
Outcome = TypeVar("Outcome")


def read_and_run(
    path: Path, step: Callable[[np.ndarray], Result]
) -> tuple[np.ndarray, Result] | str:
    """(the image at ``path`` as H x W x 3 uint8 RGB, ``step(image)``), or the error on one
    line when reading it or ``step`` raised one of :data:`IMAGE_ERRORS`."""
    try:
        image = read_image(path)
        return image, step(image)
    except IMAGE_ERRORS as error:
        return " ".join(str(error).split())


def each_image(
    paths: Sequence[Path],
    one: Callable[[Path], Outcome],
    line: Callable[[Outcome], str],
    *,
    progress: bool = True,
    report: Callable[[str], None] | None = None,
) -> list[Outcome]:
    """``[one(path) for path in paths]`` under a progress bar (shown for two images or more
    when ``progress``), saying ``line(outcome)`` for each image as it is done.

    Args:
        one: the work on one image; it reports its own per-image failures in its outcome
            (see :func:`read_and_run`).
        report: called with each line (default: written below the progress bar, on stdout).
    """
    from tqdm import tqdm  # only when a run starts: the command line starts without it

    outcomes: list[Outcome] = []
    bar = tqdm(total=len(paths), unit="image", disable=not progress or len(paths) < 2)
    say = report or (lambda text: bar.write(text, file=sys.stdout))
    try:
        for path in paths:
            bar.update()
            outcome = one(path)
            outcomes.append(outcome)
            say(line(outcome))
    finally:
        bar.close()
    return outcomes

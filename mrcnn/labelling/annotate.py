"""Run a model over images and add its detections to an annotation project
(:class:`~mrcnn.labelling.merge.Project`), image by image, for a person to correct.

An image that cannot be read (or that the config cannot size) is reported and skipped; the
others go on (the loop over the images is :func:`mrcnn.labelling.images.each_image`, shared
with ``mrcnn rank``). Nothing is written here: the caller writes ``project.contents(output)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from mrcnn.labelling.coco import CocoProject
from mrcnn.labelling.cvat import CvatProject
from mrcnn.labelling.images import each_image, read_and_run
from mrcnn.labelling.labelme import LabelmeProject
from mrcnn.labelling.merge import ImageCounts, ImageRecord, Project, WriteOptions, relative_name
from mrcnn.labelling.polygons import Detection
from mrcnn.labelling.via import DEFAULT_CLASS_ATTRIBUTE, ViaProject

#: --format name -> project class.
FORMATS: dict[str, type[Project]] = {
    "via": ViaProject,
    "labelme": LabelmeProject,
    "coco": CocoProject,
    "cvat": CvatProject,
}


def new_project(
    format_name: str,
    class_names: list[str],
    options: WriteOptions | None = None,
    class_attribute: str | None = None,
) -> Project:
    """An empty project of ``format_name`` whose classes are ``class_names`` (no background)."""
    if format_name not in FORMATS:
        raise ValueError(
            f"unknown annotation format {format_name!r}: use one of {', '.join(FORMATS)}"
        )
    if format_name == "via":
        return ViaProject(class_names, options, class_attribute)
    return FORMATS[format_name](class_names, options)


def detections_of(
    result: dict,
    class_names: list[str],
    min_score: float = 0.0,
    classes: Iterable[str] | None = None,
) -> list[Detection]:
    """The detections of one ``MaskRCNN.detect`` result with score >= ``min_score`` and, when
    ``classes`` is given, a class among them.

    Args:
        result: "class_ids" [N], "scores" [N], "masks" bool [H, W, N] or
            :class:`~mrcnn.structures.masks.BoxMasks` (``mask_format="boxes"``).
        class_names: names by class id ("BG" first).
    """
    class_ids = np.asarray(result["class_ids"]).reshape(-1)
    scores = np.asarray(result["scores"], dtype=np.float64).reshape(-1)
    wanted = None if classes is None else set(classes)
    keep = [
        i
        for i in range(len(class_ids))
        if scores[i] >= min_score and (wanted is None or _name(class_names, class_ids[i]) in wanted)
    ]
    masks = result["masks"]
    out: dict[int, Detection] = {}
    if hasattr(masks, "patches"):
        chosen = set(keep)
        for index, top, left, patch in masks.patches():
            if index in chosen:
                name = _name(class_names, class_ids[index])
                out[index] = Detection(name, float(scores[index]), patch, int(left), int(top))
    else:
        for i in keep:
            name = _name(class_names, class_ids[i])
            out[i] = Detection.from_mask(masks[:, :, i], name, float(scores[i]))
    return [out[i] for i in keep if i in out and out[i].patch.any()]


def _name(class_names: list[str], class_id) -> str:
    class_id = int(class_id)
    return class_names[class_id] if 0 <= class_id < len(class_names) else f"class {class_id}"


@dataclass
class ImageOutcome:
    """One input image: its counts, or why it was skipped."""

    path: Path
    counts: ImageCounts | None = None
    error: str = ""


@dataclass
class Summary:
    """What a run added to the project."""

    images: list[ImageOutcome] = field(default_factory=list)

    @property
    def skipped(self) -> list[ImageOutcome]:
        return [i for i in self.images if i.counts is None]

    def totals(self) -> ImageCounts:
        total = ImageCounts()
        for image in self.images:
            if image.counts is not None:
                for f in fields(ImageCounts):
                    if f.name != "notes":
                        setattr(
                            total, f.name, getattr(total, f.name) + getattr(image.counts, f.name)
                        )
        return total

    def line(self) -> str:
        """One line of totals."""
        t = self.totals()
        done = len(self.images) - len(self.skipped)
        text = (
            f"{done} images: {t.detections} detections, {t.written} written, "
            f"{t.overlapping} skipped over a person's region, {t.too_small} too small; "
            f"{t.kept} regions of people kept, {t.replaced} earlier annotate regions replaced"
        )
        if t.holes_filled:
            text += f"; {t.holes_filled} masks had holes filled"
        if self.skipped:
            text += f"; {len(self.skipped)} images skipped (unreadable)"
        return text


def image_line(outcome: ImageOutcome) -> str:
    """One line per image: its counts, or why it was skipped."""
    if outcome.counts is None:
        return f"skipped {outcome.path}: {outcome.error}"
    c = outcome.counts
    text = f"{outcome.path.name}: {c.detections} detections, {c.written} written"
    extra = [
        f"{c.overlapping} over a person's region" if c.overlapping else "",
        f"{c.too_small} too small" if c.too_small else "",
        f"{c.kept} kept" if c.kept else "",
        f"{c.replaced} replaced" if c.replaced else "",
    ]
    extra = [e for e in extra if e]
    return text + (f" ({', '.join(extra)})" if extra else "")


def annotate_images(
    model,
    paths: list[Path],
    project: Project,
    class_names: list[str],
    folder: Path,
    *,
    min_score: float = 0.0,
    classes: Iterable[str] | None = None,
    progress: bool = True,
    report: Callable[[str], None] | None = None,
) -> Summary:
    """Detect on each image and add the detections to ``project``.

    Args:
        model: a :class:`~mrcnn.maskrcnn.MaskRCNN` in inference mode.
        paths: the image files.
        class_names: names by class id ("BG" first).
        folder: the annotation file's folder: image names are written relative to it.
        report: called with one line per image (default: below the progress bar, on stdout).
    """
    summary = Summary()
    summary.images = each_image(
        paths,
        lambda path: _annotate_one(model, path, project, class_names, folder, min_score, classes),
        image_line,
        progress=progress,
        report=report,
    )
    return summary


def _annotate_one(model, path, project, class_names, folder, min_score, classes) -> ImageOutcome:
    done = read_and_run(path, lambda image: model.detect([image], mask_format="boxes")[0])
    if isinstance(done, str):
        return ImageOutcome(path, error=done)
    image, result = done
    record = ImageRecord(path, relative_name(path, folder), image.shape[0], image.shape[1])
    detections = detections_of(result, class_names, min_score, classes)
    return ImageOutcome(path, project.add_image(record, detections))


def dataset_spec(format_name: str, output: Path, class_attribute: str | None = None) -> str:
    """The ``--dataset`` spec our loaders read a written project with (for training)."""
    if format_name == "via":
        return f"via:{output}?class_attribute={class_attribute or DEFAULT_CLASS_ATTRIBUTE}"
    return f"{format_name}:{output}"

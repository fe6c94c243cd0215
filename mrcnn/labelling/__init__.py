"""Labelling with a model's help: detections written as editable annotations (VIA 2, LabelMe,
COCO, CVAT) that a person corrects and trains on (``mrcnn annotate``).

:func:`~mrcnn.labelling.annotate.annotate_images` runs a model over images and adds its
detections to a :class:`~mrcnn.labelling.merge.Project` (new, or read from a file a person is
editing: their regions are never replaced, and detections overlapping them are skipped).
"""

from mrcnn.labelling.annotate import FORMATS, Summary, annotate_images, detections_of, new_project
from mrcnn.labelling.merge import DEFAULT_SKIP_IOU, Project, WriteOptions
from mrcnn.labelling.polygons import DEFAULT_MIN_AREA, DEFAULT_TOLERANCE, KEEPS_HOLES, Detection

__all__ = [
    "DEFAULT_MIN_AREA",
    "DEFAULT_SKIP_IOU",
    "DEFAULT_TOLERANCE",
    "FORMATS",
    "KEEPS_HOLES",
    "Detection",
    "Project",
    "Summary",
    "WriteOptions",
    "annotate_images",
    "detections_of",
    "new_project",
]

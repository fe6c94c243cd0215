"""Matterport's module name for the Dataset base class: the public names of
:mod:`mrcnn.datasets.base` (the class, the format registry, mask helpers) and of
:mod:`mrcnn.datasets.loading` (load reports, the train/val split, file readers), where the code
lives."""

from mrcnn.datasets.base import (
    Dataset,
    describe_classes,
    empty_masks,
    image_loader,
    mask_loader,
    split_crowd,
)
from mrcnn.datasets.loading import (
    MAX_WARNINGS,
    VAL_SHARE,
    DatasetWarning,
    LoadReport,
    check_split_subset,
    in_subset,
    logger,
    read_image_size,
    read_json,
    require_images,
    subset_of,
)

__all__ = [
    "MAX_WARNINGS",
    "VAL_SHARE",
    "Dataset",
    "DatasetWarning",
    "describe_classes",
    "LoadReport",
    "check_split_subset",
    "empty_masks",
    "image_loader",
    "in_subset",
    "logger",
    "mask_loader",
    "read_image_size",
    "read_json",
    "require_images",
    "split_crowd",
    "subset_of",
]

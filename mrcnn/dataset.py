"""Matterport's module name for the Dataset base class: everything of
:mod:`mrcnn.datasets.base`, where the code lives."""

from mrcnn.datasets.base import (
    MAX_WARNINGS,
    VAL_SHARE,
    Dataset,
    DatasetWarning,
    LoadReport,
    check_split_subset,
    empty_masks,
    image_loader,
    in_subset,
    logger,
    mask_loader,
    read_image_size,
    read_json,
    require_images,
    split_crowd,
    subset_of,
)

__all__ = [
    "MAX_WARNINGS",
    "VAL_SHARE",
    "Dataset",
    "DatasetWarning",
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

"""evaluate_dataset over a dataset some of whose images fail to load: one line each, the others
evaluated (issue 30)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from mrcnn.evaluation import evaluate_dataset
from mrcnn.evaluation import runner as runner_module
from tests.helpers.bad_images import EDGE_ERROR, broken_shapes


class NoDetections:
    """A stand-in model: ``detect`` finds nothing, and remembers how many images it saw."""

    class config:  # noqa: N801 - mimics MaskRCNN.config
        IMAGES_PER_GPU = 2

    def __init__(self) -> None:
        self.seen = 0

    def detect(self, images):
        self.seen += len(images)
        return [
            {
                "rois": np.zeros((0, 4), np.int32),
                "class_ids": np.zeros(0, np.int32),
                "scores": np.zeros(0, np.float32),
                "masks": np.zeros((*image.shape[:2], 0), bool),
            }
            for image in images
        ]


def test_images_that_fail_to_load_are_skipped_with_one_line_each(caplog):
    dataset = broken_shapes(5, bad_masks=[1], bad_images=[2])
    model = NoDetections()
    with caplog.at_level(logging.WARNING, logger=runner_module.__name__):
        result = evaluate_dataset(model, dataset, progress=False)
    assert result.image_ids.tolist() == [0, 3, 4] and model.seen == 3
    assert [(f.image_id, f.method) for f in result.skipped] == [(1, "load_mask"), (2, "load_image")]
    assert [r.getMessage() for r in caplog.records] == [
        "image 1 (photos/train_1.jpg): load_mask raised IndexError: "
        f"{EDGE_ERROR}; skipped, not evaluated",
        "image 2 (photos/train_2.jpg): load_image raised OSError: cannot identify image file "
        "'photos/train_2.jpg'; skipped, not evaluated",
    ]
    assert result.summary()[0] == "3 images, 0 detections (mask IoU); skipped 2 that failed to load"
    assert len(result.image_aps[0.5]) == 3


def test_a_dataset_of_which_no_image_loads_is_one_clear_error():
    dataset = broken_shapes(2, bad_masks=[0, 1])
    with pytest.raises(ValueError, match=r"none of the 2 images could be loaded, e\.g\. image 0 "):
        evaluate_dataset(NoDetections(), dataset, progress=False)

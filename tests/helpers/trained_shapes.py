"""A small network trained to overfit a few triangles, shared by the tests that need a trained
model (test_overfit, test_precision, test_int8, ...); trained once per test run."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
import time
from functools import lru_cache
from pathlib import Path

import torch

from mrcnn.config import Config
from mrcnn.datasets import ShapesDataset
from mrcnn.model import MaskRCNN
from tests.helpers.run_shared import RUN_DIR_VARIABLE, made_once_per_run


class OverfitConfig(Config):
    """The demo's recipe (ResNet-18, AdamW, trainable BatchNorm) shrunk to 64 x 64 images."""

    NAME = "overfit"
    NUM_CLASSES = 4
    BACKBONE = "resnet18"
    TRAIN_BN = True
    IMAGES_PER_GPU = 3
    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    PRE_NMS_LIMIT = 300
    POST_NMS_ROIS_TRAINING = 64
    POST_NMS_ROIS_INFERENCE = 50
    TRAIN_ROIS_PER_IMAGE = 32
    TOP_DOWN_PYRAMID_SIZE = 32
    MASK_HEAD_CHANNELS = 32
    FPN_CLASSIF_FC_LAYERS_SIZE = 64
    MINI_MASK_SHAPE = (28, 28)
    MAX_GT_INSTANCES = 4
    DETECTION_MAX_INSTANCES = 10
    DETECTION_MIN_CONFIDENCE = 0.0  # AP ranks the detections; keep them all
    STEPS_PER_EPOCH = 60
    VALIDATION_STEPS = 0
    OPTIMIZER = "adamw"
    LEARNING_RATE = 0.003
    WARMUP_STEPS = 5
    WORKERS = 0
    DEVICE = "cpu"


def triangles(count: int, seed: int = 0) -> ShapesDataset:
    """``count`` generated 64 x 64 images of one triangle each (pointing up); the model of
    :func:`trained_triangles` learnt the first 3 of seed 0."""
    dataset = ShapesDataset()
    dataset.load_shapes(count, 64, 64, seed=seed, max_shapes=1)
    dataset.prepare()
    for info in dataset.image_info:
        info["shapes"] = [("triangle", colour, dims) for _, colour, dims in info["shapes"]]
    return dataset


@lru_cache(maxsize=1)
def trained_triangles() -> tuple[Path, float]:
    """(checkpoint, training seconds) of :class:`OverfitConfig` trained from random weights for
    one epoch of 60 steps on ``triangles(3)``: once for the test run, shared by its processes
    (tests/helpers/run_shared.py); outside pytest, in a temporary folder removed at exit."""
    if RUN_DIR_VARIABLE not in os.environ:
        folder = Path(tempfile.mkdtemp(prefix="mrcnn_trained_triangles_"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        return _train(folder)
    folder = made_once_per_run("trained_triangles", _train_and_record)
    record = json.loads((folder / "trained.json").read_text())
    return Path(record["checkpoint"]), float(record["seconds"])


def _train(folder: Path) -> tuple[Path, float]:
    torch.manual_seed(0)
    model = MaskRCNN("training", OverfitConfig(), folder)
    start = time.perf_counter()
    model.train(triangles(3), None, OverfitConfig.LEARNING_RATE, epochs=1, layers="all")
    return Path(model.find_last()), time.perf_counter() - start


def _train_and_record(folder: Path) -> None:
    checkpoint, seconds = _train(folder)
    record = {"checkpoint": str(checkpoint), "seconds": seconds}
    (folder / "trained.json").write_text(json.dumps(record))


def trained_model(**overrides) -> MaskRCNN:
    """An inference model of :class:`OverfitConfig` (with ``overrides``) holding the weights of
    :func:`trained_triangles`."""
    checkpoint, _ = trained_triangles()
    model = MaskRCNN("inference", OverfitConfig.from_overrides(overrides), checkpoint.parent)
    model.load_weights(str(checkpoint))
    return model

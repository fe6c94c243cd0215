"""A tiny random-weight model for the tests of the commands that run one (detect, splash, video)."""

from __future__ import annotations

from pathlib import Path

import torch

from mrcnn.config import Config
from mrcnn.model import MaskRCNN
from mrcnn.weights.checkpoint import atomic_torch_save, checkpoint_payload

#: Small and fast; DETECTION_MIN_CONFIDENCE 0 so that random weights still give detections.
TINY = {
    "NAME": "tiny",
    "BACKBONE": "resnet50",
    "NUM_CLASSES": 3,
    "IMAGE_RESIZE_MODE": "square",
    "IMAGE_MIN_DIM": 128,
    "IMAGE_MAX_DIM": 128,
    "POST_NMS_ROIS_INFERENCE": 50,
    "PRE_NMS_LIMIT": 200,
    "FPN_CLASSIF_FC_LAYERS_SIZE": 64,
    "DETECTION_MIN_CONFIDENCE": 0,
    "DETECTION_MAX_INSTANCES": 5,
    "IMAGES_PER_GPU": 4,
    "DEVICE": "cpu",
}


def tiny_model(**overrides) -> MaskRCNN:
    """An inference model of the TINY config (seeded, so every test gets the same weights)."""
    torch.manual_seed(0)
    return MaskRCNN("inference", Config.from_overrides({**TINY, **overrides}))


def save_tiny_checkpoint(path: Path, class_names=None, **overrides) -> Path:
    """Write a checkpoint of :func:`tiny_model` (with its config, and class names if given)."""
    model = tiny_model(**overrides)
    extra = {"class_names": class_names} if class_names is not None else {}
    payload = checkpoint_payload(model.net.state_dict(), model.config, 1, **extra)
    atomic_torch_save(payload, path)
    return path

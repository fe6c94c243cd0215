"""A tiny config and shapes datasets that make training tests fast on a CPU."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from mrcnn.config import Config
from mrcnn.datasets import ShapesDataset


class TinyConfig(Config):
    NAME = "tiny"
    NUM_CLASSES = 4
    BACKBONE = "resnet50"
    IMAGES_PER_GPU = 1
    IMAGE_MIN_DIM = 64
    IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    PRE_NMS_LIMIT = 500
    POST_NMS_ROIS_TRAINING = 32
    POST_NMS_ROIS_INFERENCE = 32
    TRAIN_ROIS_PER_IMAGE = 16
    FPN_CLASSIF_FC_LAYERS_SIZE = 32
    TOP_DOWN_PYRAMID_SIZE = 16
    MASK_HEAD_CHANNELS = 16
    MINI_MASK_SHAPE = (28, 28)
    STEPS_PER_EPOCH = 2
    VALIDATION_STEPS = 1
    WARMUP_STEPS = 2
    WORKERS = 0
    DEVICE = "cpu"
    TRAIN_BN = True
    LEARNING_RATE = 0.02


def shapes(count: int, subset: str = "train", size: int = 64) -> ShapesDataset:
    dataset = ShapesDataset()
    dataset.load_shapes(count, size, size, subset=subset, seed=1, max_shapes=2)
    dataset.prepare()
    return dataset


def config(**overrides) -> Config:
    return TinyConfig.from_overrides(overrides)


def limit_threads() -> None:
    torch.set_num_threads(1)


@contextlib.contextmanager
def conv_output_dtypes(net: torch.nn.Module) -> Iterator[set]:
    """Collect the dtypes of every Conv2d output while the block runs (forward hooks), to
    check the precision that autocast really gave."""
    dtypes: set = set()
    hooks = [
        module.register_forward_hook(lambda _m, _i, out: dtypes.add(out.dtype))
        for module in net.modules()
        if isinstance(module, torch.nn.Conv2d)
    ]
    try:
        yield dtypes
    finally:
        for hook in hooks:
            hook.remove()

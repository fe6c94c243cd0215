"""Training produces a useful model: from random weights, a small network overfits a few
images of triangles (asymmetric, so a transposed or flipped mask target cannot score) to mask
AP@0.5 >= 0.8 on those images, within well under a minute on two CPU cores."""

from __future__ import annotations

import time

import torch

from mrcnn.config import Config
from mrcnn.datasets import ShapesDataset
from mrcnn.evaluation import evaluate_dataset
from mrcnn.model import MaskRCNN


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


def triangles(count: int) -> ShapesDataset:
    """``count`` generated 64 x 64 images of one triangle each (pointing up)."""
    dataset = ShapesDataset()
    dataset.load_shapes(count, 64, 64, seed=0, max_shapes=1)
    dataset.prepare()
    for info in dataset.image_info:
        info["shapes"] = [("triangle", colour, dims) for _, colour, dims in info["shapes"]]
    return dataset


def test_training_overfits_a_few_triangles(tmp_path):
    torch.manual_seed(0)
    dataset = triangles(3)
    assert {int(c) for i in dataset.image_ids for c in dataset.load_mask(i)[1]} == {3}
    model = MaskRCNN("training", OverfitConfig(), tmp_path)
    start = time.perf_counter()
    model.train(dataset, None, OverfitConfig.LEARNING_RATE, epochs=1, layers="all")
    seconds = time.perf_counter() - start
    evaluation = evaluate_dataset(model, dataset, iou_thresholds=(0.5,), progress=False)
    assert evaluation.map50 >= 0.8, (
        f"mask AP@0.5 {evaluation.map50:.3f} after {seconds:.0f} s of training; per image "
        f"{evaluation.image_aps[0.5].round(2).tolist()}"
    )

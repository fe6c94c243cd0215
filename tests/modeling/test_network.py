"""MaskRCNNNet: the stages wired together, on a tiny random batch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrcnn.config import Config
from mrcnn.model import MaskRCNN
from mrcnn.modeling.network import MaskRCNNNet


class TinyConfig(Config):
    NAME = "tiny"
    BACKBONE = "resnet50"
    NUM_CLASSES = 3
    FPN_CLASSIF_FC_LAYERS_SIZE = 16
    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = 32
    IMAGE_MAX_DIM = 64
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    PRE_NMS_LIMIT = 1000
    POST_NMS_ROIS_TRAINING = 30
    POST_NMS_ROIS_INFERENCE = 20
    DETECTION_MIN_CONFIDENCE = 0.0
    DETECTION_CLASS_MODE = "all_classes"
    DETECTION_MAX_INSTANCES = 4
    DEVICE = "cpu"


WINDOWS = torch.tensor([[0.0, 0.0, 64.0, 64.0], [8.0, 4.0, 56.0, 60.0]])


@pytest.fixture(scope="module")
def run():
    torch.manual_seed(0)
    model = MaskRCNN("inference", TinyConfig(), model_dir="unused")
    net = model.net
    assert isinstance(net, MaskRCNNNet) and not net.training
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1)) * 50
    captured = []
    features_method = net.features
    net.features = lambda x: captured.append(features_method(x)) or captured[-1]
    try:
        with torch.no_grad():
            found = net(images, WINDOWS)
    finally:
        del net.features
    with torch.no_grad():
        # the same through the stage methods, from the features the forward pass computed
        (features,) = captured
        objectness, rpn_deltas = net.rpn_outputs(features)
        rois, roi_scores, roi_image = net.proposals(objectness, rpn_deltas, (64, 64), WINDOWS)
        class_logits, deltas = net.box_predictions(features, rois, roi_image)
        staged = net.detections(class_logits, deltas, rois, roi_image, WINDOWS)
        staged["masks"] = net.mask_probabilities(
            features, staged["boxes"], staged["image_index"], staged["class_ids"]
        )
    stages = {
        "features": features,
        "objectness": objectness,
        "rpn_deltas": rpn_deltas,
        "rois": rois,
        "roi_scores": roi_scores,
        "roi_image": roi_image,
        "class_logits": class_logits,
        "deltas": deltas,
    }
    return net, found, staged, stages, model


def test_forward_keys_and_shapes(run):
    _, found, _, _, _ = run
    assert set(found) == {"boxes", "class_ids", "scores", "image_index", "masks"}
    d = len(found["scores"])
    assert d > 0
    assert found["boxes"].shape == (d, 4) and found["boxes"].dtype == torch.float32
    assert found["class_ids"].shape == (d,) and found["class_ids"].dtype == torch.int64
    assert found["image_index"].shape == (d,) and found["image_index"].dtype == torch.int64
    assert found["masks"].shape == (d, 28, 28)
    assert ((found["masks"] >= 0) & (found["masks"] <= 1)).all()
    assert ((found["class_ids"] >= 1) & (found["class_ids"] <= 2)).all()


def test_forward_grouped_by_image_best_first_capped_and_inside_windows(run):
    _, found, _, _, _ = run
    image_index = found["image_index"]
    assert image_index.tolist() == sorted(image_index.tolist())
    for i in range(2):
        selected = image_index == i
        scores = found["scores"][selected]
        assert 0 < len(scores) <= TinyConfig.DETECTION_MAX_INSTANCES
        assert (scores[:-1] >= scores[1:]).all()
        boxes = found["boxes"][selected]
        assert (boxes[:, :2] >= WINDOWS[i, :2]).all() and (boxes[:, 2:] <= WINDOWS[i, 2:]).all()
        assert (boxes[:, 2:] > boxes[:, :2]).all()


def test_stages_compose_to_forward(run):
    _, found, staged, _, _ = run
    for key in found:
        torch.testing.assert_close(found[key], staged[key])


def test_stage_shapes(run):
    _, _, _, stages, _ = run
    features = stages["features"]
    assert [tuple(f.shape) for f in features] == [
        (2, 256, 16, 16),
        (2, 256, 8, 8),
        (2, 256, 4, 4),
        (2, 256, 2, 2),
        (2, 256, 1, 1),
    ]
    anchors = (16 * 16 + 8 * 8 + 4 * 4 + 2 * 2 + 1) * 3
    assert stages["objectness"].shape == (2, anchors)
    assert stages["rpn_deltas"].shape == (2, anchors, 4)
    k = len(stages["rois"])
    assert stages["roi_image"].tolist() == sorted(stages["roi_image"].tolist())
    assert (torch.bincount(stages["roi_image"]) <= TinyConfig.POST_NMS_ROIS_INFERENCE).all()
    assert stages["class_logits"].shape == (k, 3)
    assert stages["deltas"].shape == (k, 3, 4)


def test_proposal_limit_follows_training_mode(run):
    net, _, _, stages, _ = run
    args = (stages["objectness"], stages["rpn_deltas"], (64, 64), WINDOWS)
    try:
        net.train()
        _, _, training = net.proposals(*args)
    finally:
        net.eval()
    _, _, inference = net.proposals(*args)
    _, _, explicit = net.proposals(*args, post_nms_limit=3)
    _, _, unlimited = net.proposals(*args, post_nms_limit=10**6)
    assert (torch.bincount(unlimited) > 30).all()
    assert torch.bincount(training).tolist() == [30, 30]
    assert torch.bincount(inference).tolist() == [20, 20]
    assert torch.bincount(explicit).tolist() == [3, 3]


def test_mask_probabilities_without_boxes(run):
    net, _, _, stages, _ = run
    empty = net.mask_probabilities(
        stages["features"],
        torch.zeros(0, 4),
        torch.zeros(0, dtype=torch.int64),
        torch.zeros(0, dtype=torch.int64),
    )
    assert empty.shape == (0, 28, 28)


def test_anchors_follow_device_and_dtype(run):
    net, _, _, _, _ = run
    anchors, counts = net.anchors((64, 64), torch.zeros(1, dtype=torch.float64))
    assert anchors.dtype == torch.float64 and sum(counts) == len(anchors)


def test_model_to_float64_runs_detect_in_float64(run):
    model = run[-1]
    assert model.dtype == torch.float32
    assert model.to(torch.float64) is model
    assert model.dtype == torch.float64 and model.device == torch.device("cpu")
    seen = []
    hook = model.net.register_forward_pre_hook(
        lambda _, args: seen.append((args[0].dtype, args[1].dtype))
    )
    try:
        image = np.random.default_rng(0).integers(0, 256, (50, 40, 3)).astype(np.uint8)
        (result,) = model.detect([image])
    finally:
        hook.remove()
        model.to(torch.float32)
    assert seen == [(torch.float64, torch.float64)]
    assert result["boxes"].dtype == np.float32 and result["scores"].dtype == np.float32
    assert result["masks"].shape[:2] == (50, 40)

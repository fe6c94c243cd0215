"""The per-photo signals of ``mrcnn rank`` (:mod:`mrcnn.labelling.signals`) on constructed
cases, and the network pass against ``detect`` on a tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrcnn.labelling.signals import (
    class_entropy,
    detection_uncertainty,
    flip_disagreement,
    mask_uncertainty,
    mirrored,
    network_pass,
    pooled_features,
    signals_of,
)
from mrcnn.structures.masks import BoxMasks
from tests.helpers.tiny_model import tiny_model

H, W = 64, 96


def _result(boxes, class_ids, soft=None) -> dict:
    """A ``detect(..., mask_format="boxes")``-style result: full-box masks unless ``soft``."""
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    if soft is None:
        soft = torch.ones((len(boxes), 28, 28))
    return {
        "boxes": boxes.numpy(),
        "class_ids": np.asarray(class_ids, dtype=np.int32),
        "scores": np.full(len(boxes), 0.9, dtype=np.float32),
        "masks": BoxMasks((H, W), soft, boxes),
    }


def test_a_score_at_the_threshold_is_most_uncertain_and_sure_scores_are_not():
    at, score = detection_uncertainty(np.array([0.99, 0.7, 0.1]), 0.7)
    assert at == pytest.approx(1.0) and score == pytest.approx(0.7)
    sure, _ = detection_uncertainty(np.array([0.995, 0.99, 0.06]), 0.7)
    assert sure < 0.1
    below, score = detection_uncertainty(np.array([0.6]), 0.7)  # a near miss counts
    assert below == pytest.approx(1 - 0.1 / 0.7) and score == pytest.approx(0.6)
    nothing, score = detection_uncertainty(np.zeros(0), 0.7)
    assert nothing == 0.0 and np.isnan(score)


def test_class_entropy_is_high_between_two_classes_and_zero_with_one_class():
    torn = np.array([[0.1, 0.45, 0.0, 0.45], [0.05, 0.95, 0.0, 0.0]])
    value, classes = class_entropy(torn, np.array([0.9, 0.95]))
    assert value > 0.6 and set(classes) == {1, 3}
    sure, _ = class_entropy(torn[1:], np.array([0.95]))
    assert sure < 0.01
    low_scores, _ = class_entropy(torn, np.array([0.2, 0.3]))  # below ENTROPY_FLOOR: ignored
    assert low_scores == 0.0
    assert class_entropy(np.array([[0.1, 0.9]]), np.array([0.9])) == (0.0, None)


def test_mask_uncertainty_counts_undecided_pixels():
    sharp = np.zeros((1, 28, 28))
    sharp[0, 5:20, 5:20] = 0.99
    blurry = sharp * 0.5
    assert mask_uncertainty(sharp) == 0.0
    assert mask_uncertainty(np.concatenate([sharp, blurry])) == 1.0
    assert mask_uncertainty(np.zeros((0, 28, 28))) == 0.0


def test_mirroring_twice_gives_the_result_back_and_mirrors_the_mask():
    soft = torch.zeros((1, 28, 28))
    soft[0, :, :7] = 1.0  # the left quarter of the box
    result = _result([[10, 5, 50, 45]], [1], soft)
    once = mirrored(result, W)
    np.testing.assert_allclose(once["boxes"], [[W - 50, 5, W - 10, 45]])
    dense, flipped = result["masks"].to_dense(), once["masks"].to_dense()
    agreement = (dense[:, ::-1] == flipped).mean()
    assert agreement > 0.99 and dense.any()
    twice = mirrored(once, W)
    np.testing.assert_allclose(twice["boxes"], result["boxes"])
    assert (twice["masks"].to_dense() == dense).all()


def test_flip_disagreement_is_zero_for_the_same_detections_and_grows_with_a_missing_one():
    both = _result([[10, 5, 40, 30], [50, 20, 90, 60]], [1, 2])
    assert flip_disagreement(both, both) == pytest.approx(0.0)
    one = _result([[10, 5, 40, 30]], [1])
    assert flip_disagreement(both, one) == pytest.approx(1 / 3)
    other_class = _result([[10, 5, 40, 30]], [2])
    assert flip_disagreement(one, other_class) == pytest.approx(1.0)
    none = _result(np.zeros((0, 4)), [])
    assert flip_disagreement(none, none) == 0.0 and flip_disagreement(one, none) == 1.0


def test_the_pass_computes_what_detect_computes():
    model = tiny_model(
        BACKBONE="resnet18", DETECTION_MIN_CONFIDENCE=0.3, IMAGE_MIN_DIM=64, IMAGE_MAX_DIM=64
    )
    image = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    found = network_pass(model, image)
    expected = model.detect([image], mask_format="boxes")[0]
    mirror = model.detect([np.ascontiguousarray(image[:, ::-1])], mask_format="boxes")[0]
    assert len(expected["scores"]) > 0
    for got, want in ((found.result, expected), (found.flipped, mirrored(mirror, W))):
        np.testing.assert_array_equal(got["class_ids"], want["class_ids"])
        np.testing.assert_allclose(got["scores"], want["scores"], atol=1e-4)
        np.testing.assert_allclose(got["boxes"], want["boxes"], atol=1e-2)
    assert found.mask_probs.shape == (len(expected["scores"]), 28, 28)
    # Every detection is a candidate (the candidates only lower the floor).
    assert found.candidate_scores.max() == pytest.approx(expected["scores"].max(), abs=1e-4)
    assert found.candidate_probs.shape == (len(found.candidate_scores), 3)
    np.testing.assert_allclose(pooled_features(model, image), found.feature, rtol=1e-3, atol=1e-3)
    signals = signals_of(found)
    assert signals.detections == len(expected["scores"]) and signals.threshold == 0.3
    assert all(0.0 <= v <= 1.0 for v in (signals.detection, signals.entropy, signals.mask))
    assert model.net.training is False  # left in the mode it was in

"""How much labelling a photo should help, per photo, for ``mrcnn rank``: what one pass of the
network over the photo and its mirror image gives, and the signals read from it.

The pass runs the network's stage methods (:class:`mrcnn.modeling.network.MaskRCNNNet`) as
``MaskRCNNNet.forward`` runs them (and as :func:`mrcnn.inspect.run_stages` does for the
notebooks), on a batch of the photo and its horizontal mirror, keeping what detection throws
away: the box head's class probabilities, the soft masks and the feature maps. Its ``result``
is what ``model.detect([image], mask_format="boxes")[0]`` returns.

Every signal is in [0, 1], 1 meaning "the model is unsure here" (docs/training.md, "Check,
and choose what to label next", states the rule):

- **detection uncertainty**: over the *candidates*, the detection layer rerun with the
  confidence floor :data:`CANDIDATE_FLOOR` and every foreground class of every proposal (so
  that near misses below DETECTION_MIN_CONFIDENCE count), the highest
  ``1 - |p - t| / (t if p < t else 1 - t)`` (p: the candidate's score, t: the threshold): 1 for
  a score at the threshold, 0 for scores of 0 or 1.
- **class entropy**: over the candidates scoring >= 0.5, the highest entropy of the box head's
  foreground class probabilities at the candidate's box (renormalised, divided by
  log(classes)); 0 with one class.
- **mask uncertainty**: over the detections, the highest share of undecided pixels (soft-mask
  probability in (0.25, 0.75)) among the pixels above 0.25 of the detection's soft mask.
- **flip disagreement**: the detections of the mirror image, mirrored back, against those of
  the photo: 1 - the mean, over the detections of both, of the best mask IoU with a detection
  of the same class in the other; 0 when neither has any.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from pycocotools import mask as mask_utils

from mrcnn.modeling.precision import decoding_dtype
from mrcnn.modeling.roi_align import feature_table
from mrcnn.structures.image import mold_batch
from mrcnn.structures.masks import BoxMasks
from mrcnn.structures.rgb import to_rgb_uint8
from mrcnn.structures.transfer import float_array

#: Candidates are the detection layer's boxes scoring at least this (any foreground class).
CANDIDATE_FLOOR = 0.05
#: At most this many candidates per photo (the best).
CANDIDATE_LIMIT = 100
#: Candidates scoring at least this count for the class entropy.
ENTROPY_FLOOR = 0.5
#: Soft-mask probabilities strictly between these are undecided pixels.
UNDECIDED = (0.25, 0.75)


@dataclass
class NetworkPass:
    """One pass over a photo and its mirror image.

    Attributes:
        result: the photo's detections, as ``model.detect([image], mask_format="boxes")[0]``
            returns them ("boxes" [D, 4] (x1, y1, x2, y2) photo pixels, "class_ids" [D],
            "scores" [D], "masks" :class:`~mrcnn.structures.masks.BoxMasks`).
        flipped: the mirror image's detections mirrored back into the photo's pixels.
        mask_probs: float [D, M, M] soft masks of ``result``'s detections (their classes).
        candidate_scores: float [K] scores of the candidates (see the module docstring).
        candidate_probs: float [K, C] box-head class probabilities at each candidate's box
            (background first).
        feature: float [F] the feature pyramid P2-P6, each level averaged over the photo's
            window, concatenated.
        threshold: the DETECTION_MIN_CONFIDENCE the detections were made with.
    """

    result: dict
    flipped: dict
    mask_probs: np.ndarray
    candidate_scores: np.ndarray
    candidate_probs: np.ndarray
    feature: np.ndarray
    threshold: float


def network_pass(model, image: np.ndarray) -> NetworkPass:
    """Run ``model`` (a :class:`~mrcnn.maskrcnn.MaskRCNN`) once over [H, W, 3] uint8 RGB
    ``image`` and its horizontal mirror (one batch of two); see :class:`NetworkPass`."""
    image = to_rgb_uint8(image)
    views = [image, np.ascontiguousarray(image[:, ::-1])]
    net, config = model.net, model.config
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode(), model.inference_context():
            batch, metas = mold_batch(views, config, model.dtype, model.device)
            shape = (int(batch.shape[-2]), int(batch.shape[-1]))
            windows = torch.tensor([m.window for m in metas], dtype=batch.dtype).to(batch.device)
            features = net.features(batch)
            objectness, rpn_deltas = net.rpn_outputs(features)
            rois, _, roi_image = net.proposals(objectness, rpn_deltas, shape, windows)
            table = feature_table(features[:4])  # once for the heads, as forward does
            class_logits, deltas = net.box_predictions(features, rois, roi_image, table)
            found = net.detections(class_logits, deltas, rois, roi_image, windows, shape)
            found["masks"] = decoding_dtype(
                net.mask_probabilities(
                    features, found["boxes"], found["image_index"], found["class_ids"], table
                )
            )
            candidates = _candidates(net, class_logits, deltas, rois, roi_image, windows, shape)
            probs = _class_probs_at(net, features, candidates, table)
            results = [model.unmold_one(found, i, metas[i], shape, "boxes") for i in (0, 1)]
            pooled = _pooled(features, metas[0].window, shape)
    finally:
        net.train(was_training)
    return NetworkPass(
        result=results[0],
        flipped=mirrored(results[1], image.shape[1]),
        mask_probs=float_array(found["masks"][found["image_index"] == 0]),
        candidate_scores=float_array(candidates["scores"]),
        candidate_probs=probs,
        feature=pooled,
        threshold=float(config.DETECTION_MIN_CONFIDENCE),
    )


def _candidates(net, class_logits, deltas, rois, roi_image, windows, shape) -> dict:
    """The photo's (image 0's) candidates: the network's own detection layer with the floor
    :data:`CANDIDATE_FLOOR`, every foreground class of every proposal and room for
    :data:`CANDIDATE_LIMIT`."""
    settings = replace(
        net.settings,
        min_confidence=CANDIDATE_FLOOR,
        class_mode="all_classes",
        max_instances=max(CANDIDATE_LIMIT, net.settings.max_instances),
    )
    layer = net.flavour.with_settings(settings)
    mine = roi_image == 0
    found = layer.detections(
        class_logits[mine],
        deltas[mine],
        rois[mine],
        roi_image[mine],
        windows[:1],
        net.bbox_std.to(deltas),
        shape,
    )
    return found


def _class_probs_at(net, features, candidates: dict, table) -> np.ndarray:
    """float [K, C]: the box head's class probabilities at each candidate's box."""
    boxes = candidates["boxes"]
    if len(boxes) == 0:
        return np.zeros((0, int(net.config.NUM_CLASSES)), dtype=np.float32)
    logits, _ = net.box_predictions(features, boxes, candidates["image_index"], table)
    return float_array(torch.softmax(logits.float(), dim=1))


def _pooled(features: list[torch.Tensor], window, shape: tuple[int, int]) -> np.ndarray:
    """float [F]: each feature map of image 0 averaged over the cells of ``window`` (x1, y1,
    x2, y2 input pixels), concatenated."""
    x1, y1, x2, y2 = (float(v) for v in window)
    parts = []
    for level in features:
        height, width = level.shape[-2:]
        sy, sx = shape[0] / height, shape[1] / width
        top, left = int(y1 // sy), int(x1 // sx)
        bottom = max(top + 1, math.ceil(y2 / sy))
        right = max(left + 1, math.ceil(x2 / sx))
        parts.append(level[0, :, top:bottom, left:right].float().mean(dim=(1, 2)))
    return float_array(torch.cat(parts))


def pooled_features(model, image: np.ndarray) -> np.ndarray:
    """float [F]: :attr:`NetworkPass.feature` of [H, W, 3] uint8 RGB ``image`` alone (the
    backbone and pyramid only), for the photos already labelled."""
    net = model.net
    was_training = net.training
    net.eval()
    try:
        with torch.inference_mode(), model.inference_context():
            image = to_rgb_uint8(image)
            batch, metas = mold_batch([image], model.config, model.dtype, model.device)
            shape = (int(batch.shape[-2]), int(batch.shape[-1]))
            return _pooled(net.features(batch), metas[0].window, shape)
    finally:
        net.train(was_training)


def mirrored(result: dict, width: int) -> dict:
    """A detection result of a mirror image (``mask_format="boxes"``), mirrored back into the
    original photo of ``width`` pixels: boxes (x1, y1, x2, y2) -> (W - x2, y1, W - x1, y2),
    soft masks flipped left to right."""
    boxes = np.asarray(result["boxes"], dtype=np.float32).reshape(-1, 4).copy()
    boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
    masks: BoxMasks = result["masks"]
    soft = torch.flip(masks.soft, dims=[2]) if len(masks) else masks.soft
    mask_boxes = masks.boxes.clone()
    mask_boxes[:, [0, 2]] = width - masks.boxes[:, [2, 0]]
    return {
        **result,
        "boxes": boxes,
        "rois": np.round(boxes[:, [1, 0, 3, 2]]).astype(np.int32),
        "masks": BoxMasks(masks.shape, soft, mask_boxes, masks.threshold),
    }


# ------------------------------------------------------------------------------------------------
# The signals
# ------------------------------------------------------------------------------------------------
@dataclass
class Signals:
    """The signals of one photo (each in [0, 1]; see the module docstring) and what the
    reasons name: ``doubtful_score`` the score of the most doubtful candidate (NaN: none),
    ``confused`` the two most likely classes of the most confused candidate (ids, or None),
    ``detections`` how many detections the photo has, ``feature`` [F] its pooled features."""

    detection: float
    entropy: float
    mask: float
    flip: float
    feature: np.ndarray
    detections: int = 0
    threshold: float = 0.5
    doubtful_score: float = float("nan")
    confused: tuple[int, int] | None = None


def signals_of(found: NetworkPass) -> Signals:
    """The :class:`Signals` of one :class:`NetworkPass`."""
    detection, doubtful = detection_uncertainty(found.candidate_scores, found.threshold)
    entropy, confused = class_entropy(found.candidate_probs, found.candidate_scores)
    return Signals(
        detection=detection,
        entropy=entropy,
        mask=mask_uncertainty(found.mask_probs),
        flip=flip_disagreement(found.result, found.flipped),
        feature=np.asarray(found.feature, dtype=np.float32),
        detections=len(found.result["class_ids"]),
        threshold=found.threshold,
        doubtful_score=doubtful,
        confused=confused,
    )


def detection_uncertainty(scores: np.ndarray, threshold: float) -> tuple[float, float]:
    """(the highest closeness of a candidate's score to ``threshold``, that score); (0, NaN)
    without candidates. Closeness: 1 at the threshold, falling linearly to 0 at 0 and at 1."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if not len(scores):
        return 0.0, float("nan")
    t = min(max(float(threshold), 0.05), 0.95)
    width = np.where(scores < t, t, 1.0 - t)
    closeness = np.clip(1.0 - np.abs(scores - t) / width, 0.0, 1.0)
    best = int(np.argmax(closeness))
    return float(closeness[best]), float(scores[best])


def class_entropy(probs: np.ndarray, scores: np.ndarray) -> tuple[float, tuple[int, int] | None]:
    """(the highest normalised entropy of the foreground class probabilities of a candidate
    scoring >= :data:`ENTROPY_FLOOR`, that candidate's two most likely class ids).

    Args:
        probs: float [K, C] class probabilities, background first; scores: float [K].
    """
    probs = np.asarray(probs, dtype=np.float64)
    keep = np.asarray(scores).reshape(-1) >= ENTROPY_FLOOR
    foreground = probs[keep, 1:] if probs.ndim == 2 else np.zeros((0, 0))
    if foreground.shape[0] == 0 or foreground.shape[1] < 2:
        return 0.0, None
    p = foreground / np.maximum(foreground.sum(axis=1, keepdims=True), 1e-12)
    entropy = -(p * np.log(np.clip(p, 1e-12, 1.0))).sum(axis=1) / math.log(p.shape[1])
    best = int(np.argmax(entropy))
    top_two = np.argsort(-p[best])[:2] + 1
    return float(np.clip(entropy[best], 0.0, 1.0)), (int(top_two[0]), int(top_two[1]))


def mask_uncertainty(mask_probs: np.ndarray) -> float:
    """The highest share, over the detections' float [D, M, M] soft masks, of undecided pixels
    among the pixels above :data:`UNDECIDED`'s low end; 0 without detections."""
    probs = np.asarray(mask_probs, dtype=np.float64)
    if probs.size == 0:
        return 0.0
    probs = probs.reshape(len(probs), -1)
    low, high = UNDECIDED
    undecided = ((probs > low) & (probs < high)).sum(axis=1)
    inside = np.maximum((probs > low).sum(axis=1), 1)
    return float(np.max(undecided / inside))


def flip_disagreement(result: dict, flipped: dict) -> float:
    """1 - the mean, over the detections of both results, of each one's best mask IoU with a
    detection of the same class in the other result (0 when neither has detections).

    Args:
        result, flipped: detection results with "class_ids" [N] and "masks"
            :class:`~mrcnn.structures.masks.BoxMasks` (or bool [H, W, N]) of the same photo.
    """
    ids_a = np.asarray(result["class_ids"]).reshape(-1)
    ids_b = np.asarray(flipped["class_ids"]).reshape(-1)
    if len(ids_a) + len(ids_b) == 0:
        return 0.0
    if len(ids_a) == 0 or len(ids_b) == 0:
        return 1.0
    ious = _mask_ious(result["masks"], flipped["masks"])
    ious = np.where(ids_a[:, None] == ids_b[None, :], ious, 0.0)
    best = np.concatenate([ious.max(axis=1), ious.max(axis=0)])
    return float(np.clip(1.0 - best.mean(), 0.0, 1.0))


def _mask_ious(a, b) -> np.ndarray:
    """float [N1, N2] mask IoUs (pycocotools, on RLEs) of two sets of masks of one photo."""
    rles_a, rles_b = _rles(a), _rles(b)
    return np.asarray(mask_utils.iou(rles_a, rles_b, [0] * len(rles_b)), dtype=np.float64)


def _rles(masks) -> list[dict]:
    if isinstance(masks, BoxMasks):
        return masks.rle()
    dense = np.asfortranarray(np.asarray(masks, dtype=np.uint8))
    return mask_utils.encode(dense)

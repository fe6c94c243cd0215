"""Tiny exportable models and how their exported runs are compared (tests/deploy).

The comparisons export tiny random-weight models whose head weights are scaled down so that
scores spread (unscaled, every score saturates at 1.0 and the order of ties is arbitrary).
"""

from __future__ import annotations

from pathlib import Path

import torch

from mrcnn.model import MaskRCNN
from mrcnn.structures.image import mold_batch
from mrcnn.testing import pair_by_class, photo_like_image
from mrcnn.weights.checkpoint import atomic_torch_save, checkpoint_payload
from tests.helpers.tiny_model import tiny_model

CLASS_NAMES = ["circle", "square"]
#: Matterport's conventions: square input, aligned ROIAlign, rounded levels, top class.
MATTERPORT_STYLE = {
    "BACKBONE": "resnet18",
    "DETECTION_MAX_INSTANCES": 40,
    "DETECTION_NMS_THRESHOLD": 0.7,
}
#: torchvision's: shortest side, ImageNet normalisation, proposals per level, floor levels,
#: unaligned ROIAlign (ONNX's output_half_pixel mode), every class of every ROI.
TORCHVISION_STYLE = {
    "BACKBONE": "resnet18",
    "IMAGE_RESIZE_MODE": "shortest_side",
    "IMAGE_MIN_DIM": 96,
    "IMAGE_MAX_DIM": 160,
    "MEAN_PIXEL": [123.675, 116.28, 103.53],
    "STD_PIXEL": [58.395, 57.12, 57.375],
    "RPN_PROPOSALS_PER_LEVEL": True,
    "PRE_NMS_LIMIT": 100,
    "ROI_LEVEL_ROUNDING": "floor",
    "ROI_ALIGN_ALIGNED": False,
    "DETECTION_CLASS_MODE": "all_classes",
    "DETECTION_MIN_CONFIDENCE": 0.15,
    "DETECTION_MAX_INSTANCES": 40,
}


def spread_scores(model: MaskRCNN) -> MaskRCNN:
    """Scale the RPN and box-head output layers of a random model so that their outputs have a
    standard deviation of a few units on a photo-like image: objectness and class scores then
    spread instead of saturating or tying."""
    net = model.net.eval()
    batch, metas = mold_batch([photo_like_image(100, 140)], model.config)
    window = torch.tensor([metas[0].window], dtype=torch.float32)

    def rescale(layer: torch.nn.Module, output: torch.Tensor, std: float) -> None:
        layer.weight.mul_(std / float(output.std()))
        layer.bias.zero_()

    with torch.no_grad():
        features = net.features(batch)
        objectness, deltas = net.rpn_outputs(features)
        rescale(net.rpn.objectness, objectness, 2.0)
        rescale(net.rpn.deltas, deltas, 0.3)
        objectness, deltas = net.rpn_outputs(features)
        rois, _, image_index = net.proposals(objectness, deltas, batch.shape[-2:], window)
        logits, box_deltas = net.box_predictions(features, rois, image_index)
        rescale(net.box_head.class_logits, logits, 2.0)
        rescale(net.box_head.deltas, box_deltas, 0.3)
    net.clear_caches()
    return model


#: Matterport's network flavour (what .h5 models run in): ResNet-50 at least, its stages.
MATTERPORT_FLAVOUR = {**MATTERPORT_STYLE, "BACKBONE": "resnet50", "NETWORK_FLAVOUR": "matterport"}


def save_checkpoint(path: Path, background_shift: float = 0.0, **overrides) -> Path:
    """A :func:`spread_scores` tiny model's checkpoint; ``background_shift`` is added to the
    background logit's bias (Matterport's detection layer keeps each ROI's top class only, so
    a lower background gives it detections to compare)."""
    model = spread_scores(tiny_model(**overrides))
    with torch.no_grad():
        model.net.box_head.class_logits.bias[0] += background_shift
    payload = checkpoint_payload(
        model.net.state_dict(), model.config, 1, class_names=["BG", *CLASS_NAMES]
    )
    atomic_torch_save(payload, path)
    return path


def load_checkpoint(path: Path) -> MaskRCNN:
    """The model ``mrcnn detect --weights path`` runs."""
    from argparse import Namespace

    from mrcnn.commands.common import build_model

    return build_model(Namespace(weights=str(path), config=None, set=[], device="cpu"))


def pair_detections(ours: dict, theirs: dict) -> tuple[int, list[float], list[float]]:
    """Pair each of ``ours`` with an unpaired detection of ``theirs`` of the same class and the
    nearest box (:func:`mrcnn.testing.pair_by_class`); returns (pairs, box differences in px,
    mask IoUs)."""
    pairs = pair_by_class(ours, theirs)
    return len(pairs), [p[2] for p in pairs], [p[3] for p in pairs]


def assert_same_detections(reference: list[dict], exported: list[dict]) -> None:
    """The issue's criteria: >= 99% paired with the same class, boxes within 0.5 px, mask IoU
    >= 0.98 (over all images together)."""
    total = sum(len(r["scores"]) for r in reference)
    assert total >= 20, "too few detections for a meaningful comparison"
    non_empty = sum(int(r["masks"].any(axis=(0, 1)).sum()) for r in reference)
    assert non_empty >= 0.9 * total, "empty masks would make the IoU check vacuous"
    paired, box_diffs, ious = 0, [], []
    for ref, out in zip(reference, exported, strict=True):
        assert len(out["scores"]) == len(ref["scores"])
        assert out["masks"].shape == ref["masks"].shape
        count, diffs, mask_ious = pair_detections(ref, out)
        paired, box_diffs, ious = paired + count, box_diffs + diffs, ious + mask_ious
    close = [d <= 0.5 and iou >= 0.98 for d, iou in zip(box_diffs, ious, strict=True)]
    assert sum(close) >= 0.99 * total, (
        f"{sum(close)} of {total} paired closely; largest box difference "
        f"{max(box_diffs):.3f} px, lowest mask IoU {min(ious):.4f}"
    )

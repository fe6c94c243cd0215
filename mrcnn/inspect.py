"""Helpers for the inspection notebooks (``samples/notebooks``): data, anchors and each stage
of the network on one image.

The notebooks stay thin: they pick a dataset and a model here, then show what these functions
return with :mod:`mrcnn.visualize`. Every network stage is run through the stage methods of
:class:`mrcnn.modeling.network.MaskRCNNNet`, exactly as inference runs them.

Coordinates: network-side boxes are (x1, y1, x2, y2) in molded-input pixels (the resized and
padded image the network sees); ``mrcnn.visualize.draw_boxes`` wants (y1, x1, y2, x2), so
:func:`to_yxyx` converts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mrcnn.config import Config
from mrcnn.datasets import from_spec
from mrcnn.datasets.stats import (
    anchor_coverage,
    collect_instances,
    image_plan,
    molded_preview,
    reference_anchors,
)
from mrcnn.demo import DEMO_IMAGE_SIZE, ShapesDemoConfig
from mrcnn.drawing.dataset_figures import display_anchor_coverage
from mrcnn.drawing.render import draw_instances
from mrcnn.maskrcnn import MaskRCNN
from mrcnn.modeling.anchors import anchors_for_config
from mrcnn.modeling.targets import mini_masks
from mrcnn.structures.boxes import xyxy_to_yxyx
from mrcnn.structures.image import mold_batch, paste_masks
from mrcnn.structures.transfer import float_array
from mrcnn.training.augment import apply_augmentation, boxes_from_masks, to_sample


# ------------------------------------------------------------------------------------------------
# Choosing data and a model
# ------------------------------------------------------------------------------------------------
class InspectBalloonConfig(Config):
    """A small config for looking at a VIA dataset such as balloon (one class by default)."""

    NAME = "inspect"
    NUM_CLASSES = 2
    BACKBONE = "resnet50"
    IMAGES_PER_GPU = 1
    IMAGE_MIN_DIM = 512
    IMAGE_MAX_DIM = 512
    DETECTION_MIN_CONFIDENCE = 0.0
    DEVICE = "cpu"


def notebook_dataset(path: str | Path | None = None, subset: str = "val", count: int = 20):
    """The dataset and config a notebook inspects.

    Args:
        path: None for the generated shapes (no download), else a VIA folder such as
            ``shared/data/balloon`` (with ``train/`` and ``val/``) or any dataset spec
            (``via:...``, ``coco:...``, ``masks:...``).
        subset: "train" or "val".
        count: shapes only: number of generated images.
    Returns:
        (dataset, config): a prepared :class:`mrcnn.dataset.Dataset` and a
        :class:`~mrcnn.config.Config` with its NUM_CLASSES, on the CPU.
    """
    if path is None:
        size = DEMO_IMAGE_SIZE
        dataset = from_spec(f"shapes:{count * (10 if subset == 'val' else 1)}:{size}", subset)
        return dataset, ShapesDemoConfig.from_overrides({"DETECTION_MIN_CONFIDENCE": 0.0})
    spec = str(path)
    if ":" not in spec.split("/")[0]:
        if not Path(spec).exists():
            raise FileNotFoundError(
                f"dataset {spec} not found: give the folder holding train/ and val/ "
                "(VIA layout) or a dataset spec such as via:PATH, or None for shapes"
            )
        spec = f"via:{spec}"
    dataset = from_spec(spec, subset)
    config = InspectBalloonConfig.from_overrides({"NUM_CLASSES": dataset.num_classes})
    return dataset, config


def notebook_model(
    config: Config,
    weights: str | Path | None = None,
    train_dataset=None,
    train_seconds: float = 0.0,
    model_dir: str | Path = "logs",
    seed: int = 0,
):
    """A model to inspect: random (seeded), loaded from ``weights``, and/or trained briefly.

    Args:
        weights: None (random initialisation), a checkpoint file, "last", "coco" or
            "imagenet" (the named ones need BACKBONE resnet50 and a download).
        train_dataset: with ``train_seconds > 0``, trained on for about that long.
    Returns:
        a :class:`mrcnn.model.MaskRCNN` whose network is in eval mode.
    """
    torch.manual_seed(seed)
    if weights is None:
        model = MaskRCNN("training", config, model_dir=model_dir)
    else:
        model = MaskRCNN.from_checkpoint(
            str(weights),
            config=config,
            mode="training",
            model_dir=model_dir,
            exclude=["class-specific"] if weights == "coco" else (),
        )
    if train_seconds > 0 and train_dataset is not None:
        model.train(
            train_dataset,
            None,
            float(config.LEARNING_RATE),
            epochs=1000,
            layers="all",
            max_seconds=train_seconds,
        )
    model.net.eval()
    return model


# ------------------------------------------------------------------------------------------------
# Data
# ------------------------------------------------------------------------------------------------
def to_yxyx(boxes) -> np.ndarray:
    """float [N, 4] (y1, x1, y2, x2) numpy boxes from (x1, y1, x2, y2) tensors or arrays."""
    if isinstance(boxes, torch.Tensor):
        boxes = boxes.detach().float().cpu().numpy()
    return xyxy_to_yxyx(np.asarray(boxes, dtype=np.float32).reshape(-1, 4))


def anchor_figure(dataset, image_id: int, config, records=None, coverage=None, **figure_options):
    """Anchors over one image as the network sees it: its boxes, each box's best anchor and
    the anchors of every scale and ratio at the image centre.

    ``records`` / ``coverage`` (from :func:`mrcnn.datasets.collect_instances` and
    :func:`mrcnn.datasets.anchor_coverage`) are computed for this image when not given.
    """
    if records is None or coverage is None:
        records = collect_instances(dataset, [image_id])
        coverage = anchor_coverage(records, config)
    position = int(np.flatnonzero(records.analysed_ids == image_id)[0])
    mine = coverage.image_index == position
    image = dataset.load_image(image_id)
    plan = image_plan(image.shape[0], image.shape[1], config)
    preview = molded_preview(image, plan)
    height, width = preview.shape[:2]
    reference, _ = reference_anchors(config, (width / 2, height / 2))
    return display_anchor_coverage(
        preview,
        coverage.gt_boxes[mine],
        coverage.best_anchors[mine],
        coverage.best_iou[mine],
        reference,
        title=f"image {image_id}: {int(mine.sum())} boxes, best anchors, all anchor shapes",
        **figure_options,
    )


def anchors_per_level(config, image_shape: tuple[int, int]) -> list[dict]:
    """One row per pyramid level: level, stride, scale, feature-map cells and anchor count for
    a padded input of ``image_shape`` (H, W)."""
    _, counts = anchors_for_config(config, image_shape)
    ratios = len(config.RPN_ANCHOR_RATIOS)
    return [
        {
            "level": f"P{level + 2}",
            "stride": int(stride),
            "scale": float(scale),
            "cells": int(count // ratios),
            "anchors": int(count),
        }
        for level, (stride, scale, count) in enumerate(
            zip(config.BACKBONE_STRIDES, config.RPN_ANCHOR_SCALES, counts, strict=False)
        )
    ]


@dataclass
class MiniMaskExample:
    """One image's masks stored as mini masks and pasted back.

    Attributes:
        masks: bool [H, W, N] the original masks; boxes: float [N, 4] (x1, y1, x2, y2).
        mini: bool [N, h, w] MINI_MASK_SHAPE crops; restored: bool [H, W, N] pasted back.
        iou: float [N] IoU of each restored mask with its original.
    """

    masks: np.ndarray
    boxes: np.ndarray
    mini: np.ndarray
    restored: np.ndarray
    iou: np.ndarray


def mini_mask_example(dataset, image_id: int, config) -> MiniMaskExample:
    """Shrink an image's masks to MINI_MASK_SHAPE as training stores them, then paste them
    back at full size (:func:`mrcnn.structures.image.paste_masks`) to show what the shrinking
    loses."""
    masks, _ = dataset.load_mask(image_id)
    full = torch.from_numpy(np.ascontiguousarray(masks.transpose(2, 0, 1))).float()
    boxes = boxes_from_masks(full)
    mini = mini_masks(full, boxes, tuple(config.MINI_MASK_SHAPE))
    restored = paste_masks(mini, boxes, masks.shape[:2]).numpy()
    inter = (restored & masks).sum(axis=(0, 1))
    union = np.maximum((restored | masks).sum(axis=(0, 1)), 1)
    return MiniMaskExample(masks, boxes.numpy(), mini.bool().numpy(), restored, inter / union)


def augmented_examples(dataset, image_id: int, augmentation, count: int = 4, seed: int = 0):
    """``count`` augmented versions of one image, drawn with their masks and boxes.

    Returns:
        a list of [H', W', 3] uint8 pictures (first: the original).
    """
    image = dataset.load_image(image_id)
    masks, class_ids = dataset.load_mask(image_id)
    torch.manual_seed(seed)
    pictures = []
    for k in range(count + 1):
        sample = to_sample(image, masks, class_ids)
        if k:
            sample = apply_augmentation(augmentation, sample)
        picture = sample["image"].permute(1, 2, 0).numpy().copy()
        out_masks = sample["masks"].numpy().astype(bool).transpose(1, 2, 0)
        boxes = dataset.extract_bboxes(out_masks)
        labels = sample["labels"].numpy()
        pictures.append(draw_instances(picture, boxes, out_masks, labels, dataset.class_names))
    return pictures


# ------------------------------------------------------------------------------------------------
# The network, stage by stage
# ------------------------------------------------------------------------------------------------
@dataclass
class StageOutputs:
    """Every stage of inference on one image (network-input frame, (x1, y1, x2, y2) boxes).

    Attributes:
        image: [H, W, 3] uint8 original; molded: [H_in, W_in, 3] uint8 resized and padded view.
        window: [4] (x1, y1, x2, y2) of the image inside the padded input.
        feature_shapes: (C, H_l, W_l) of P2..P6.
        anchors: [A, 4]; level_counts: anchors per level.
        rpn_scores: [A] objectness probabilities; rpn_deltas: [A, 4] (dx, dy, dw, dh).
        pre_nms_anchors, pre_nms_refined, pre_nms_boxes, pre_nms_scores: [P, 4], [P, 4],
            [P, 4], [P] the proposal layer's PRE_NMS_LIMIT best anchors (per level where it
            ranks per level), refined by their deltas, then clipped, and their scores, before
            non-maximum suppression (:meth:`MaskRCNNNet.proposal_steps`); best score first.
        proposals, proposal_scores: [K, 4], [K] after NMS (POST_NMS_ROIS_INFERENCE).
        class_probs: [K, C] box-head probabilities; roi_class_ids: [K] the best class;
        refined: [K, 4] each proposal refined by its best class's deltas, clipped to the window.
        detections: dict of "boxes" [D, 4], "class_ids" [D], "scores" [D].
        mask_logits: [D, C, M, M]; mask_probs: [D, M, M] of each detection's class.
        result: ``model.detect``'s Matterport-style dict for the same image.
    """

    image: np.ndarray
    molded: np.ndarray
    window: np.ndarray
    feature_shapes: list[tuple[int, int, int]]
    anchors: np.ndarray
    level_counts: tuple[int, ...]
    rpn_scores: np.ndarray
    rpn_deltas: np.ndarray
    pre_nms_anchors: np.ndarray
    pre_nms_refined: np.ndarray
    pre_nms_boxes: np.ndarray
    pre_nms_scores: np.ndarray
    proposals: np.ndarray
    proposal_scores: np.ndarray
    class_probs: np.ndarray
    roi_class_ids: np.ndarray
    refined: np.ndarray
    detections: dict[str, np.ndarray]
    mask_logits: np.ndarray
    mask_probs: np.ndarray
    result: dict


def run_stages(model, image: np.ndarray) -> StageOutputs:
    """Run each stage of ``model.net`` on one [H, W, 3] uint8 RGB image (see
    :class:`StageOutputs`); the final ``result`` is ``model.detect([image])[0]``."""
    net, config = model.net, model.config
    net.eval()
    with torch.inference_mode(), model.inference_context():
        batch, metas = mold_batch([image], config, model.dtype, model.device)
        windows = torch.tensor([metas[0].window], dtype=model.dtype, device=model.device)
        shape = (batch.shape[-2], batch.shape[-1])
        features = net.features(batch)
        objectness, rpn_deltas = net.rpn_outputs(features)
        anchors, counts = net.anchors(shape, batch)
        steps = net.proposal_steps(objectness, rpn_deltas, shape, windows)
        rois, roi_scores, roi_image = steps.proposals()
        # Best first over all levels (a per-level layer keeps each level's rows together).
        by_score = torch.sort(steps.scores, descending=True, stable=True).indices
        class_logits, deltas = net.box_predictions(features, rois, roi_image)
        probs = torch.softmax(class_logits, dim=1)
        best = probs.argmax(dim=1)
        picked = deltas[torch.arange(len(rois), device=rois.device), best]
        refined = net.refine_rois(rois, picked, roi_image, windows, shape)
        found = net.detections(class_logits, deltas, rois, roi_image, windows, shape)
        mask_logits = net.mask_logits(features, found["boxes"], found["image_index"])
        mask_probs = net.mask_probabilities(
            features, found["boxes"], found["image_index"], found["class_ids"]
        )
    plan = image_plan(image.shape[0], image.shape[1], config)
    return StageOutputs(
        image=image,
        molded=_pad_to(molded_preview(image, plan), shape),
        window=np.asarray(metas[0].window, dtype=np.float32),
        feature_shapes=[tuple(f.shape[1:]) for f in features],
        anchors=float_array(anchors),
        level_counts=tuple(int(c) for c in counts),
        rpn_scores=float_array(torch.sigmoid(objectness[0])),
        rpn_deltas=float_array(rpn_deltas[0]),
        pre_nms_anchors=float_array(steps.anchors[by_score]),
        pre_nms_refined=float_array(steps.refined[by_score]),
        pre_nms_boxes=float_array(steps.clipped[by_score]),
        pre_nms_scores=float_array(steps.scores[by_score]),
        proposals=float_array(rois),
        proposal_scores=float_array(roi_scores),
        class_probs=float_array(probs),
        roi_class_ids=best.cpu().numpy(),
        refined=float_array(refined),
        detections={k: float_array(found[k]) for k in ("boxes", "class_ids", "scores")},
        mask_logits=float_array(mask_logits),
        mask_probs=float_array(mask_probs),
        result=model.detect([image])[0],
    )


def _pad_to(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Zero-pad [h, w, 3] at the bottom and right to ``shape`` (the batch's padded size)."""
    out = np.zeros((*shape, 3), dtype=image.dtype)
    out[: image.shape[0], : image.shape[1]] = image[: shape[0], : shape[1]]
    return out


def rpn_score_maps(stages: StageOutputs, anchor_stride: int = 1) -> list[np.ndarray]:
    """Per pyramid level, the best objectness of the anchors of each feature-map cell:
    float [ceil(H_l / stride), ceil(W_l / stride)] maps, P2 first."""
    maps, start = [], 0
    for (_, height, width), count in zip(stages.feature_shapes, stages.level_counts, strict=False):
        rows, cols = -(-height // anchor_stride), -(-width // anchor_stride)
        level = stages.rpn_scores[start : start + count].reshape(rows, cols, -1)
        maps.append(level.max(axis=2))
        start += count
    return maps


def top_anchors(stages: StageOutputs, count: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` best-scoring anchors and the boxes their RPN deltas make of them (not
    clipped), as the proposal layer computed them: (anchors [count, 4], refined [count, 4]),
    (x1, y1, x2, y2)."""
    return stages.pre_nms_anchors[:count], stages.pre_nms_refined[:count]


def roi_refinement(stages: StageOutputs, class_names, limit: int = 20):
    """The ROIs whose most likely class is an object, for a refinement figure.

    Returns:
        (proposals, refined, captions): [K, 4] and [K, 4] (x1, y1, x2, y2) for the first
        ``limit`` such ROIs (best proposals first) and "class probability" captions.
    """
    rows = np.flatnonzero(stages.roi_class_ids > 0)[:limit]
    best = stages.roi_class_ids
    captions = [f"{class_names[best[i]]} {stages.class_probs[i, best[i]]:.2f}" for i in rows]
    return stages.proposals[rows], stages.refined[rows], captions


def mask_head_panels(stages: StageOutputs, class_names, limit: int = 6):
    """(soft masks, titles) of the first ``limit`` detections: [M, M] probabilities of the
    detected class, titled "class score"."""
    count = min(limit, len(stages.mask_probs))
    ids, scores = stages.detections["class_ids"], stages.detections["scores"]
    titles = [f"{class_names[int(ids[i])]} {scores[i]:.2f}" for i in range(count)]
    return list(stages.mask_probs[:count]), titles


# ------------------------------------------------------------------------------------------------
# Weights
# ------------------------------------------------------------------------------------------------
def weight_statistics(net: torch.nn.Module) -> list[dict]:
    """One row per parameter tensor: name, shape, trainable, min, max, mean, std.

    A std near 0 in a trained layer, or NaN anywhere, is worth a look.
    """
    rows = []
    for name, parameter in net.named_parameters():
        values = parameter.detach().float()
        rows.append(
            {
                "name": name,
                "shape": tuple(values.shape),
                "trainable": bool(parameter.requires_grad),
                "min": float(values.min()),
                "max": float(values.max()),
                "mean": float(values.mean()),
                "std": float(values.std()) if values.numel() > 1 else 0.0,
            }
        )
    return rows


def format_table(rows: list[dict], limit: int | None = None) -> str:
    """A plain-text table of dict rows (numbers to 4 significant digits)."""
    if not rows:
        return "(empty)"
    rows = rows[:limit] if limit else rows
    keys = list(rows[0])
    cells = [[_cell(row[k]) for k in keys] for row in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    lines = ["  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    return "\n".join(lines)


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)

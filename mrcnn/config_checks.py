"""Type and range rules for every :class:`mrcnn.config.Config` attribute.

:func:`attribute_errors` checks each attribute on its own (a whole number, a probability, a list
of five scales, a known device, ...) so that a bad ``--set KEY=VALUE`` fails when the config is
built, with one line naming the key, the value and what is allowed, instead of a traceback or a
NaN at step 1. The relations between attributes are checked by ``Config._validate``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from mrcnn.conventions import CONVENTIONS

#: A rule returns None for a good value, else what the value must be ("a whole number >= 1").
Rule = Callable[[Any], "str | None"]

BACKBONES = ("resnet50", "resnet101", "resnet18", "resnet34")

RESIZE_MODES = ("square", "pad64", "crop", "none", "shortest_side", "square_pad64")

_LOSS_NAMES = (
    "rpn_class_loss",
    "rpn_bbox_loss",
    "mrcnn_class_loss",
    "mrcnn_bbox_loss",
    "mrcnn_mask_loss",
)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def whole(minimum: int) -> Rule:
    """A whole number (int, not bool or float) >= ``minimum``."""

    def rule(value: Any) -> str | None:
        ok = isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))
        return None if ok and value >= minimum else f"must be a whole number >= {minimum}"

    return rule


def real(low: float, high: float = math.inf, low_open: bool = False, high_open: bool = False):
    """A finite number in [low, high], ends excluded where ``*_open``."""
    left, right = "(" if low_open else "[", ")" if high_open else "]"
    if math.isinf(high):
        span = f"a finite number {'>' if low_open else '>='} {low:g}"
    else:
        span = f"a number in {left}{low:g}, {high:g}{right}"

    def rule(value: Any) -> str | None:
        if not _is_real(value) or not math.isfinite(float(value)):
            return f"must be {span}"
        v = float(value)
        inside = (v > low if low_open else v >= low) and (v < high if high_open else v <= high)
        return None if inside else f"must be {span}"

    return rule


def flag(value: Any) -> str | None:
    return None if isinstance(value, (bool, np.bool_)) else "must be True or False"


def optional_flag(value: Any) -> str | None:
    return None if value is None else flag(value)


def one_of(*options: Any, lower: bool = False) -> Rule:
    def rule(value: Any) -> str | None:
        key = value.lower() if lower and isinstance(value, str) else value
        return None if key in options else f"use one of {', '.join(repr(o) for o in options)}"

    return rule


def name(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and value and "/" not in value):
        return None
    return "must be a non-empty name without '/' (it names run folders)"


def reals(
    count: int | None = None, positive: bool = True, integer: bool = False, note: str = ""
) -> Rule:
    """A list, tuple or array of ``count`` (any number >= 1 when None) finite numbers."""
    kind = "whole numbers" if integer else "numbers"
    size = f"{count} " if count else ""
    sign = "positive " if positive else ""
    what = f"must be a list of {size}{sign}{kind}{note}"

    def rule(value: Any) -> str | None:
        if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__len__"):
            return what
        try:
            items = np.asarray(value, dtype=object)
        except (ValueError, TypeError):
            return what
        if items.ndim != 1 or not len(items) or (count and len(items) != count):
            return what
        for item in items:
            if not _is_real(item) or not math.isfinite(float(item)):
                return what
            if (positive and item <= 0) or (integer and float(item) != int(item)):
                return what
        return None

    return rule


def optional(rule: Rule) -> Rule:
    def check(value: Any) -> str | None:
        message = None if value is None else rule(value)
        return message and f"{message}, or None"

    return check


def loss_weights(value: Any) -> str | None:
    what = f"must map {', '.join(_LOSS_NAMES)} to numbers >= 0"
    if not isinstance(value, Mapping) or set(value) - set(_LOSS_NAMES):
        return what
    bad = [k for k, v in value.items() if real(0)(v)]
    return what if bad else None


def device(value: Any) -> str | None:
    if isinstance(value, str) and value.strip().lower() in ("gpu", "gpu:0", "nvidia"):
        return "use 'cuda' (or 'cuda:1', ...) for an NVIDIA GPU, 'cpu', or 'auto'"
    if value == "auto":
        return None
    import torch

    try:
        torch.device(value)
    except (RuntimeError, TypeError, ValueError):
        return "use 'auto', 'cpu', 'cuda' or 'cuda:N'"
    return None


def amp(value: Any) -> str | None:
    if value in (None, False):
        return None
    return one_of("bf16", "bfloat16", "fp16", lower=True)(value) and (
        "use None (float32), 'bf16' (CPU or GPU) or 'fp16' (GPU only)"
    )


def keep_conventions(value: Any) -> str | None:
    what = f"give a list of convention keys ({', '.join(CONVENTIONS)})"
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        return what
    return what if any(not isinstance(k, str) or k not in CONVENTIONS for k in value) else None


_POSITIVE = whole(1)
_COUNT = whole(0)
_PROBABILITY = real(0, 1)
_IOU = real(0, 1, low_open=True)

#: The rule of every base Config attribute (computed ones excepted).
RULES: dict[str, Rule] = {
    "NAME": name,
    "GPU_COUNT": _POSITIVE,
    "IMAGES_PER_GPU": _POSITIVE,
    "STEPS_PER_EPOCH": _POSITIVE,
    "VALIDATION_STEPS": _COUNT,
    "VALIDATION_BOOTSTRAP": _COUNT,
    "BACKBONE": one_of(*BACKBONES),
    "BACKBONE_STRIDES": reals(5, integer=True, note=", one per pyramid level P2-P6"),
    "FPN_CLASSIF_FC_LAYERS_SIZE": _POSITIVE,
    "TOP_DOWN_PYRAMID_SIZE": _POSITIVE,
    "MASK_HEAD_CHANNELS": _POSITIVE,
    "NUM_CLASSES": _POSITIVE,
    "RPN_ANCHOR_SCALES": reals(5, note=", one anchor side per pyramid level P2-P6"),
    "RPN_ANCHOR_RATIOS": reals(),
    "RPN_ANCHOR_STRIDE": _POSITIVE,
    "RPN_NMS_THRESHOLD": _IOU,
    "RPN_TRAIN_ANCHORS_PER_IMAGE": _POSITIVE,
    "PRE_NMS_LIMIT": _POSITIVE,
    "POST_NMS_ROIS_TRAINING": _POSITIVE,
    "POST_NMS_ROIS_INFERENCE": _POSITIVE,
    "RPN_BBOX_STD_DEV": reals(4),
    "USE_MINI_MASK": flag,
    "MINI_MASK_SHAPE": reals(2, integer=True),
    "IMAGE_RESIZE_MODE": one_of(*RESIZE_MODES),
    "IMAGE_MIN_DIM": _COUNT,
    "IMAGE_MAX_DIM": _POSITIVE,
    "IMAGE_MIN_SCALE": real(0),
    "IMAGE_CHANNEL_COUNT": _POSITIVE,
    "MEAN_PIXEL": reals(positive=False),
    "STD_PIXEL": optional(reals()),
    "TRAIN_ROIS_PER_IMAGE": _POSITIVE,
    "ROI_POSITIVE_RATIO": real(0, 1, low_open=True),
    "POOL_SIZE": _POSITIVE,
    "MASK_POOL_SIZE": _POSITIVE,
    "MASK_SHAPE": reals(2, integer=True),
    "MAX_GT_INSTANCES": _POSITIVE,
    "BBOX_STD_DEV": reals(4),
    "DETECTION_MAX_INSTANCES": _POSITIVE,
    "DETECTION_MIN_CONFIDENCE": _PROBABILITY,
    "DETECTION_NMS_THRESHOLD": _IOU,
    "LEARNING_RATE": real(0, low_open=True),
    "LEARNING_MOMENTUM": real(0, 1, high_open=True),
    "WEIGHT_DECAY": real(0),
    "LOSS_WEIGHTS": loss_weights,
    "USE_RPN_ROIS": flag,
    "TRAIN_BN": optional_flag,
    "GRADIENT_CLIP_NORM": real(0, low_open=True),
    "WARMUP_STEPS": _COUNT,
    "OPTIMIZER": one_of("sgd", "adamw", lower=True),
    "WORKERS": _COUNT,
    "AMP": amp,
    "NETWORK_FLAVOUR": one_of("torchvision", "matterport"),
    "RPN_ANCHOR_ROUND": flag,
    "RPN_PROPOSALS_PER_LEVEL": flag,
    "ROI_LEVEL_ROUNDING": one_of("round", "floor"),
    "ROI_ALIGN_SAMPLING_RATIO": _POSITIVE,
    "ROI_ALIGN_ALIGNED": flag,
    "DETECTION_CLASS_MODE": one_of("top_class", "all_classes"),
    "DEVICE": device,
    "CPU_THREADS": _COUNT,
    "CHANNELS_LAST": flag,
    "CPU_KEEP_FREED_MEMORY": flag,
    "INFERENCE_PRECISION": one_of("fp32", "bf16", "fp16"),
    "KEEP_CONVENTIONS": keep_conventions,
}


#: What the trainer reads besides the network's settings; re-checked when training starts.
TRAINING_KEYS = ("OPTIMIZER", "AMP")


def amp_device_error(value: Any, device_type: str) -> str | None:
    """Why mixed precision ``value`` (a valid AMP) cannot train on ``device_type``, or None."""
    if str(value).lower() == "fp16" and device_type == "cpu":
        return "AMP='fp16' needs a GPU; on the CPU use AMP='bf16'"
    return None


def training_errors(config: Any) -> list[str]:
    """:func:`attribute_errors` of the TRAINING_KEYS only (a config may be changed after it
    is built, as Matterport's scripts do)."""
    return attribute_errors(config, TRAINING_KEYS)


def attribute_errors(config: Any, keys: Iterable[str] | None = None) -> list[str]:
    """One "KEY=value: what it must be" line per attribute of ``config`` (of ``keys``, default
    every one with a rule) breaking its rule."""
    errors = []
    for key in RULES if keys is None else keys:
        rule = RULES[key]
        if not hasattr(config, key):
            continue
        value = getattr(config, key)
        message = rule(value)
        if message:
            errors.append(f"{key}={_shown(value)}: {message}")
    return errors


def _shown(value: Any) -> str:
    text = repr(value.tolist() if isinstance(value, np.ndarray) else value)
    text = " ".join(text.split())
    return text if len(text) <= 60 else text[:57] + "..."

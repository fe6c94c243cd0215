"""Configuration: Matterport's ``Config`` attributes and meanings, plus presets.

Users subclass :class:`Config` and override class attributes::

    class BalloonConfig(Config):
        NAME = "balloon"
        NUM_CLASSES = 1 + 1
        STEPS_PER_EPOCH = 100

The attribute names and meanings follow Matterport's Mask_RCNN so that existing configs carry
over. Attributes this project adds (conventions, device, normalisation std) use the same
UPPERCASE style and are documented next to their defaults.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from mrcnn.config_checks import BACKBONES, RESIZE_MODES, attribute_errors
from mrcnn.conventions import TORCHVISION

#: Attributes computed from others; they cannot be overridden.
COMPUTED_ATTRIBUTES = ("BATCH_SIZE", "IMAGE_SHAPE", "IMAGE_META_SIZE")

__all__ = ["BACKBONES", "RESIZE_MODES", "Config", "TorchvisionCocoConfig", "load_config"]

#: Settings that decide the network's layers and their shapes: a checkpoint only resumes under
#: a config that agrees with it on all of them.
ARCHITECTURE_KEYS = (
    "BACKBONE",
    "NUM_CLASSES",
    "BACKBONE_STRIDES",
    "TOP_DOWN_PYRAMID_SIZE",
    "FPN_CLASSIF_FC_LAYERS_SIZE",
    "MASK_HEAD_CHANNELS",
    "RPN_ANCHOR_RATIOS",
    "POOL_SIZE",
    "MASK_POOL_SIZE",
    "MASK_SHAPE",
    "IMAGE_CHANNEL_COUNT",
)


class Config:
    """Base configuration. Subclass it and override what differs for your data.

    Every attribute is an UPPERCASE class attribute; :meth:`display` prints them all.
    """

    #: Values defined on this class are library defaults, not the user's choices (so loading
    #: weights may replace its conventions; see :func:`mrcnn.conventions.set_by_user`).
    _library_defaults = True

    # --- Identity and batching -------------------------------------------------------------
    #: Name of the configuration; used to name run folders and checkpoints.
    NAME: str | None = None
    #: Number of devices to train on (kept for Matterport compatibility; distributed training
    #: uses one process per device instead).
    GPU_COUNT = 1
    #: Images per device in one step (training) or one forward pass (``detect``).
    IMAGES_PER_GPU = 2
    #: Training steps per epoch (need not match the dataset size).
    STEPS_PER_EPOCH = 1000
    #: Validation steps at the end of every epoch.
    VALIDATION_STEPS = 50
    #: Bootstrap resamples of the validation batches for a 95% interval of the epoch's
    #: val_loss on its printed line and in metrics.jsonl (0: none; 1000 is plenty).
    VALIDATION_BOOTSTRAP = 0

    # --- Backbone and pyramid ----------------------------------------------------------------
    #: "resnet50" or "resnet101" (Mask R-CNN's), or the lighter "resnet18" / "resnet34" for
    #: small data on a CPU.
    BACKBONE = "resnet101"
    #: Strides of the pyramid levels P2-P6 relative to the input image.
    BACKBONE_STRIDES = [4, 8, 16, 32, 64]
    #: Width of the two fully connected layers of the box head.
    FPN_CLASSIF_FC_LAYERS_SIZE = 1024
    #: Channels of the feature pyramid.
    TOP_DOWN_PYRAMID_SIZE = 256
    #: Channels of the mask head's convolutions (256 in Matterport and torchvision; smaller
    #: values make small models, e.g. for CPU experiments, much cheaper to train).
    MASK_HEAD_CHANNELS = 256
    #: Number of classes including the background (class 0).
    NUM_CLASSES = 1

    # --- Region proposal network -------------------------------------------------------------
    #: Anchor side length (pixels) for each pyramid level, P2..P6.
    RPN_ANCHOR_SCALES = (32, 64, 128, 256, 512)
    #: Anchor aspect ratios as width / height (Matterport's meaning).
    RPN_ANCHOR_RATIOS = [0.5, 1, 2]
    #: Anchors are placed on every RPN_ANCHOR_STRIDE-th feature map cell.
    RPN_ANCHOR_STRIDE = 1
    #: IoU threshold of the non-maximum suppression of proposals.
    RPN_NMS_THRESHOLD = 0.7
    #: Anchors sampled per image for the RPN losses.
    RPN_TRAIN_ANCHORS_PER_IMAGE = 256
    #: Proposals kept by score before non-maximum suppression.
    PRE_NMS_LIMIT = 6000
    #: Proposals kept after non-maximum suppression, in training and in inference.
    POST_NMS_ROIS_TRAINING = 2000
    POST_NMS_ROIS_INFERENCE = 1000
    #: Box-coding standard deviations of the RPN deltas (dx, dy, dw, dh).
    RPN_BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])

    # --- Masks and input images --------------------------------------------------------------
    #: Store ground-truth masks cropped to their box and resized to MINI_MASK_SHAPE.
    USE_MINI_MASK = True
    MINI_MASK_SHAPE = (56, 56)
    #: "square", "pad64", "crop" (training only), "none" (Matterport's modes),
    #: "shortest_side" (torchvision's: shorter side to IMAGE_MIN_DIM, longer side at most
    #: IMAGE_MAX_DIM, padded to a multiple of 32), or "square_pad64" (scaled as "square",
    #: padded only to multiples of 64: what a video run uses in place of "square").
    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = 800
    IMAGE_MAX_DIM = 1024
    #: Minimum scaling ratio (0 = none); used to force up-scaling of small images.
    IMAGE_MIN_SCALE = 0
    #: Colour channels of the input (3 = RGB).
    IMAGE_CHANNEL_COUNT = 3
    #: Per-channel mean subtracted from RGB pixels (0-255 units).
    MEAN_PIXEL = np.array([123.7, 116.8, 103.9])
    #: Optional per-channel standard deviation the centred pixels are divided by (0-255
    #: units); None keeps Matterport's behaviour (no division).
    STD_PIXEL: Any = None

    # --- Heads ---------------------------------------------------------------------------------
    #: ROIs per image fed to the heads in training, and the share of positives among them.
    TRAIN_ROIS_PER_IMAGE = 200
    ROI_POSITIVE_RATIO = 0.33
    #: ROIAlign output size for the box head and for the mask head.
    POOL_SIZE = 7
    MASK_POOL_SIZE = 14
    #: Size of the predicted soft masks.
    MASK_SHAPE = [28, 28]
    #: Maximum ground-truth instances used from one image.
    MAX_GT_INSTANCES = 100
    #: Box-coding standard deviations of the box head deltas (dx, dy, dw, dh).
    BBOX_STD_DEV = np.array([0.1, 0.1, 0.2, 0.2])

    # --- Detection -----------------------------------------------------------------------------
    DETECTION_MAX_INSTANCES = 100
    #: Detections with a lower class probability are dropped.
    DETECTION_MIN_CONFIDENCE = 0.7
    #: IoU threshold of the per-class non-maximum suppression of detections.
    DETECTION_NMS_THRESHOLD = 0.3

    # --- Training ------------------------------------------------------------------------------
    LEARNING_RATE = 0.001
    LEARNING_MOMENTUM = 0.9
    WEIGHT_DECAY = 0.0001
    LOSS_WEIGHTS = {
        "rpn_class_loss": 1.0,
        "rpn_bbox_loss": 1.0,
        "mrcnn_class_loss": 1.0,
        "mrcnn_bbox_loss": 1.0,
        "mrcnn_mask_loss": 1.0,
    }
    #: Train on proposals from the RPN (True) rather than on given ROIs.
    USE_RPN_ROIS = True
    #: Train BatchNorm layers (False freezes them, the right choice for small batches).
    TRAIN_BN = False
    #: Gradient norm clipping threshold.
    GRADIENT_CLIP_NORM = 5.0
    #: Steps of linear learning-rate warm-up at the start of each ``train`` call (from
    #: LEARNING_RATE / WARMUP_STEPS up to LEARNING_RATE); skipped when resuming an optimiser.
    WARMUP_STEPS = 100
    #: "sgd" (Matterport's: momentum LEARNING_MOMENTUM) or "adamw" (LEARNING_MOMENTUM is its
    #: beta1); AdamW with a learning rate near 1e-3 learns much faster from random weights.
    OPTIMIZER = "sgd"
    #: Data-loading worker processes per training process (0 loads in the training process).
    WORKERS = 2
    #: Mixed precision in training: None (float32), "bf16" (CPU or GPU) or "fp16" (GPU only).
    AMP: Any = None

    # --- Conventions (this project's additions) ---------------------------------------------
    # Matterport's network and torchvision's differ in a few details; each is an attribute so
    # that TorchvisionCocoConfig can reproduce torchvision's model exactly.
    #: Which network the stages build: "torchvision" (torchvision's ResNet and heads, the
    #: layout of torchvision's and this project's weights) or "matterport" (the function of
    #: Matterport's Keras model: ResNet with the stride in the first 1x1 conv and BatchNorm
    #: eps 1e-3, a 512-channel RPN, proposals, ROIAlign (crop_and_resize) and detection in
    #: normalised coordinates, and Matterport's image molding and mask unmolding). Loading a
    #: Matterport .h5 selects "matterport" (see mrcnn/conventions.py).
    NETWORK_FLAVOUR = "torchvision"
    #: Round anchor half-sizes to whole pixels (torchvision) or keep them exact (Matterport).
    RPN_ANCHOR_ROUND = False
    #: Apply PRE_NMS_LIMIT and NMS per pyramid level (torchvision) rather than over all levels
    #: together (Matterport).
    RPN_PROPOSALS_PER_LEVEL = False
    #: How a box is assigned a pyramid level for ROIAlign: "round" (Matterport) or "floor"
    #: (torchvision) of 4 + log2(sqrt(area) / 224).
    ROI_LEVEL_ROUNDING = "round"
    #: torchvision.ops.roi_align options: sampling points per bin and side (a positive integer;
    #: torchvision's adaptive 0 is not supported) and half-pixel alignment.
    ROI_ALIGN_SAMPLING_RATIO = 2
    ROI_ALIGN_ALIGNED = True
    #: "top_class": each ROI becomes at most one detection, of its most likely class
    #: (Matterport); "all_classes": every class of every ROI is a candidate (torchvision).
    DETECTION_CLASS_MODE = "top_class"
    #: Convention keys whose value in this config is kept when loaded weights were trained
    #: with another (normally loading adopts the weights' value, see mrcnn/conventions.py).
    #: The loaded layers then see values they were not trained on; use it knowingly.
    KEEP_CONVENTIONS: Any = []

    # --- Runtime -------------------------------------------------------------------------------
    #: "auto" (CUDA when available, else CPU), "cpu", "cuda", "cuda:1", ...
    DEVICE = "auto"
    #: Precision of detect/splash/evaluate: "fp32", "bf16" (GPUs, and CPUs where bf16 is faster:
    #: AMX, or AVX512_BF16 measured once; elsewhere fp32, said once) or "fp16" (GPUs).
    #: Convolutions and matrix products run in it; box decoding, NMS, coordinates and mask
    #: pasting stay in float32. On an Ampere or newer GPU, "fp32" follows PyTorch's settings,
    #: whose default runs cuDNN's float32 convolutions in TF32 (torch.backends.cudnn.allow_tf32).
    INFERENCE_PRECISION = "fp32"
    #: CPU threads for torch; 0 leaves torch's default (all physical cores).
    CPU_THREADS = 0
    #: Keep convolution weights and activations in channels-last memory layout, which oneDNN
    #: (CPU) and cuDNN run faster; results are the same up to float rounding.
    CHANNELS_LAST = True
    #: Linux: keep freed memory for the next image, so a CPU detect does not page its maps in
    #: again; the process then holds its peak (:mod:`mrcnn.modeling.cpu_memory`).
    CPU_KEEP_FREED_MEMORY = True

    def __init__(self) -> None:
        self._validate()

    # Computed attributes are properties so that overriding their inputs keeps them in step.
    @property
    def BATCH_SIZE(self) -> int:  # noqa: N802 - Matterport's name
        """Images per step over all devices: IMAGES_PER_GPU * GPU_COUNT."""
        return int(self.IMAGES_PER_GPU) * int(self.GPU_COUNT)

    @BATCH_SIZE.setter
    def BATCH_SIZE(self, value: int) -> None:  # noqa: N802 - Matterport's name
        # Matterport's scripts assign it after construction (``config.BATCH_SIZE = 1`` before
        # detecting one image at a time); IMAGES_PER_GPU carries it, so the two never disagree.
        count = int(self.GPU_COUNT)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"BATCH_SIZE = {value!r}: give a positive whole number of images")
        if value % count:
            raise ValueError(
                f"BATCH_SIZE = {value} does not divide over GPU_COUNT = {count}: set "
                "IMAGES_PER_GPU (images on each device) instead"
            )
        self.IMAGES_PER_GPU = int(value) // count

    @property
    def IMAGE_SHAPE(self) -> np.ndarray:  # noqa: N802 - Matterport's name
        """Input shape [H, W, C] for the fixed-size modes; for the others, the largest one."""
        if self.IMAGE_RESIZE_MODE == "crop":
            side = self.IMAGE_MIN_DIM
        else:
            side = self.IMAGE_MAX_DIM
        return np.array([side, side, self.IMAGE_CHANNEL_COUNT])

    @property
    def IMAGE_META_SIZE(self) -> int:  # noqa: N802 - Matterport's name
        """Length of Matterport's image meta vector (:func:`mrcnn.model.compose_image_meta`):
        image id, original shape, molded shape, window, scale and one flag per class."""
        return 1 + 3 + 3 + 4 + 1 + int(self.NUM_CLASSES)

    # ------------------------------------------------------------------------------------------
    def _validate(self) -> None:
        """Each attribute's type and range (:mod:`mrcnn.config_checks`), then how they relate.

        Raises:
            ValueError: one line listing every problem found.
        """
        errors = attribute_errors(self)
        if errors:  # the relations below assume well-typed values
            raise ValueError(f"invalid {type(self).__name__}: " + "; ".join(errors))
        if len(self.RPN_ANCHOR_SCALES) != len(self.BACKBONE_STRIDES):
            errors.append(
                f"RPN_ANCHOR_SCALES has {len(self.RPN_ANCHOR_SCALES)} entries but "
                f"BACKBONE_STRIDES has {len(self.BACKBONE_STRIDES)}: give one scale per level"
            )
        if self.NETWORK_FLAVOUR == "matterport" and self.BACKBONE not in ("resnet50", "resnet101"):
            errors.append(
                f"NETWORK_FLAVOUR='matterport' needs BACKBONE 'resnet50' or 'resnet101', not "
                f"{self.BACKBONE!r} (Matterport's network has no other)"
            )
        if len(self.BACKBONE_STRIDES) != 5:
            errors.append("BACKBONE_STRIDES must list the 5 pyramid levels P2-P6")
        if self.IMAGE_RESIZE_MODE == "pad64" and self.IMAGE_MIN_DIM and self.IMAGE_MIN_DIM % 64:
            errors.append(f"IMAGE_MIN_DIM={self.IMAGE_MIN_DIM} must be a multiple of 64 for pad64")
        if self.IMAGE_RESIZE_MODE == "square" and self.IMAGE_MAX_DIM % 64:
            errors.append(f"IMAGE_MAX_DIM={self.IMAGE_MAX_DIM} must be a multiple of 64 for square")
        if list(self.MASK_SHAPE) != [2 * int(self.MASK_POOL_SIZE)] * 2:
            errors.append(
                f"MASK_SHAPE={list(self.MASK_SHAPE)} must be twice MASK_POOL_SIZE="
                f"{self.MASK_POOL_SIZE} (the mask head upsamples its ROIAlign patch by 2)"
            )
        if self.IMAGE_RESIZE_MODE == "shortest_side" and not self.IMAGE_MIN_DIM:
            errors.append("IMAGE_MIN_DIM must be >= 1 for shortest_side (the shorter side's size)")
        if len(self.MEAN_PIXEL) != self.IMAGE_CHANNEL_COUNT:
            errors.append(
                f"MEAN_PIXEL has {len(self.MEAN_PIXEL)} values for "
                f"IMAGE_CHANNEL_COUNT={self.IMAGE_CHANNEL_COUNT}"
            )
        if errors:
            raise ValueError(f"invalid {type(self).__name__}: " + "; ".join(errors))

    # ------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """All UPPERCASE attributes (computed ones included) as plain Python values."""
        out = {}
        for name in sorted(dir(self)):
            if name.isupper() and not name.startswith("_"):
                value = getattr(self, name)
                if callable(value):
                    continue
                out[name] = _plain(value)
        return out

    def display(self) -> None:
        """Print every configuration value, one per line."""
        print("\nConfigurations:")
        for key, value in self.to_dict().items():
            print(f"{key:30} {value}")
        print("\n")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} NAME={self.NAME!r}>"

    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any] | Iterable[str] | None = None) -> Config:
        """Return an instance of a subclass of ``cls`` with some attributes replaced.

        ``overrides`` is a mapping ``{"KEY": value}`` or an iterable of ``"KEY=VALUE"`` strings
        (as given to the CLI's ``--set``), where VALUE is a Python literal (``0.5``, ``[1, 2]``,
        ``True``) or a bare string (``resnet50``). Unknown keys are refused with the list of
        known ones, so a typo cannot pass silently.
        """
        values = parse_overrides(overrides or {})
        known = {name for name in dir(cls) if name.isupper()}
        for key in values:
            if key in COMPUTED_ATTRIBUTES:
                raise ValueError(f"{key} is computed from other settings and cannot be set")
            if key not in known:
                close = [k for k in sorted(known) if k.split("_")[0] == key.split("_")[0]]
                hint = f" (similar: {', '.join(close[:6])})" if close else ""
                raise ValueError(f"unknown config key {key!r}{hint}")
        namespace = {k: _coerce_like(getattr(cls, k), v) for k, v in values.items()}
        derived = type(cls.__name__, (cls,), namespace)
        return derived()


def parse_overrides(overrides: Mapping[str, Any] | Iterable[str]) -> dict[str, Any]:
    """Turn ``{"K": v}`` or ``["K=V", ...]`` into a dict of Python values."""
    if isinstance(overrides, Mapping):
        return {str(k).upper(): v for k, v in overrides.items()}
    values: dict[str, Any] = {}
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"config override {item!r} must look like KEY=VALUE")
        key, text = item.split("=", 1)
        values[key.strip().upper()] = _parse_literal(text.strip())
    return values


def _parse_literal(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text  # not a Python literal ({[]: 1} included): a bare string


def _coerce_like(default: Any, value: Any) -> Any:
    """Keep numpy arrays as arrays so that code doing arithmetic on them keeps working."""
    if isinstance(default, np.ndarray) and value is not None:
        try:
            return np.asarray(value, dtype=default.dtype)
        except (TypeError, ValueError, OverflowError):
            return value  # not numbers: the attribute's rule reports it in one line
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, tuple):
        return list(value)
    return value


def load_config(spec: str | None, overrides: Iterable[str] = ()) -> Config:
    """Load a config for the CLI.

    ``spec`` is ``module:ClassName`` (a Config subclass importable from Python), a path to a
    ``.py`` file with ``:ClassName``, a YAML/JSON file of ``KEY: value`` pairs (applied over the
    base Config, or over the class named by its ``BASE`` key), or None for the base Config.
    ``overrides`` are ``KEY=VALUE`` strings applied last.
    """
    base: type[Config] = Config
    file_values: dict[str, Any] = {}
    if spec:
        path = Path(spec)
        if path.suffix.lower() in (".yaml", ".yml", ".json"):
            if not path.is_file():
                raise FileNotFoundError(f"config file not found: {path}")
            file_values = _read_mapping_file(path)
            base_name = file_values.pop("BASE", None)
            if base_name:
                base = _import_config_class(str(base_name))
        else:
            base = _import_config_class(spec)
    values = dict(file_values)
    values.update(parse_overrides(list(overrides)))
    return base.from_overrides(values)


def _read_mapping_file(path: Path) -> dict[str, Any]:
    text = path.read_text()
    if path.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(
            f"{path}: expected a mapping of KEY: value pairs, got {type(data).__name__}"
        )
    return {str(k).upper(): v for k, v in data.items()}


def _import_config_class(spec: str) -> type[Config]:
    if ":" not in spec:
        raise ValueError(
            f"config {spec!r}: give 'module:ClassName', 'file.py:ClassName' or a .yaml/.json file"
        )
    module_name, class_name = spec.rsplit(":", 1)
    if module_name.endswith(".py"):
        file_spec = importlib.util.spec_from_file_location(Path(module_name).stem, module_name)
        if file_spec is None or file_spec.loader is None:
            raise ValueError(f"config {spec!r}: cannot load {module_name}")
        module = importlib.util.module_from_spec(file_spec)
        file_spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Config)):
        raise ValueError(f"config {spec!r}: {class_name} is not a Config subclass in {module_name}")
    return cls


class TorchvisionCocoConfig(Config):
    """The settings under which this network reproduces torchvision's ``maskrcnn_resnet50_fpn``.

    91 classes in torchvision's COCO ids (0 is background; some ids are unused), images resized
    so the shorter side is 800 and the longer at most 1333 then padded to a multiple of 32,
    ImageNet mean/std normalisation, anchors of torchvision's order and rounding, proposals
    selected per pyramid level, floor level assignment, unaligned ROIAlign and all-class
    detection. Load it with ``load_weights("coco")`` or a torchvision state dict file.
    """

    _library_defaults = True
    NAME = "coco_torchvision"
    BACKBONE = "resnet50"
    NUM_CLASSES = 91
    IMAGES_PER_GPU = 1
    IMAGE_RESIZE_MODE = "shortest_side"
    IMAGE_MIN_DIM = 800
    IMAGE_MAX_DIM = 1333
    MEAN_PIXEL = np.array(TORCHVISION["MEAN_PIXEL"])
    STD_PIXEL = np.array(TORCHVISION["STD_PIXEL"])
    # torchvision's aspect ratios are height / width (0.5, 1, 2); as width / height that is:
    RPN_ANCHOR_RATIOS = [2.0, 1.0, 0.5]
    RPN_ANCHOR_ROUND = TORCHVISION["RPN_ANCHOR_ROUND"]
    RPN_PROPOSALS_PER_LEVEL = TORCHVISION["RPN_PROPOSALS_PER_LEVEL"]
    PRE_NMS_LIMIT = 1000
    POST_NMS_ROIS_TRAINING = 2000
    POST_NMS_ROIS_INFERENCE = 1000
    RPN_NMS_THRESHOLD = 0.7
    RPN_BBOX_STD_DEV = np.array(TORCHVISION["RPN_BBOX_STD_DEV"])
    BBOX_STD_DEV = np.array(TORCHVISION["BBOX_STD_DEV"])
    TRAIN_ROIS_PER_IMAGE = 512
    ROI_POSITIVE_RATIO = 0.25
    ROI_LEVEL_ROUNDING = TORCHVISION["ROI_LEVEL_ROUNDING"]
    ROI_ALIGN_SAMPLING_RATIO = TORCHVISION["ROI_ALIGN_SAMPLING_RATIO"]
    ROI_ALIGN_ALIGNED = TORCHVISION["ROI_ALIGN_ALIGNED"]
    DETECTION_CLASS_MODE = "all_classes"
    DETECTION_MIN_CONFIDENCE = 0.05
    DETECTION_NMS_THRESHOLD = 0.5
    DETECTION_MAX_INSTANCES = 100

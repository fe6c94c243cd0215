"""The configuration values the network's stages use, read once from a config.

Detectron2's ``from_config`` pattern: :meth:`StageSettings.from_config` turns a
:class:`~mrcnn.config.Config` into plain, typed values once; the stages read these instead of
the config (no per-call ``int(cfg.X)``). :meth:`mrcnn.modeling.network.MaskRCNNNet.configure`
rebuilds them after the config changes (loading weights adopts their conventions).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StageSettings:
    """Values of the anchors, proposal layer, ROIAlign, heads and detection layer."""

    anchor_scales: tuple[float, ...]
    anchor_ratios: tuple[float, ...]
    strides: tuple[int, ...]
    anchor_stride: int
    anchor_round: bool
    pre_nms_limit: int
    post_nms_rois_training: int
    post_nms_rois_inference: int
    rpn_nms_threshold: float
    rpn_train_anchors: int
    proposals_per_level: bool
    pool_size: int
    mask_pool_size: int
    mask_shape: tuple[int, int]
    train_rois: int
    positive_ratio: float
    sampling_ratio: int
    aligned: bool
    level_rounding: str
    min_confidence: float
    detection_nms_threshold: float
    max_instances: int
    class_mode: str
    rpn_bbox_std: tuple[float, float, float, float]
    bbox_std: tuple[float, float, float, float]

    @classmethod
    def from_config(cls, config) -> StageSettings:
        """The settings of a :class:`~mrcnn.config.Config` (validated already)."""

        def floats(values) -> tuple[float, ...]:
            return tuple(float(v) for v in values)

        return cls(
            anchor_scales=floats(config.RPN_ANCHOR_SCALES),
            anchor_ratios=floats(config.RPN_ANCHOR_RATIOS),
            strides=tuple(int(s) for s in config.BACKBONE_STRIDES),
            anchor_stride=int(config.RPN_ANCHOR_STRIDE),
            anchor_round=bool(config.RPN_ANCHOR_ROUND),
            pre_nms_limit=int(config.PRE_NMS_LIMIT),
            post_nms_rois_training=int(config.POST_NMS_ROIS_TRAINING),
            post_nms_rois_inference=int(config.POST_NMS_ROIS_INFERENCE),
            rpn_nms_threshold=float(config.RPN_NMS_THRESHOLD),
            rpn_train_anchors=int(config.RPN_TRAIN_ANCHORS_PER_IMAGE),
            proposals_per_level=bool(config.RPN_PROPOSALS_PER_LEVEL),
            pool_size=int(config.POOL_SIZE),
            mask_pool_size=int(config.MASK_POOL_SIZE),
            mask_shape=(int(config.MASK_SHAPE[0]), int(config.MASK_SHAPE[1])),
            train_rois=int(config.TRAIN_ROIS_PER_IMAGE),
            positive_ratio=float(config.ROI_POSITIVE_RATIO),
            sampling_ratio=int(config.ROI_ALIGN_SAMPLING_RATIO),
            aligned=bool(config.ROI_ALIGN_ALIGNED),
            level_rounding=str(config.ROI_LEVEL_ROUNDING),
            min_confidence=float(config.DETECTION_MIN_CONFIDENCE),
            detection_nms_threshold=float(config.DETECTION_NMS_THRESHOLD),
            max_instances=int(config.DETECTION_MAX_INSTANCES),
            class_mode=str(config.DETECTION_CLASS_MODE),
            rpn_bbox_std=floats(config.RPN_BBOX_STD_DEV),
            bbox_std=floats(config.BBOX_STD_DEV),
        )

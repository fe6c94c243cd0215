"""The Mask R-CNN network as one ``nn.Module``: the stages wired together.

Each stage is a method, so that the inspection tools and the training code call exactly what
inference calls: :meth:`MaskRCNNNet.features`, :meth:`rpn_outputs`, :meth:`proposals`,
:meth:`box_predictions`, :meth:`detections`, :meth:`mask_probabilities`.
All boxes are (x1, y1, x2, y2) in network-input (molded, padded) pixels.
"""

from __future__ import annotations

import torch
from torch import nn

from mrcnn.model import matterport
from mrcnn.model.anchors import anchors_for_config
from mrcnn.model.backbone import ResNetBackbone, backbone_channels, clear_folded_weights
from mrcnn.model.crop_and_resize import pyramid_crop_and_resize
from mrcnn.model.detection import refine_detections
from mrcnn.model.fpn import FeaturePyramid
from mrcnn.model.heads import BoxHead, MaskHead, select_class_masks
from mrcnn.model.precision import decoding_dtype
from mrcnn.model.proposals import generate_proposals
from mrcnn.model.roi_align import pyramid_roi_align
from mrcnn.model.rpn import RPNHead

#: Parameter-name prefixes of the layers whose shape depends on NUM_CLASSES.
CLASS_SPECIFIC_PREFIXES = ("box_head.class_logits.", "box_head.deltas.", "mask_head.logits.")


class MaskRCNNNet(nn.Module):
    """Backbone, FPN, RPN, proposal layer, ROI heads and detection layer for one config."""

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config
        channels = int(config.TOP_DOWN_PYRAMID_SIZE)
        #: NETWORK_FLAVOUR == "matterport": Matterport's backbone, RPN width and the stages of
        #: :mod:`mrcnn.model.matterport`; the interface of every stage stays the same.
        self.matterport = matterport.uses_matterport(config)
        backbone = matterport.MatterportResNetBackbone if self.matterport else ResNetBackbone
        self.backbone = backbone(config.BACKBONE, train_bn=bool(config.TRAIN_BN))
        self.fpn = FeaturePyramid(backbone_channels(config.BACKBONE), channels)
        self.rpn = RPNHead(
            channels,
            len(config.RPN_ANCHOR_RATIOS),
            int(config.RPN_ANCHOR_STRIDE),
            hidden=512 if self.matterport else channels,
        )
        self.box_head = BoxHead(
            channels,
            int(config.POOL_SIZE),
            int(config.FPN_CLASSIF_FC_LAYERS_SIZE),
            int(config.NUM_CLASSES),
        )
        self.mask_head = MaskHead(
            channels, int(config.NUM_CLASSES), int(getattr(config, "MASK_HEAD_CHANNELS", 256))
        )

    def clear_caches(self) -> None:
        """Forget cached folded BatchNorm weights (after writing weights through ``.data``)."""
        clear_folded_weights(self)

    # ------------------------------------------------------------------ stages
    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """[B, 3, H, W] molded images -> [P2, P3, P4, P5, P6], each [B, C, H_l, W_l].

        When the network's weights are channels-last (CHANNELS_LAST), so are the input and the
        feature maps.
        """
        if self.backbone.body.conv1.weight.is_contiguous(memory_format=torch.channels_last):
            images = images.contiguous(memory_format=torch.channels_last)
        return self.fpn(self.backbone(images))

    def rpn_outputs(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """RPN logits [B, A] and deltas [B, A, 4] for the anchors of :meth:`anchors`."""
        return self.rpn(features)

    def anchors(self, image_shape: tuple[int, int], like: torch.Tensor):
        """(anchors [A, 4] (x1, y1, x2, y2) on ``like``'s device and dtype, per-level counts)
        for a padded input of ``image_shape`` (H, W)."""
        anchors, counts = anchors_for_config(self.config, image_shape)
        return anchors.to(device=like.device, dtype=like.dtype), counts

    def proposals(
        self,
        objectness: torch.Tensor,
        deltas: torch.Tensor,
        image_shape: tuple[int, int],
        windows: torch.Tensor,
        post_nms_limit: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Proposal layer: (boxes [K, 4], scores [K], image_index [K]); see
        :func:`mrcnn.model.proposals.generate_proposals`."""
        cfg = self.config
        if post_nms_limit is None:
            post_nms_limit = (
                cfg.POST_NMS_ROIS_TRAINING if self.training else cfg.POST_NMS_ROIS_INFERENCE
            )
        anchors, counts = self.anchors(image_shape, deltas)
        if self.matterport:
            with torch.no_grad():
                boxes, scores, index = matterport.proposals(
                    objectness.detach(),
                    deltas.detach(),
                    matterport.normalise_boxes(anchors, image_shape),
                    int(cfg.PRE_NMS_LIMIT),
                    int(post_nms_limit),
                    float(cfg.RPN_NMS_THRESHOLD),
                    self._std(cfg.RPN_BBOX_STD_DEV, deltas),
                )
            return matterport.denormalise_boxes(boxes, image_shape), scores, index
        with torch.no_grad():
            return generate_proposals(
                objectness.detach(),
                deltas.detach(),
                anchors,
                counts,
                windows,
                int(cfg.PRE_NMS_LIMIT),
                int(post_nms_limit),
                float(cfg.RPN_NMS_THRESHOLD),
                self._std(cfg.RPN_BBOX_STD_DEV, deltas),
                bool(cfg.RPN_PROPOSALS_PER_LEVEL),
            )

    def roi_features(
        self,
        features: list[torch.Tensor],
        boxes: torch.Tensor,
        image_index: torch.Tensor,
        size: int,
    ) -> torch.Tensor:
        """Pyramid ROIAlign on P2-P5: [K, C, size, size] (Matterport's crop_and_resize and
        level rule for the matterport flavour, on an input of P2's size times its stride)."""
        cfg = self.config
        if self.matterport:
            stride = int(cfg.BACKBONE_STRIDES[0])
            shape = (features[0].shape[-2] * stride, features[0].shape[-1] * stride)
            normalised = matterport.normalise_boxes(boxes, shape)
            levels = matterport.roi_levels(normalised, shape)
            return pyramid_crop_and_resize(features[:4], normalised, image_index, levels, size)
        return pyramid_roi_align(
            features[:4],
            boxes,
            image_index,
            size,
            cfg.BACKBONE_STRIDES[:4],
            int(cfg.ROI_ALIGN_SAMPLING_RATIO),
            bool(cfg.ROI_ALIGN_ALIGNED),
            cfg.ROI_LEVEL_ROUNDING,
        )

    def box_predictions(
        self, features: list[torch.Tensor], rois: torch.Tensor, image_index: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Box head on ROIs: class logits [K, C] and deltas [K, C, 4]."""
        pooled = self.roi_features(features, rois, image_index, int(self.config.POOL_SIZE))
        return self.box_head(pooled)

    def detections(
        self,
        class_logits: torch.Tensor,
        deltas: torch.Tensor,
        rois: torch.Tensor,
        image_index: torch.Tensor,
        windows: torch.Tensor,
        image_shape: tuple[int, int] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Detection layer; see :func:`mrcnn.model.detection.refine_detections` (and
        :func:`mrcnn.model.matterport.detections` for the matterport flavour, which needs the
        padded input's ``image_shape`` (H, W))."""
        cfg = self.config
        if self.matterport:
            if image_shape is None:
                raise ValueError("the matterport flavour's detections need image_shape=(H, W)")
            found = matterport.detections(
                class_logits,
                deltas,
                matterport.normalise_boxes(rois, image_shape),
                image_index,
                matterport.normalise_boxes(windows.to(rois), image_shape),
                self._std(cfg.BBOX_STD_DEV, deltas),
                float(cfg.DETECTION_MIN_CONFIDENCE),
                float(cfg.DETECTION_NMS_THRESHOLD),
                int(cfg.DETECTION_MAX_INSTANCES),
            )
            found["boxes"] = matterport.denormalise_boxes(found["boxes"], image_shape)
            return found
        return refine_detections(
            class_logits,
            deltas,
            rois,
            image_index,
            windows,
            self._std(cfg.BBOX_STD_DEV, deltas),
            float(cfg.DETECTION_MIN_CONFIDENCE),
            float(cfg.DETECTION_NMS_THRESHOLD),
            int(cfg.DETECTION_MAX_INSTANCES),
            cfg.DETECTION_CLASS_MODE,
        )

    def mask_logits(
        self, features: list[torch.Tensor], boxes: torch.Tensor, image_index: torch.Tensor
    ) -> torch.Tensor:
        """Mask head on boxes: [K, num_classes, M, M] logits."""
        pooled = self.roi_features(features, boxes, image_index, int(self.config.MASK_POOL_SIZE))
        return self.mask_head(pooled)

    def mask_probabilities(
        self,
        features: list[torch.Tensor],
        boxes: torch.Tensor,
        image_index: torch.Tensor,
        class_ids: torch.Tensor,
    ) -> torch.Tensor:
        """[K, M, M] soft masks of each box's class."""
        if len(boxes) == 0:
            size = int(self.config.MASK_SHAPE[0])
            return boxes.new_zeros((0, size, size))
        logits = self.mask_logits(features, boxes, image_index)
        return torch.sigmoid(select_class_masks(logits, class_ids))

    # ------------------------------------------------------------------ inference
    def forward(self, images: torch.Tensor, windows: torch.Tensor) -> dict[str, torch.Tensor]:
        """Inference on a molded batch.

        Args:
            images: [B, 3, H, W] molded images.
            windows: [B, 4] (x1, y1, x2, y2) of each image inside its padded input.
        Returns:
            dict of "boxes" [D, 4] (x1, y1, x2, y2) input pixels, "class_ids" int64 [D],
            "scores" [D], "image_index" int64 [D] (grouped by image, best first) and
            "masks" [D, M, M] soft masks of the detected class.
        """
        image_shape = (images.shape[-2], images.shape[-1])
        features = self.features(images)
        # Under bf16/fp16 autocast the layers' outputs are half precision; anchors, box
        # decoding, NMS and coordinates are computed in float32 (decoding_dtype).
        objectness, rpn_deltas = map(decoding_dtype, self.rpn_outputs(features))
        rois, _, roi_image = self.proposals(objectness, rpn_deltas, image_shape, windows)
        class_logits, deltas = map(decoding_dtype, self.box_predictions(features, rois, roi_image))
        found = self.detections(class_logits, deltas, rois, roi_image, windows, image_shape)
        found["masks"] = decoding_dtype(
            self.mask_probabilities(
                features, found["boxes"], found["image_index"], found["class_ids"]
            )
        )
        return found

    @staticmethod
    def _std(values, like: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(list(map(float, values)), dtype=like.dtype, device=like.device)

"""The Mask R-CNN network as one ``nn.Module``: the stages wired together.

Each stage is a method, so that the inspection tools and the training code call exactly what
inference calls: :meth:`MaskRCNNNet.features`, :meth:`rpn_outputs`, :meth:`proposals`,
:meth:`box_predictions`, :meth:`detections`, :meth:`mask_probabilities`.
All boxes are (x1, y1, x2, y2) in network-input (molded, padded) pixels.
"""

from __future__ import annotations

import torch
from torch import nn

from mrcnn.modeling.anchors import pyramid_anchors
from mrcnn.modeling.backbone import backbone_channels, clear_folded_weights
from mrcnn.modeling.flavours import Flavour, flavour_for
from mrcnn.modeling.fpn import FeaturePyramid
from mrcnn.modeling.heads import BoxHead, MaskHead, select_class_masks
from mrcnn.modeling.precision import decoding_dtype
from mrcnn.modeling.proposals import ProposalSteps
from mrcnn.modeling.roi_align import feature_table
from mrcnn.modeling.rpn import RPNHead
from mrcnn.modeling.settings import StageSettings

#: Parameter-name prefixes of the layers whose shape depends on NUM_CLASSES.
CLASS_SPECIFIC_PREFIXES = ("box_head.class_logits.", "box_head.deltas.", "mask_head.logits.")


class MaskRCNNNet(nn.Module):
    """Backbone, FPN, RPN, proposal layer, ROI heads and detection layer for one config."""

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config
        channels = int(config.TOP_DOWN_PYRAMID_SIZE)
        #: The NETWORK_FLAVOUR's :class:`~mrcnn.modeling.flavours.Flavour`, chosen once here:
        #: its backbone, RPN width and the stages that differ (torchvision's or Matterport's);
        #: the interface of every stage stays the same.
        self.flavour: Flavour = flavour_for(config)
        self.backbone = self.flavour.build_backbone(config.BACKBONE, bool(config.TRAIN_BN))
        self.fpn = FeaturePyramid(backbone_channels(config.BACKBONE), channels)
        self.rpn = RPNHead(
            channels,
            len(config.RPN_ANCHOR_RATIOS),
            int(config.RPN_ANCHOR_STRIDE),
            hidden=self.flavour.rpn_hidden_channels(channels),
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
        # Box-coding std devs (RPN_BBOX_STD_DEV, BBOX_STD_DEV): buffers, so they follow the
        # network's device; float64 so that float64 runs decode with the exact values (the
        # stages cast them to the deltas' dtype); not persistent, so checkpoints keep their keys.
        self.register_buffer("rpn_bbox_std", torch.ones(4, dtype=torch.float64), persistent=False)
        self.register_buffer("bbox_std", torch.ones(4, dtype=torch.float64), persistent=False)
        self.configure()

    def configure(self) -> None:
        """Read the stages' settings from ``self.config`` (again, after it changed)."""
        #: The stages' values, read once from the config (:class:`StageSettings`).
        self.settings = StageSettings.from_config(self.config)
        self.flavour = self.flavour.with_settings(self.settings)  # same flavour, new values
        device = self.rpn_bbox_std.device
        self.rpn_bbox_std = torch.tensor(
            self.settings.rpn_bbox_std, dtype=torch.float64, device=device
        )
        self.bbox_std = torch.tensor(self.settings.bbox_std, dtype=torch.float64, device=device)

    @property
    def matterport(self) -> bool:
        """Whether the network is Matterport's (read-only; ``self.flavour`` does what
        differs, ``self.flavour.name`` is the NETWORK_FLAVOUR)."""
        return self.flavour.name == "matterport"

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
        """RPN logits [B, A] and deltas [B, A, 4] for the anchors of :meth:`anchors`; float32
        under bf16/fp16 autocast (anchors, decoding and NMS are computed in float32)."""
        objectness, deltas = self.rpn(features)
        return decoding_dtype(objectness), decoding_dtype(deltas)

    def anchors(self, image_shape: tuple[int, int], like: torch.Tensor):
        """(anchors [A, 4] (x1, y1, x2, y2) on ``like``'s device and dtype, per-level counts)
        for a padded input of ``image_shape`` (H, W)."""
        s = self.settings
        anchors, counts = pyramid_anchors(
            image_shape,
            s.anchor_scales,
            s.anchor_ratios,
            s.strides,
            s.anchor_stride,
            s.anchor_round,
        )
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
        :func:`mrcnn.modeling.proposals.proposal_steps`."""
        return self.proposal_steps(
            objectness, deltas, image_shape, windows, post_nms_limit
        ).proposals()

    def proposal_steps(
        self,
        objectness: torch.Tensor,
        deltas: torch.Tensor,
        image_shape: tuple[int, int],
        windows: torch.Tensor,
        post_nms_limit: int | None = None,
    ) -> ProposalSteps:
        """The proposal layer step by step (:class:`mrcnn.modeling.proposals.ProposalSteps`),
        boxes in network-input pixels whatever the flavour computes them in."""
        s = self.settings
        if post_nms_limit is None:
            post_nms_limit = (
                s.post_nms_rois_training if self.training else s.post_nms_rois_inference
            )
        anchors, counts = self.anchors(image_shape, deltas)
        std = self.rpn_bbox_std.to(deltas)
        return self.flavour.proposal_steps(
            objectness, deltas, anchors, counts, windows, image_shape, int(post_nms_limit), std
        )

    def roi_features(
        self,
        features: list[torch.Tensor],
        boxes: torch.Tensor,
        image_index: torch.Tensor,
        size: int,
        table: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Pyramid ROIAlign on P2-P5: [K, C, size, size] (Matterport's crop_and_resize and
        level rule for the matterport flavour, on an input of P2's size times its stride).

        ``table``: :func:`feature_table` of ``features[:4]`` when the caller already built it
        (the box and the mask head read the same pyramid); built here otherwise.
        """
        return self.flavour.roi_features(features, boxes, image_index, size, table)

    def box_predictions(
        self,
        features: list[torch.Tensor],
        rois: torch.Tensor,
        image_index: torch.Tensor,
        table: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Box head on ROIs: class logits [K, C] and deltas [K, C, 4], float32 under bf16/fp16
        autocast (box refinement and per-class NMS are computed in float32)."""
        pooled = self.roi_features(features, rois, image_index, self.settings.pool_size, table)
        class_logits, deltas = self.box_head(pooled)
        return decoding_dtype(class_logits), decoding_dtype(deltas)

    def detections(
        self,
        class_logits: torch.Tensor,
        deltas: torch.Tensor,
        rois: torch.Tensor,
        image_index: torch.Tensor,
        windows: torch.Tensor,
        image_shape: tuple[int, int] | None = None,
    ) -> dict[str, torch.Tensor]:
        """Detection layer; see :func:`mrcnn.modeling.detection.refine_detections` (and
        :func:`mrcnn.modeling.matterport.detections` for the matterport flavour, which needs the
        padded input's ``image_shape`` (H, W))."""
        std = self.bbox_std.to(deltas)
        return self.flavour.detections(
            class_logits, deltas, rois, image_index, windows, std, image_shape
        )

    def refine_rois(
        self,
        rois: torch.Tensor,
        class_deltas: torch.Tensor,
        image_index: torch.Tensor,
        windows: torch.Tensor,
        image_shape: tuple[int, int],
    ) -> torch.Tensor:
        """The detection layer's refinement of [K, 4] ROIs by the box-head deltas of one class
        each ([K, 4] (dx, dy, dw, dh), before BBOX_STD_DEV), clipped to their image's window:
        [K, 4] (x1, y1, x2, y2) network-input pixels, computed as the flavour computes it."""
        std = self.bbox_std.to(class_deltas)
        per_roi = windows.to(rois)[image_index]
        return self.flavour.refine_boxes(rois, class_deltas, std, per_roi, image_shape)

    def mask_logits(
        self,
        features: list[torch.Tensor],
        boxes: torch.Tensor,
        image_index: torch.Tensor,
        table: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Mask head on boxes: [K, num_classes, M, M] logits."""
        size = self.settings.mask_pool_size
        pooled = self.roi_features(features, boxes, image_index, size, table)
        return self.mask_head(pooled)

    def mask_probabilities(
        self,
        features: list[torch.Tensor],
        boxes: torch.Tensor,
        image_index: torch.Tensor,
        class_ids: torch.Tensor,
        table: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """[K, M, M] soft masks of each box's class."""
        if len(boxes) == 0:
            size = self.settings.mask_shape[0]
            return boxes.new_zeros((0, size, size))
        logits = self.mask_logits(features, boxes, image_index, table)
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
        objectness, rpn_deltas = self.rpn_outputs(features)
        rois, _, roi_image = self.proposals(objectness, rpn_deltas, image_shape, windows)
        table = feature_table(features[:4])  # once for both heads
        class_logits, deltas = self.box_predictions(features, rois, roi_image, table)
        found = self.detections(class_logits, deltas, rois, roi_image, windows, image_shape)
        found["masks"] = decoding_dtype(
            self.mask_probabilities(
                features, found["boxes"], found["image_index"], found["class_ids"], table
            )
        )
        return found

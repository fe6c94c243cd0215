"""The network's flavours (NETWORK_FLAVOUR): what differs between torchvision's Mask R-CNN and
Matterport's, as an object chosen once per network.

Detectron2's registry style: :data:`FLAVOURS` maps each NETWORK_FLAVOUR to its class and
:func:`flavour_for` builds the one a config names. :class:`~mrcnn.modeling.network.MaskRCNNNet`
asks for it once, when it is built, and its stages delegate what differs to it: the backbone,
the RPN's hidden width, the proposal layer, ROI features, the detection layer and its box
refinement. A flavour holds the stages' plain values (:class:`StageSettings`), read from the
config when it is built (:meth:`Flavour.with_settings` after the config changed), never on a
call. Boxes enter and leave every operation as (x1, y1, x2, y2) network-input pixels; the
matterport flavour computes in Matterport's normalised coordinates in between.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import ClassVar

import torch

from mrcnn.modeling import matterport
from mrcnn.modeling.backbone import ResNetBackbone
from mrcnn.modeling.crop_and_resize import pyramid_crop_and_resize
from mrcnn.modeling.detection import refine_boxes, refine_detections
from mrcnn.modeling.proposals import ProposalSteps, proposal_steps
from mrcnn.modeling.roi_align import pyramid_roi_align
from mrcnn.modeling.settings import StageSettings
from mrcnn.structures.matterport_image import unmold_selected

#: The NETWORK_FLAVOUR of a config that names none.
DEFAULT_FLAVOUR = "torchvision"


@dataclass(frozen=True)
class Flavour(ABC):
    """The operations of the network that depend on its flavour, for fixed stage settings."""

    settings: StageSettings

    #: The NETWORK_FLAVOUR this class implements.
    name: ClassVar[str]
    #: ``(found, index, meta, input_shape) -> dict``: the flavour's own unmolding of one image's
    #: detections with dense masks (``MaskRCNN.detect``'s result), or None: detect's default.
    dense_unmold: ClassVar[Callable[..., dict] | None] = None

    def with_settings(self, settings: StageSettings) -> Flavour:
        """The same flavour with other stage settings (after the config changed)."""
        return replace(self, settings=settings)

    @abstractmethod
    def build_backbone(self, name: str, train_bn: bool) -> ResNetBackbone:
        """The ResNet body (``name``: BACKBONE) returning [C2, C3, C4, C5]."""

    @abstractmethod
    def rpn_hidden_channels(self, channels: int) -> int:
        """Channels of the RPN's shared 3x3 conv on a pyramid of ``channels`` channels."""

    @abstractmethod
    def proposal_steps(
        self,
        objectness: torch.Tensor,
        deltas: torch.Tensor,
        anchors: torch.Tensor,
        level_counts: list[int],
        windows: torch.Tensor,
        image_shape: tuple[int, int],
        post_nms_limit: int,
        std: torch.Tensor,
    ) -> ProposalSteps:
        """The proposal layer step by step, boxes in network-input pixels.

        Args:
            objectness: [B, A] logits; deltas: [B, A, 4] before ``std`` (both detached here).
            anchors: [A, 4] pixels; level_counts: anchors per pyramid level.
            windows: [B, 4] image windows; image_shape: the padded input's (H, W).
            post_nms_limit: proposals kept per image; std: [4] RPN_BBOX_STD_DEV.
        """

    @abstractmethod
    def roi_features(
        self,
        features: list[torch.Tensor],
        boxes: torch.Tensor,
        image_index: torch.Tensor,
        size: int,
        table: torch.Tensor | None,
    ) -> torch.Tensor:
        """[K, C, size, size] features of [K, 4] boxes pooled from P2-P5 (``features[:4]``);
        ``table``: their :func:`~mrcnn.modeling.roi_align.feature_table`, or None."""

    @abstractmethod
    def detections(
        self,
        class_logits: torch.Tensor,
        deltas: torch.Tensor,
        rois: torch.Tensor,
        image_index: torch.Tensor,
        windows: torch.Tensor,
        std: torch.Tensor,
        image_shape: tuple[int, int] | None,
    ) -> dict[str, torch.Tensor]:
        """The detection layer: "boxes", "class_ids", "scores", "image_index" (``std``:
        [4] BBOX_STD_DEV; ``image_shape``: the padded input's (H, W), if known)."""

    @abstractmethod
    def refine_boxes(
        self,
        rois: torch.Tensor,
        class_deltas: torch.Tensor,
        std: torch.Tensor,
        roi_windows: torch.Tensor,
        image_shape: tuple[int, int],
    ) -> torch.Tensor:
        """[K, 4] ROIs moved by one class's deltas each ([K, 4] before ``std``) and clipped
        into their image's window (``roi_windows`` [K, 4]), as the detection layer does."""


class TorchvisionFlavour(Flavour):
    """torchvision's Mask R-CNN (this project's default network)."""

    name = "torchvision"

    def build_backbone(self, name: str, train_bn: bool) -> ResNetBackbone:
        return ResNetBackbone(name, train_bn=train_bn)

    def rpn_hidden_channels(self, channels: int) -> int:
        return channels

    def proposal_steps(
        self, objectness, deltas, anchors, level_counts, windows, image_shape, post_nms_limit, std
    ) -> ProposalSteps:
        s = self.settings
        with torch.no_grad():
            return proposal_steps(
                objectness.detach(),
                deltas.detach(),
                anchors,
                level_counts,
                windows,
                s.pre_nms_limit,
                int(post_nms_limit),
                s.rpn_nms_threshold,
                std,
                s.proposals_per_level,
            )

    def roi_features(self, features, boxes, image_index, size, table) -> torch.Tensor:
        s = self.settings
        return pyramid_roi_align(
            features[:4],
            boxes,
            image_index,
            size,
            s.strides[:4],
            s.sampling_ratio,
            s.aligned,
            s.level_rounding,
            table,
        )

    def detections(
        self, class_logits, deltas, rois, image_index, windows, std, image_shape
    ) -> dict[str, torch.Tensor]:
        s = self.settings
        return refine_detections(
            class_logits,
            deltas,
            rois,
            image_index,
            windows,
            std,
            s.min_confidence,
            s.detection_nms_threshold,
            s.max_instances,
            s.class_mode,
        )

    def refine_boxes(self, rois, class_deltas, std, roi_windows, image_shape) -> torch.Tensor:
        return refine_boxes(rois, class_deltas, std, roi_windows)


class MatterportFlavour(Flavour):
    """Matterport's Keras Mask R-CNN: the stages of :mod:`mrcnn.modeling.matterport`, which
    compute in normalised coordinates of the padded input."""

    name = "matterport"
    dense_unmold = staticmethod(unmold_selected)

    def build_backbone(self, name: str, train_bn: bool) -> ResNetBackbone:
        return matterport.MatterportResNetBackbone(name, train_bn=train_bn)

    def rpn_hidden_channels(self, channels: int) -> int:
        return 512

    def proposal_steps(
        self, objectness, deltas, anchors, level_counts, windows, image_shape, post_nms_limit, std
    ) -> ProposalSteps:
        s = self.settings
        with torch.no_grad():
            steps = matterport.proposal_steps(
                objectness.detach(),
                deltas.detach(),
                matterport.normalise_boxes(anchors, image_shape),
                s.pre_nms_limit,
                int(post_nms_limit),
                s.rpn_nms_threshold,
                std,
            )
        return steps.map_boxes(lambda b: matterport.denormalise_boxes(b, image_shape))

    def roi_features(self, features, boxes, image_index, size, table) -> torch.Tensor:
        stride = self.settings.strides[0]  # the input is P2's size times its stride
        shape = (features[0].shape[-2] * stride, features[0].shape[-1] * stride)
        normalised = matterport.normalise_boxes(boxes, shape)
        levels = matterport.roi_levels(normalised, shape)
        return pyramid_crop_and_resize(features[:4], normalised, image_index, levels, size, table)

    def detections(
        self, class_logits, deltas, rois, image_index, windows, std, image_shape
    ) -> dict[str, torch.Tensor]:
        if image_shape is None:
            raise ValueError("the matterport flavour's detections need image_shape=(H, W)")
        s = self.settings
        found = matterport.detections(
            class_logits,
            deltas,
            matterport.normalise_boxes(rois, image_shape),
            image_index,
            matterport.normalise_boxes(windows.to(rois), image_shape),
            std,
            s.min_confidence,
            s.detection_nms_threshold,
            s.max_instances,
        )
        found["boxes"] = matterport.denormalise_boxes(found["boxes"], image_shape)
        return found

    def refine_boxes(self, rois, class_deltas, std, roi_windows, image_shape) -> torch.Tensor:
        refined = matterport.refine_boxes(
            matterport.normalise_boxes(rois, image_shape),
            class_deltas,
            std,
            matterport.normalise_boxes(roi_windows, image_shape),
        )
        return matterport.denormalise_boxes(refined, image_shape)


#: NETWORK_FLAVOUR -> its :class:`Flavour` class.
FLAVOURS: dict[str, type[Flavour]] = {
    TorchvisionFlavour.name: TorchvisionFlavour,
    MatterportFlavour.name: MatterportFlavour,
}


def flavour_for(config, settings: StageSettings | None = None) -> Flavour:
    """The flavour a config's NETWORK_FLAVOUR names (torchvision's when it names none), holding
    ``settings`` (default: the config's :class:`StageSettings`).

    Raises:
        ValueError: a NETWORK_FLAVOUR with no class in :data:`FLAVOURS`.
    """
    name = getattr(config, "NETWORK_FLAVOUR", DEFAULT_FLAVOUR)
    if name not in FLAVOURS:
        raise ValueError(f"NETWORK_FLAVOUR={name!r}: use one of {sorted(FLAVOURS)}")
    return FLAVOURS[name](StageSettings.from_config(config) if settings is None else settings)


__all__ = [
    "DEFAULT_FLAVOUR",
    "FLAVOURS",
    "Flavour",
    "MatterportFlavour",
    "TorchvisionFlavour",
    "flavour_for",
]

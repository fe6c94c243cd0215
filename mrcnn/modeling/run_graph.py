"""Stage outputs by Matterport's layer names, for ``MaskRCNN.run_graph``.

Matterport's notebooks inspect the network by asking Keras for named layer outputs
(``model.keras_model.get_layer("ROI").output``). Here the same names select the equivalent
stage of :class:`mrcnn.modeling.network.MaskRCNNNet`, computed once per call and converted to
Matterport's layouts: feature maps [B, H, W, C], deltas (dy, dx, log dh, log dw), boxes
(y1, x1, y2, x2) normalised in the molded image, zero-padded per image.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from string import ascii_lowercase

import numpy as np
import torch

from mrcnn.modeling.proposals import ProposalSteps
from mrcnn.structures.boxes import xyxy_to_yxyx

_FPN_STAGES = {f"fpn_p{level}": level - 2 for level in range(2, 7)}

#: Matterport's ProposalLayer nodes (found with ``model.ancestor`` in its notebooks) -> the
#: field of :class:`mrcnn.modeling.proposals.ProposalSteps` they show.
_PROPOSAL_STAGES = {
    "ROI/pre_nms_anchors": "anchors",
    "ROI/refined_anchors": "refined",
    "ROI/refined_anchors_clipped": "clipped",
    "ROI/rpn_non_max_suppression": "keep",
}
_HEAD_STAGES = ["mrcnn_class_logits", "mrcnn_class", "mrcnn_bbox", "mrcnn_detection", "mrcnn_mask"]
_ALIASES = {
    "proposals": "ROI",
    "rois": "ROI",
    "input_anchors": "anchors",
    "detections": "mrcnn_detection",
    "pre_nms_anchors": "ROI/pre_nms_anchors",
    "refined_anchors": "ROI/refined_anchors",
    "refined_anchors_clipped": "ROI/refined_anchors_clipped",
    "post_nms_anchor_ix": "ROI/rpn_non_max_suppression",
    # The NMS node's names in TensorFlow 1.4-1.8 and 1.9-1.10, which the notebooks also try.
    "ROI/rpn_non_max_suppression/NonMaxSuppressionV2": "ROI/rpn_non_max_suppression",
    "ROI/rpn_non_max_suppression/NonMaxSuppressionV3": "ROI/rpn_non_max_suppression",
}


def backbone_block_stages(block_counts: Sequence[int]) -> dict[str, tuple[int, int]]:
    """Matterport's name of every residual block's output -> (stage 0-3, block).

    ``res2a_out`` ... ``res5c_out``: stage 4 runs to ``res4f_out`` in ResNet-50 and to
    ``res4w_out`` in ResNet-101; each stage's last block is its C2-C5 output.
    """
    return {
        f"res{stage + 2}{ascii_lowercase[block]}_out": (stage, block)
        for stage, count in enumerate(block_counts)
        for block in range(count)
    }


def _residual_stages(net) -> tuple:
    """The backbone's four stages of residual blocks (res2 ... res5)."""
    body = net.backbone.body
    return body.layer1, body.layer2, body.layer3, body.layer4


def _block_counts(net) -> list[int]:
    return [len(stage) for stage in _residual_stages(net)]


def known_stages(net) -> list[str]:
    """Every stage name ``run_graph`` knows for ``net``: Matterport's layer and node names."""
    blocks = backbone_block_stages(_block_counts(net))
    rpn = ["rpn_class_logits", "rpn_class", "rpn_bbox", "ROI"]
    return ["input_image", "anchors", *blocks, *_FPN_STAGES, *rpn, *_PROPOSAL_STAGES, *_HEAD_STAGES]


def stage_name(stage, known: Sequence[str]) -> str:
    """The stage of ``known`` that ``stage`` names (a TensorFlow ":0" suffix is ignored), or
    KeyError listing the known ones."""
    text = str(stage)
    text = text[:-2] if text.endswith(":0") else text
    name = _ALIASES.get(text, text)
    if name not in known:
        raise KeyError(
            f"run_graph: unknown stage {stage!r}; known stages: {', '.join(known)} "
            "(outputs are (name, stage) pairs, e.g. ('proposals', 'ROI'))"
        )
    return name


def _nhwc(tensor: torch.Tensor) -> np.ndarray:
    return tensor.permute(0, 2, 3, 1).float().cpu().numpy()


def _dydx(deltas: torch.Tensor) -> np.ndarray:
    """(dx, dy, dw, dh) -> Matterport's (dy, dx, dh, dw)."""
    return xyxy_to_yxyx(deltas.float().cpu().numpy())


class StageValues:
    """Computes the stages of one molded batch on demand, each once."""

    def __init__(
        self, model, molded: np.ndarray, windows: np.ndarray, wanted: Sequence[str] = ()
    ) -> None:
        self.model, self.net, self.config = model, model.net, model.config
        blocks = backbone_block_stages(_block_counts(self.net))
        #: The residual blocks whose outputs were asked for: (stage, block) -> name.
        self.blocks = {blocks[name]: name for name in wanted if name in blocks}
        self.molded = molded
        self.shape = molded.shape[1:3]
        images = torch.as_tensor(molded).permute(0, 3, 1, 2)
        self.images = images.to(model.device, model.dtype)
        windows_xyxy = xyxy_to_yxyx(np.asarray(windows, dtype=np.float64))
        self.windows = torch.as_tensor(windows_xyxy, dtype=model.dtype, device=model.device)
        self.cache: dict[str, object] = {}

    def _once(self, key: str, compute: Callable[[], object]):
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]

    # --- the network's stages, in its own layouts
    def backbone(self) -> list[torch.Tensor]:
        return self._once("backbone", self._run_backbone)

    def _run_backbone(self) -> list[torch.Tensor]:
        """The backbone's [C2, C3, C4, C5], keeping the outputs of the blocks asked for."""
        stages = _residual_stages(self.net)
        hooks = [
            stages[stage][block].register_forward_hook(self._keeper(name))
            for (stage, block), name in self.blocks.items()
        ]
        try:
            return self.net.backbone(self.images)
        finally:
            for hook in hooks:
                hook.remove()

    def _keeper(self, name: str):
        def keep(module, inputs, output) -> None:
            self.cache[name] = output

        return keep

    def features(self) -> list[torch.Tensor]:
        return self._once("features", lambda: self.net.fpn(self.backbone()))

    def rpn(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._once("rpn", lambda: self.net.rpn_outputs(self.features()))

    def proposal_steps(self) -> ProposalSteps:
        def compute():
            objectness, deltas = self.rpn()
            return self.net.proposal_steps(objectness, deltas, self.shape, self.windows)

        return self._once("proposal_steps", compute)

    def rois(self) -> tuple[torch.Tensor, torch.Tensor]:
        boxes, _, index = self.proposal_steps().proposals()
        return boxes, index

    def box_outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._once("box", lambda: self.net.box_predictions(self.features(), *self.rois()))

    def found(self) -> dict[str, torch.Tensor]:
        def compute():
            logits, deltas = self.box_outputs()
            boxes, index = self.rois()
            return self.net.detections(logits, deltas, boxes, index, self.windows, self.shape)

        return self._once("found", compute)

    # --- Matterport's layouts
    def _per_image(self, values: torch.Tensor, index: torch.Tensor, length: int) -> np.ndarray:
        """[K, ...] rows grouped by image -> [B, length, ...] zero-padded."""
        values = values.float().cpu().numpy()
        index = index.cpu().numpy()
        out = np.zeros((len(self.molded), length) + values.shape[1:], dtype=np.float32)
        for i in range(len(self.molded)):
            rows = values[index == i][:length]
            out[i, : len(rows)] = rows
        return out

    def _proposal_step(self, field: str) -> np.ndarray:
        """A ProposalLayer node: [B, k, 4] normalised (y1, x1, y2, x2) boxes of each image's
        best anchors, or, for the NMS node, int32 [n] the rows of the first image's that
        survive, best first (Matterport's node was that of the batch's first image)."""
        steps = self.proposal_steps()
        if field == "keep":
            first = steps.keep[steps.image_index[steps.keep] == 0]
            return first.cpu().numpy().astype(np.int32)
        boxes = self.model.normalised_yxyx(getattr(steps, field), self.shape)
        return boxes.reshape(len(self.molded), -1, 4)

    def get(self, stage: str) -> np.ndarray:
        cfg = self.config
        if stage == "input_image":
            return self.molded
        if stage == "anchors":
            return self.model.get_anchors(self.shape)
        if stage in self.blocks.values():
            self.backbone()
            return _nhwc(self.cache[stage])
        if stage in _PROPOSAL_STAGES:
            return self._proposal_step(_PROPOSAL_STAGES[stage])
        if stage in _FPN_STAGES:
            return _nhwc(self.features()[_FPN_STAGES[stage]])
        if stage in ("rpn_class_logits", "rpn_class"):
            logit = self.rpn()[0].float().cpu()
            # One foreground logit is a 2-class softmax with logits (0, logit).
            pair = torch.stack([torch.zeros_like(logit), logit], dim=-1)
            return (pair if stage == "rpn_class_logits" else torch.softmax(pair, -1)).numpy()
        if stage == "rpn_bbox":
            return _dydx(self.rpn()[1])
        if stage == "ROI":
            boxes, index = self.rois()
            normalised = torch.as_tensor(self.model.normalised_yxyx(boxes, self.shape))
            return self._per_image(normalised, index, int(cfg.POST_NMS_ROIS_INFERENCE))
        if stage.startswith("mrcnn_") and stage not in ("mrcnn_detection", "mrcnn_mask"):
            logits, deltas = self.box_outputs()
            _, index = self.rois()
            value = {
                "mrcnn_class_logits": logits,
                "mrcnn_class": torch.softmax(logits.float(), dim=1),
                "mrcnn_bbox": torch.as_tensor(_dydx(deltas)),
            }[stage]
            return self._per_image(value, index, int(cfg.POST_NMS_ROIS_INFERENCE))
        found = self.found()
        limit = int(cfg.DETECTION_MAX_INSTANCES)
        if stage == "mrcnn_detection":
            boxes = torch.as_tensor(self.model.normalised_yxyx(found["boxes"], self.shape))
            rows = torch.cat(
                [
                    boxes,
                    found["class_ids"][:, None].float().cpu(),
                    found["scores"][:, None].float().cpu(),
                ],
                dim=1,
            )
            return self._per_image(rows, found["image_index"], limit)
        logits = self.net.mask_logits(self.features(), found["boxes"], found["image_index"])
        masks = torch.sigmoid(logits.float()).permute(0, 2, 3, 1)  # [D, M, M, C]
        return self._per_image(masks, found["image_index"], limit)

"""Stage outputs by Matterport's layer names, for ``MaskRCNN.run_graph``.

Matterport's notebooks inspect the network by asking Keras for named layer outputs
(``model.keras_model.get_layer("ROI").output``). Here the same names select the equivalent
stage of :class:`mrcnn.model.network.MaskRCNNNet`, computed once per call and converted to
Matterport's layouts: feature maps [B, H, W, C], deltas (dy, dx, log dh, log dw), boxes
(y1, x1, y2, x2) normalised in the molded image, zero-padded per image.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from mrcnn.boxes import xyxy_to_yxyx

#: Matterport's names of the four backbone outputs (res4's last block depends on the depth).
_BACKBONE_STAGES = {"res2c_out": 0, "res3d_out": 1, "res4f_out": 2, "res4w_out": 2, "res5c_out": 3}
_FPN_STAGES = {f"fpn_p{level}": level - 2 for level in range(2, 7)}

#: Every stage ``run_graph`` knows: Matterport's layer names plus a few plain aliases.
RUN_GRAPH_STAGES = (
    ["input_image", "anchors", *_BACKBONE_STAGES, *_FPN_STAGES]
    + ["rpn_class_logits", "rpn_class", "rpn_bbox", "ROI"]
    + ["mrcnn_class_logits", "mrcnn_class", "mrcnn_bbox", "mrcnn_detection", "mrcnn_mask"]
)
_ALIASES = {
    "proposals": "ROI",
    "rois": "ROI",
    "input_anchors": "anchors",
    "detections": "mrcnn_detection",
}


def _stage_name(stage) -> str:
    """The known stage ``stage`` names, or KeyError listing the known ones."""
    name = _ALIASES.get(str(stage), str(stage))
    if name not in RUN_GRAPH_STAGES:
        raise KeyError(
            f"run_graph: unknown stage {stage!r}; known stages: {', '.join(RUN_GRAPH_STAGES)} "
            "(outputs are (name, stage) pairs, e.g. ('proposals', 'ROI'))"
        )
    return name


def _nhwc(tensor: torch.Tensor) -> np.ndarray:
    return tensor.permute(0, 2, 3, 1).float().cpu().numpy()


def _dydx(deltas: torch.Tensor) -> np.ndarray:
    """(dx, dy, dw, dh) -> Matterport's (dy, dx, dh, dw)."""
    return xyxy_to_yxyx(deltas.float().cpu().numpy())


class _StageValues:
    """Computes the stages of one molded batch on demand, each once."""

    def __init__(self, model, molded: np.ndarray, windows: np.ndarray) -> None:
        self.model, self.net, self.config = model, model.net, model.config
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
        return self._once("backbone", lambda: self.net.backbone(self.images))

    def features(self) -> list[torch.Tensor]:
        return self._once("features", lambda: self.net.fpn(self.backbone()))

    def rpn(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._once("rpn", lambda: self.net.rpn_outputs(self.features()))

    def rois(self) -> tuple[torch.Tensor, torch.Tensor]:
        def compute():
            objectness, deltas = self.rpn()
            boxes, _, index = self.net.proposals(objectness, deltas, self.shape, self.windows)
            return boxes, index

        return self._once("rois", compute)

    def box_outputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self._once("box", lambda: self.net.box_predictions(self.features(), *self.rois()))

    def found(self) -> dict[str, torch.Tensor]:
        def compute():
            logits, deltas = self.box_outputs()
            boxes, index = self.rois()
            return self.net.detections(logits, deltas, boxes, index, self.windows)

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

    def get(self, stage: str) -> np.ndarray:
        cfg = self.config
        if stage == "input_image":
            return self.molded
        if stage == "anchors":
            return self.model.get_anchors(self.shape)
        if stage in _BACKBONE_STAGES:
            return _nhwc(self.backbone()[_BACKBONE_STAGES[stage]])
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

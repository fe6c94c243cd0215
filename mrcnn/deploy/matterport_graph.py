"""The export graph of Matterport's network (``NETWORK_FLAVOUR = "matterport"``, what ``.h5``
models run in), written with operators ONNX has.

The stages are :mod:`mrcnn.modeling.matterport`'s, in its normalised coordinates of the padded
input, changed only where they cannot be exported (as :mod:`mrcnn.deploy.graph` does for
torchvision's):

- **crop_and_resize** (Matterport's PyramidROIAlign) becomes ``torchvision.ops.roi_align`` on
  each level (ONNX ``RoiAlign``, half-pixel mode, one sample per bin), on a box widened so that
  its bin centres fall on crop_and_resize's sample points: S samples from the box's first edge
  to its last, ``step = (end - start) * (side - 1) / (S - 1)`` apart, are the centres of S bins
  of that width starting half a step before the first. Both interpolate bilinearly between the
  same four pixels. They would differ for samples outside the feature map, where
  crop_and_resize gives 0 and RoiAlign the edge's value: boxes are clipped into the image, so
  none is, but for the last sample of a box ending on the edge, which float rounding can land a
  hair past it; :mod:`mrcnn.modeling.crop_and_resize` reads the edge there too.
- **The proposal layer** ranks by probability, ties by index as TensorFlow's top_k, in a way no
  runtime's TopK can reorder (:func:`stable_top_k`), and runs NMS on the ranks, as the PyTorch
  stage does.
- **Per-class NMS** of the detection layer shifts each class's boxes (coordinates in [0, 1]) by
  2 per class and runs one NMS.
- The coordinates are computed in float32 (the PyTorch stages normalise in float64, as numpy
  does): results agree to float rounding.

The graph's outputs are those of :class:`mrcnn.deploy.graph.InferenceGraph`: boxes in
network-input pixels (x1, y1, x2, y2); :mod:`mrcnn.deploy.runtime` unmolds them as
Matterport does (:mod:`mrcnn.deploy.matterport_runtime`).
"""

from __future__ import annotations

import torch
from torchvision.ops import nms, roi_align

from mrcnn.deploy.graph import InferenceGraph, nms_within_groups
from mrcnn.modeling.matterport import apply_deltas, clip_to_window, roi_levels
from mrcnn.modeling.network import MaskRCNNNet
from mrcnn.structures.boxes import normalise_boxes

#: Normalised coordinates lie in [0, 1]: shifting class g by 2 g keeps classes apart in NMS.
NORMALISED_SPAN = 2.0


class MatterportInferenceGraph(InferenceGraph):
    """:class:`~mrcnn.deploy.graph.InferenceGraph` with Matterport's stages; same inputs and
    outputs. Boxes between the stages are normalised (x1, y1, x2, y2) of the padded input."""

    def __init__(self, net: MaskRCNNNet, image_shape: tuple[int, int]) -> None:
        super().__init__(net, image_shape)
        height, width = self.image_shape
        scale = torch.tensor([width - 1, height - 1, width - 1, height - 1], dtype=torch.float32)
        shift = torch.tensor([0.0, 0.0, 1.0, 1.0])
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("shift", shift, persistent=False)
        # normalised in float64 once, as the PyTorch stage does (a float32 rounding of its own
        # would move anchors by an ulp, and NMS of near-equal proposals can turn on one)
        normalised = normalise_boxes(self.anchors.double(), self.image_shape).float()
        self.register_buffer("unit_normalised", normalised, persistent=False)
        self.register_buffer("unit_window", torch.tensor([0.0, 0.0, 1.0, 1.0]), persistent=False)
        self.span = NORMALISED_SPAN

    def normalised(self, boxes: torch.Tensor) -> torch.Tensor:
        """[N, 4] input pixels -> normalised (Matterport's ``norm_boxes``)."""
        return (boxes - self.shift) / self.scale

    def output_boxes(self, boxes: torch.Tensor) -> torch.Tensor:
        """Normalised [D, 4] -> input pixels (Matterport's ``denorm_boxes`` before rounding)."""
        return boxes * self.scale + self.shift

    def proposals(
        self, objectness: torch.Tensor, deltas: torch.Tensor, window: torch.Tensor
    ) -> torch.Tensor:
        """Matterport's proposal layer for one image (:func:`mrcnn.modeling.matterport.
        proposal_steps`): [K, 4] normalised proposals, best first (``window`` is not used:
        proposals are clipped to the whole input, as Matterport's are)."""
        cfg = self.config
        k = min(int(cfg.PRE_NMS_LIMIT), objectness.shape[1])
        top = stable_top_k(torch.sigmoid(objectness[0]), k)
        std = self._std(cfg.RPN_BBOX_STD_DEV, deltas)
        refined = apply_deltas(self.unit_normalised[top], deltas[0, top] * std)
        boxes = clip_to_window(refined, self.unit_window)
        ranks = torch.arange(k, 0, -1, dtype=boxes.dtype)  # NMS in top_k's order, as Keras
        kept = nms(boxes, ranks, float(cfg.RPN_NMS_THRESHOLD))
        return boxes[kept[: int(cfg.POST_NMS_ROIS_INFERENCE)]]

    def roi_align(self, features, boxes: torch.Tensor, size: int) -> torch.Tensor:
        """Matterport's PyramidROIAlign (crop_and_resize on the level of
        :func:`~mrcnn.modeling.matterport.roi_levels`) of normalised [K, 4] boxes:
        [K, C, size, size], in the order of ``boxes``."""
        levels = roi_levels(boxes, self.image_shape) - 2
        pooled, taken = [], []
        for level, feature in enumerate(features[:4]):
            index = torch.nonzero(levels == level).squeeze(1)
            height, width = feature.shape[-2:]
            rois = crop_boxes(boxes[index], height, width, size)
            pooled.append(roi_align(feature, rois, size, 1.0, 1, True))
            taken.append(index)
        return torch.index_select(torch.cat(pooled), 0, torch.argsort(torch.cat(taken)))

    def detections(
        self,
        class_logits: torch.Tensor,
        deltas: torch.Tensor,
        rois: torch.Tensor,
        window: torch.Tensor,
        min_score: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Matterport's detection layer for one image (:func:`mrcnn.modeling.matterport.
        detections`): the top class of each ROI, at least ``min_score``, per-class NMS, the
        best DETECTION_MAX_INSTANCES.

        Args:
            class_logits: [K, C]; deltas: [K, C, 4]; rois: [K, 4] normalised; window: [4]
            input pixels; min_score: [].
        Returns:
            boxes [D, 4] normalised, class_ids int64 [D], scores [D]; best first.
        """
        cfg = self.config
        scores, cls = torch.softmax(class_logits, dim=1).max(dim=1)
        # a gather, not deltas[arange(K), cls]: K is data-dependent, which arange cannot take
        class_deltas = deltas.gather(1, cls[:, None, None].expand(-1, 1, 4)).squeeze(1)
        std = self._std(cfg.BBOX_STD_DEV, deltas)
        boxes = clip_to_window(apply_deltas(rois, class_deltas * std), self.normalised(window))
        keep = torch.nonzero((cls > 0) & (scores >= min_score)).squeeze(1)
        kept = nms_within_groups(
            boxes[keep], scores[keep], cls[keep], float(cfg.DETECTION_NMS_THRESHOLD), self.span
        )
        keep = keep[kept[: int(cfg.DETECTION_MAX_INSTANCES)]]
        return boxes[keep], cls[keep], scores[keep]


def stable_top_k(values: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` largest of ``values`` [N], best first, ties in index order
    (:func:`mrcnn.modeling.proposals.stable_top_k`, TensorFlow's top_k), in any runtime.

    Why not TopK alone: probabilities near 1 tie by the hundred in float32, and runtimes order
    ties differently (OpenVINO's TopK need not keep index order). Here TopK gives only the k-th
    value; the k chosen are those above it and the first (by index: NonZero's order) of those
    equal to it; their order comes from a TopK over unique integer keys (the rank of the value
    among the distinct values chosen, then the index), which no tie can reorder.

    A NaN (a diverged model) ranks above every number, as in the PyTorch model; compared as
    NaN, it would match neither ``>`` nor ``==`` and leave fewer than k chosen.
    """
    values = torch.where(torch.isnan(values), torch.full_like(values, float("inf")), values)
    kth = torch.topk(values, k).values[-1]
    above = torch.nonzero(values > kth).squeeze(1)
    at_kth = torch.nonzero(values == kth).squeeze(1)
    chosen = torch.cat([above, at_kth[: k - above.shape[0]]])
    torch._check(chosen.shape[0] == k)
    ordered, order = torch.topk(values[chosen], k)
    fresh = torch.cat([torch.ones(1, dtype=torch.bool), ordered[1:] != ordered[:-1]])
    rank = torch.cumsum(fresh.to(torch.int64), 0) - 1  # 0 for the best value, ...
    index = chosen[order]
    key = rank * values.shape[0] + index  # unique; below 2**31 for k * N below it
    return index[torch.topk(-key, k).indices]


def crop_boxes(boxes: torch.Tensor, height: int, width: int, size: int) -> torch.Tensor:
    """ROIAlign rows [K, 5] (0, x1, y1, x2, y2) on a ``height`` x ``width`` map whose
    half-pixel-mode bin centres (one sample per bin, ``size`` bins) are crop_and_resize's
    samples of the normalised [K, 4] ``boxes`` (see the module's docstring)."""
    first = torch.stack([boxes[:, 0] * (width - 1), boxes[:, 1] * (height - 1)], dim=1)
    last = torch.stack([boxes[:, 2] * (width - 1), boxes[:, 3] * (height - 1)], dim=1)
    step = (last - first) / (size - 1)
    # start = first + 0.5 - step / 2 (half-pixel mode subtracts 0.5 from every coordinate) and
    # end = start + size * step, written without Add: the int8 quantizer leaves Multiply,
    # Subtract and Divide alone (mrcnn.deploy.int8), and a pyramid level that gets no box on
    # the calibration images would leave an Add's quantizer without values
    start = first - (step * 0.5 - 0.5)
    end = start - step * float(-size)
    return torch.cat([torch.zeros_like(boxes[:, :1]), start, end], dim=1)

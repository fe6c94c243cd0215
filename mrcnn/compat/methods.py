"""The MaskRCNN methods of Matterport's API beyond detect/train/load_weights/find_last.

:class:`MatterportMethods` is a mixin of :class:`mrcnn.model.MaskRCNN`; it uses the facade's
``net``, ``config``, ``model_dir`` and ``detect`` machinery. Boxes it returns are Matterport's
(y1, x1, y2, x2), normalised where Matterport's were (anchors, ROIs, detections of run_graph).
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from mrcnn.compat.api import compose_image_meta, image_meta_of, norm_yxyx
from mrcnn.config import Config
from mrcnn.modeling.anchors import anchors_for_config
from mrcnn.modeling.run_graph import StageValues, known_stages, stage_name
from mrcnn.structures.boxes import xyxy_to_yxyx
from mrcnn.structures.image import mold_batch, paste_masks
from mrcnn.structures.resize_plan import ImageMeta
from mrcnn.training.layers import LAYER_PRESETS, set_trainable
from mrcnn.weights import loading as weights
from mrcnn.weights.checkpoint import run_dir_of

#: Matterport's Keras layer names -> this network's parameter-name prefixes (for set_trainable).
KERAS_LAYER_GROUPS = {
    ("conv1", "bn_conv1"): r"backbone\.body\.(conv1|bn1)",
    ("res2a_branch2a", "bn2a_branch2a"): r"backbone\.body\.layer1",
    ("res3a_branch2a", "bn3a_branch2a"): r"backbone\.body\.layer2",
    ("res4a_branch2a", "bn4a_branch2a"): r"backbone\.body\.layer3",
    ("res5a_branch2a", "bn5a_branch2a"): r"backbone\.body\.layer4",
    ("fpn_c5p5", "fpn_p2"): r"fpn",
    ("rpn_model", "rpn_conv_shared"): r"rpn",
    ("mrcnn_class_conv1", "mrcnn_class_logits", "mrcnn_bbox_fc"): r"box_head",
    ("mrcnn_mask_conv1", "mrcnn_mask"): r"mask_head",
}


class MatterportHost(Protocol):
    """What :class:`MatterportMethods` uses of the class it is mixed into (the facade,
    :class:`mrcnn.maskrcnn.MaskRCNN`): its public attributes and methods, nothing private.
    ``tests/compat/test_methods.py`` checks that the mixin uses no other name of its host."""

    config: Config
    net: nn.Module
    epoch: int
    log_dir: Path | None
    checkpoint_path: str | None
    anchor_shape: tuple[int, int] | None

    @property
    def device(self) -> torch.device: ...

    @property
    def dtype(self) -> torch.dtype: ...

    def inference_context(self) -> AbstractContextManager: ...

    def unmold_one(
        self, found: dict, index: int, meta: ImageMeta, input_shape, mask_format: str = "dense"
    ) -> dict: ...


class MatterportMethods:
    """Matterport's MaskRCNN methods, on this package's network (mixed into MaskRCNN, which
    provides what :class:`MatterportHost` lists)."""

    net: nn.Module

    # ------------------------------------------------------------------ Keras leftovers
    @property
    def keras_model(self):
        raise AttributeError(
            "MaskRCNN has no keras_model: its network is the torch.nn.Module model.net "
            "(model.net.parameters(), model.net.state_dict(); model.run_graph for stage outputs)"
        )

    def find_trainable_layer(self, layer: nn.Module) -> nn.Module:
        """The layer itself: there are no TimeDistributed wrappers to look inside."""
        return layer

    def get_trainable_layers(self) -> list[nn.Module]:
        """Modules holding parameters of their own (convolutions, BatchNorms, linear layers)."""
        return [
            module
            for module in self.net.modules()
            if any(True for _ in module.parameters(recurse=False))
        ]

    def set_trainable(self, layer_regex: str, keras_model=None, indent: int = 0, verbose: int = 1):
        """Train only the layers ``layer_regex`` selects; freeze the rest.

        Args:
            layer_regex: a ``layers`` preset ("heads", "3+", "all", ...), a regular expression
                over this network's parameter names, or one over Matterport's Keras layer names
                (e.g. ``r"(mrcnn\\_.*)|(rpn\\_.*)|(fpn\\_.*)"``), translated to the same layers.
            keras_model, indent: Matterport's recursion arguments, unused.
        Returns:
            the trainable parameter names.
        """
        del keras_model, indent
        trainable = set_trainable(self.net, _translate_layer_regex(layer_regex))
        if verbose:
            print(f"Selecting layers to train: {len(trainable)} tensors match {layer_regex!r}")
        return trainable

    def set_log_dir(self, model_path: str | None = None) -> None:
        """Continue the run folder and epoch of ``model_path`` (one of this package's
        checkpoints), or start a new run (its folder is made when training starts)."""
        self.epoch, self.log_dir = 0, None
        if model_path and run_dir_of(model_path) is not None:
            match = re.search(r"_(\d{4,})\.pt$", str(model_path))
            self.epoch = int(match.group(1)) if match else 0
            self.log_dir = run_dir_of(model_path)
            self.checkpoint_path = str(model_path)

    def get_imagenet_weights(self) -> str:
        """Path of the ImageNet weights of the config's BACKBONE (torchvision's; downloaded
        once into the cache), for ``load_weights``."""
        return str(weights.pretrained_file(f"imagenet-{self.config.BACKBONE}"))

    # ------------------------------------------------------------------ molding
    def mold_inputs(self, images: Sequence[np.ndarray]):
        """(molded_images float32 [B, H, W, 3], image_metas [B, IMAGE_META_SIZE],
        windows int32 [B, 4] (y1, x1, y2, x2)) for H x W x 3 uint8 images."""
        batch, metas = mold_batch(list(images), self.config, torch.float32, "cpu")
        molded = batch.permute(0, 2, 3, 1).numpy()
        windows = np.stack([m.window_yxyx() for m in metas])
        image_metas = np.stack(
            [
                compose_image_meta(
                    0,
                    tuple(image.shape[:2]) + (3,),
                    molded.shape[1:],
                    window,
                    meta.scale[0],
                    np.zeros(int(self.config.NUM_CLASSES), dtype=np.int32),
                )
                for image, meta, window in zip(images, metas, windows, strict=True)
            ]
        )
        return molded, image_metas, windows

    def unmold_detections(
        self,
        detections: np.ndarray,
        mrcnn_mask: np.ndarray,
        original_image_shape: Sequence[int],
        image_shape: Sequence[int],
        window: Sequence[int],
    ):
        """Matterport-format detections of one image back to the original image.

        Args:
            detections: [N, 6] (y1, x1, y2, x2, class_id, score), boxes normalised in the molded
                image; rows after the first with class_id 0 are padding.
            mrcnn_mask: [N, h, w, NUM_CLASSES] soft masks.
            original_image_shape: (H, W, C); image_shape: molded (H, W, C); window: (y1, x1,
                y2, x2) of the image in the molded pixels.
        Returns:
            (boxes int32 [n, 4] (y1, x1, y2, x2) original pixels, class_ids int32 [n],
            scores float32 [n], masks bool [H, W, n]).
        """
        detections = np.asarray(detections)
        padding = np.flatnonzero(detections[:, 4] == 0)
        n = int(padding[0]) if len(padding) else len(detections)
        class_ids = detections[:n, 4].astype(np.int32)
        scores = detections[:n, 5].astype(np.float32)
        soft = np.asarray(mrcnn_mask)[np.arange(n), :, :, class_ids]
        height, width = image_shape[:2]
        scale = np.array([height - 1, width - 1, height - 1, width - 1], dtype=np.float64)
        pixels = detections[:n, :4] * scale + [0, 0, 1, 1]  # molded pixels, (y1, x1, y2, x2)
        wy1, wx1, wy2, wx2 = (float(v) for v in window)
        factor = np.array(
            [original_image_shape[0] / (wy2 - wy1), original_image_shape[1] / (wx2 - wx1)] * 2
        )
        boxes = (pixels - [wy1, wx1, wy1, wx1]) * factor
        keep = (boxes[:, 2] - boxes[:, 0] > 0) & (boxes[:, 3] - boxes[:, 1] > 0)
        boxes, class_ids, scores, soft = boxes[keep], class_ids[keep], scores[keep], soft[keep]
        shape = (int(original_image_shape[0]), int(original_image_shape[1]))
        masks = paste_masks(
            torch.as_tensor(soft, dtype=torch.float32),
            torch.as_tensor(xyxy_to_yxyx(boxes).copy(), dtype=torch.float32),
            shape,
        ).numpy()
        return np.round(boxes).astype(np.int32), class_ids, scores, masks

    def detect_molded(self, molded_images: np.ndarray, image_metas: np.ndarray, verbose: int = 0):
        """``detect`` on images already molded (:meth:`mold_inputs`, or
        :func:`~mrcnn.model.load_image_gt` plus :func:`~mrcnn.model.mold_image`).

        As in Matterport, the results are in the *molded* images' pixels (rois, and masks of
        the molded [H, W]), where load_image_gt's ground truth is, so that the inspect_model
        notebooks can compare the two; detections are still clipped to each meta's window.
        For results in the original images' pixels, use :meth:`detect`."""
        batch = torch.as_tensor(np.asarray(molded_images, dtype=np.float32)).permute(0, 3, 1, 2)
        batch = batch.to(self.device, self.dtype)
        metas = [image_meta_of(row) for row in np.asarray(image_metas).reshape(len(batch), -1)]
        windows = torch.tensor([m.window for m in metas], dtype=self.dtype, device=self.device)
        with _eval(self.net), torch.inference_mode(), self.inference_context():
            found = self.net(batch, windows)
        height, width = (int(v) for v in batch.shape[-2:])
        # Matterport unmolded with window = the whole molded image: no shift, no scale.
        as_molded = ImageMeta((height, width), (height, width), (0, 0, width, height), (1.0, 1.0))
        results = [self.unmold_one(found, i, as_molded, (height, width)) for i in range(len(batch))]
        if verbose:
            for i, r in enumerate(results):
                print(f"molded image {i}: {len(r['class_ids'])} instances")
        return results

    @staticmethod
    def normalised_yxyx(boxes: torch.Tensor, image_shape: Sequence[int]) -> np.ndarray:
        """[N, 4] (x1, y1, x2, y2) molded pixels -> float32 Matterport-normalised (y1, x1,
        y2, x2)."""
        return norm_yxyx(boxes.float().cpu().numpy(), image_shape)

    def get_anchors(self, image_shape: Sequence[int]) -> np.ndarray:
        """float32 [A, 4] anchors (y1, x1, y2, x2) of a molded ``image_shape``, normalised.

        As in Matterport, ``self.anchors`` keeps them in pixels (float32 [A, 4], y1, x1, y2,
        x2), which :func:`mrcnn.model.build_rpn_targets` takes."""
        self.anchor_shape = tuple(int(v) for v in image_shape[:2])
        # The swap of (y1, x1, y2, x2) back to (x1, y1, x2, y2) is the same swap.
        return norm_yxyx(xyxy_to_yxyx(self.anchors), image_shape)

    @property
    def anchors(self) -> np.ndarray:
        """float32 [A, 4] anchors (y1, x1, y2, x2) in pixels of the last molded input shape
        that :meth:`get_anchors` or ``detect`` used, as Matterport kept them."""
        shape = self.anchor_shape
        if shape is None:
            raise AttributeError(
                "model.anchors is set by model.get_anchors(image_shape) or model.detect(...); "
                "call one of them first"
            )
        anchors, _ = anchors_for_config(self.config, shape)  # cached per shape
        return xyxy_to_yxyx(anchors.numpy())

    # ------------------------------------------------------------------ run_graph
    def run_graph(self, images: Sequence[np.ndarray], outputs, image_metas=None) -> OrderedDict:
        """Outputs of named stages for ``images``, as numpy arrays in Matterport's layouts.

        Args:
            images: H x W x 3 uint8 images (molded as :meth:`mold_inputs` does).
            outputs: (name, stage) pairs; ``stage`` is a Matterport layer or node name that
                this network has the equivalent of (:func:`mrcnn.modeling.run_graph.known_stages`:
                every residual block's ``res4b_out`` ..., the FPN, RPN and heads, and the
                proposal layer's ``ROI/pre_nms_anchors:0``, ``ROI/refined_anchors:0``,
                ``ROI/refined_anchors_clipped:0`` and ``ROI/rpn_non_max_suppression:0``).
            image_metas: None: ``images`` are molded here. Given (as the inspect_model
                notebooks pass load_image_gt's meta), ``images`` are taken as the network's
                input as they are, and each meta's window is used, as Matterport did.
        Returns:
            OrderedDict name -> array, in the order asked.
        Raises:
            KeyError: an unknown stage, listing the known ones.
        """
        known = known_stages(self.net)
        wanted = [(name, stage_name(stage, known)) for name, stage in outputs]
        if image_metas is None:
            molded, _, windows = self.mold_inputs(images)
        else:
            molded = np.asarray(images, dtype=np.float32)
            rows = np.asarray(image_metas).reshape(len(molded), -1)
            windows = np.stack([image_meta_of(row).window_yxyx() for row in rows])
        values = StageValues(self, molded, windows, [stage for _, stage in wanted])
        with _eval(self.net), torch.inference_mode(), self.inference_context():
            result = OrderedDict((name, values.get(stage)) for name, stage in wanted)
        for name, value in result.items():
            print(f"{name:25} shape: {str(value.shape):20} dtype: {value.dtype}")
        return result

    def ancestor(self, tensor, name: str, checked=None) -> str | None:
        """Matterport's search of the Keras graph for a node, as its notebooks call it
        (``model.ancestor(pillar, "ROI/pre_nms_anchors:0")``): ``name`` itself when
        :meth:`run_graph` knows that stage, else None, as Matterport returned None for a
        node its graph did not have. ``tensor`` and ``checked`` are not needed: stages are
        found by name."""
        del tensor, checked
        try:
            stage_name(name, known_stages(self.net))
        except KeyError:
            return None
        return name


def _translate_layer_regex(layer_regex: str) -> str:
    """Our preset or parameter regex as given; a regex over Matterport's layer names mapped to
    the matching parameter prefixes."""
    if layer_regex in LAYER_PRESETS:
        return layer_regex
    try:
        pattern = re.compile(layer_regex)
    except re.error:
        return layer_regex  # set_trainable reports it
    groups = [
        prefix
        for names, prefix in KERAS_LAYER_GROUPS.items()
        if any(pattern.fullmatch(name) for name in names)
    ]
    if not groups:
        return layer_regex  # a regular expression over this network's parameter names
    if len(groups) == len(KERAS_LAYER_GROUPS):
        return r".*"
    return rf"^({'|'.join(groups)})\."


class _eval:
    """Evaluation mode for a block, restoring the previous mode after."""

    def __init__(self, net: nn.Module) -> None:
        self.net, self.was_training = net, net.training

    def __enter__(self) -> None:
        self.net.eval()

    def __exit__(self, *exc) -> None:
        self.net.train(self.was_training)

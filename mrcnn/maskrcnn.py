"""The :class:`MaskRCNN` facade (also ``mrcnn.model.MaskRCNN``): Matterport's workflow above
the network, the checkpoints and training. It is not an ``nn.Module`` (its network is
``model.net``); it loads weights in every supported format, runs detection on numpy images and
returns Matterport-style results.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mrcnn.compat.methods import MatterportMethods
from mrcnn.config import Config
from mrcnn.conventions import reconcile as reconcile_conventions
from mrcnn.modeling.backbone import frozen_batchnorm_is_untrained
from mrcnn.modeling.cpu_memory import keep_freed_memory
from mrcnn.modeling.network import MaskRCNNNet
from mrcnn.modeling.precision import inference_autocast
from mrcnn.structures.boxes import xyxy_to_yxyx
from mrcnn.structures.image import (
    ImageMeta,
    mold_batch,
    paste_masks,
    same_input_groups,
    unmold_boxes,
)
from mrcnn.structures.masks import BoxMasks
from mrcnn.structures.rgb import checked_images
from mrcnn.structures.transfer import to_host
from mrcnn.training.state import TrainingState
from mrcnn.training.trainer import TrainingSubject
from mrcnn.training.trainer import train as run_training
from mrcnn.weights import checkpoint as checkpoints
from mrcnn.weights import completeness, resolve
from mrcnn.weights import loading as weights_lib

__all__ = ["MaskRCNN", "MaskRCNNNet", "resolve_device"]

log = logging.getLogger(__name__)

#: Said when training starts from random weights with frozen BatchNorm: the random ResNet's
#: activations then grow to about 1e7 and every loss to about 1e6 (measured on balloon photos).
RANDOM_FROZEN_BN_NOTE = (
    "TRAIN_BN = False freezes the random backbone's BatchNorm, so its activations explode and "
    "the losses start near 1e6: from random weights train with TRAIN_BN = True "
    "(--set TRAIN_BN=True), or start from 'imagenet' or 'coco' weights"
)


def resolve_device(device: str | torch.device | None) -> torch.device:
    """ "auto"/None -> CUDA when available, else CPU; anything else as torch.device."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device} requested but CUDA is not available; use --device cpu")
    return device


class MaskRCNN(MatterportMethods):
    """Mask R-CNN with Matterport's interface.

    Args:
        mode: "training" or "inference".
        config: a :class:`mrcnn.config.Config` instance.
        model_dir: folder of run folders (checkpoints, logs); ``find_last`` searches it.
    """

    def __init__(self, mode: str, config, model_dir: str | os.PathLike = "logs") -> None:
        if mode not in ("training", "inference"):
            raise ValueError(f"mode={mode!r}: use 'training' or 'inference'")
        self.mode = mode
        self.config = config
        self.model_dir = Path(model_dir)
        if getattr(config, "CPU_THREADS", 0):
            torch.set_num_threads(int(config.CPU_THREADS))
        if getattr(config, "CPU_KEEP_FREED_MEMORY", True):
            keep_freed_memory()  # process-wide: the next image reuses this one's pages
        self.net = MaskRCNNNet(config)
        self.net.train(mode == "training")
        self.net.to(resolve_device(getattr(config, "DEVICE", "auto")))
        if getattr(config, "CHANNELS_LAST", False):
            self.net.to(memory_format=torch.channels_last)
        #: The run this model is in (epoch, step, run folder, checkpoint); training writes it.
        self.training_state = TrainingState()
        # Whether RANDOM_FROZEN_BN_NOTE was said (train() says it once, where it applies).
        self._said_random_frozen_bn = False
        #: (H, W) of the last molded input of ``detect``/``get_anchors`` (``model.anchors``'s).
        self.anchor_shape: tuple[int, int] | None = None

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        overrides: Mapping[str, Any] | Iterable[str] = (),
        *,
        config: Config | type[Config] | str | None = None,
        mode: str = "inference",
        model_dir: str | os.PathLike = "logs",
        exclude: Iterable[str] | None = None,
        on_note: Callable[[str], None] | None = None,
    ) -> MaskRCNN:
        """A model built with the config ``path``'s weights were trained with, and loaded.

        Args:
            path: a checkpoint file, "last" (the newest under ``model_dir`` of the config's
                NAME, or of the NAME in ``overrides`` if any when the config comes from the
                checkpoint), "coco", "imagenet" or another weights file (see
                :meth:`load_weights`), or "none": random initialisation, nothing loaded.
            overrides: ``{"KEY": value}`` or ``["KEY=VALUE", ...]`` applied to the config.
            config: None: the config saved in the checkpoint (without its DEVICE,
                CPU_THREADS and INFERENCE_PRECISION), TorchvisionCocoConfig for "coco", else
                the base Config. A Config class or a ``--config`` source (``module:Class``,
                a YAML/JSON file): that config instead. A Config instance: used as it is
                (``overrides`` must then be empty).
            mode, model_dir: as for the constructor; exclude: as for :meth:`load_weights`.
            on_note: called with each note of :meth:`load_weights` (default: logged).
        Raises:
            FileNotFoundError: "last" with no checkpoint under ``model_dir``.
            ValueError: a bad override, or overrides given with a Config instance.
        """
        if isinstance(config, Config):
            if overrides:
                raise ValueError("from_checkpoint: give overrides or a Config instance, not both")
        elif isinstance(config, type):
            config = config.from_overrides(overrides)
        if isinstance(config, Config):  # "last" of this config's NAME, as find_last
            path = resolve.resolve_weights(path, model_dir, {"NAME": config.NAME})
        else:
            path = resolve.resolve_weights(path, model_dir, overrides)
            config = resolve.config_for_weights(path, overrides, config)
        model = cls(mode, config, model_dir)
        if path.lower() == "none":
            notes = ["none: random initialisation, no weights loaded"]
            if mode == "training" and frozen_batchnorm_is_untrained(model.net.backbone):
                notes.append(RANDOM_FROZEN_BN_NOTE)
                model._said_random_frozen_bn = True
        else:
            notes = model.load_weights(path, exclude=exclude)
        for note in notes:
            if on_note is not None:
                on_note(note)
        return model

    # ------------------------------------------------------------------ placement
    def to(self, device_or_dtype) -> MaskRCNN:
        """Move the network to a device and/or dtype (``model.to(torch.float64)``)."""
        self.net.to(device_or_dtype)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.net.parameters()).dtype

    # ------------------------------------------------------------------ training state
    # Matterport's scripts read model.epoch and model.log_dir; these name training_state's.
    @property
    def epoch(self) -> int:
        return self.training_state.epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self.training_state.epoch = int(value)

    @property
    def global_step(self) -> int:
        """Optimiser steps taken so far (continued from a resumed checkpoint)."""
        return self.training_state.step

    @global_step.setter
    def global_step(self, value: int) -> None:
        self.training_state.step = int(value)

    @property
    def log_dir(self) -> Path | None:
        return self.training_state.log_dir

    @log_dir.setter
    def log_dir(self, value: str | os.PathLike | None) -> None:
        self.training_state.log_dir = None if value is None else Path(value)

    @property
    def checkpoint_path(self) -> str | None:
        """The checkpoint last loaded or written (``train`` continues its run folder)."""
        return self.training_state.checkpoint_path

    @checkpoint_path.setter
    def checkpoint_path(self, value: str | os.PathLike | None) -> None:
        self.training_state.checkpoint_path = None if value is None else str(value)

    @property
    def checkpoint_extras(self) -> dict:
        return self.training_state.extras

    @checkpoint_extras.setter
    def checkpoint_extras(self, value: dict) -> None:
        self.training_state.extras = dict(value)

    # ------------------------------------------------------------------ weights
    def find_last(self) -> str:
        """Path of the newest checkpoint of this config's NAME under ``model_dir``."""
        name = (self.config.NAME or "").lower() or None
        return str(checkpoints.find_last(self.model_dir, name))

    def load_weights(
        self,
        path_or_name: str | os.PathLike,
        exclude: Iterable[str] | None = None,
        by_name: bool = True,
    ) -> list[str]:
        """Load weights and return notes on what was adapted or skipped.

        Args:
            path_or_name: a file (this project's checkpoint, a torchvision Mask R-CNN state
                dict, a torchvision ResNet state dict, ``.pt``/``.pth``/``.safetensors``, a
                Matterport Keras ``.h5``, which selects NETWORK_FLAVOUR "matterport"), or
                "coco" (torchvision's COCO Mask R-CNN, ResNet-50), "imagenet" (the backbone's
                ImageNet weights) or "last" (:meth:`find_last`). Named weights are downloaded
                once into ``$TORCH_HOME/hub/checkpoints``.
            exclude: parameter names, prefixes or regular expressions to skip, or
                ["class-specific"] to skip the layers whose shape depends on NUM_CLASSES
                (Matterport's mrcnn_class_logits, mrcnn_bbox_fc, mrcnn_mask). Those layers are
                skipped anyway, with a note, when their shapes differ. For a .h5, Matterport's
                layer names (e.g. "mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask").
            by_name: accepted for Matterport compatibility; loading is always by name (in
                training a deeper ResNet's extra blocks are skipped, as Keras's was).

        The weights' conventions (input normalisation, box-coding std devs, anchors, ROIAlign
        and level rules; see :mod:`mrcnn.conventions`) are adopted into ``self.config`` for
        the layers loaded, each change named in a note, so that pretrained layers see what
        they were trained on. A conflicting value the user set is refused with
        :class:`~mrcnn.conventions.ConventionsError` unless listed in KEEP_CONVENTIONS.
        """
        del by_name
        source, label = self._weights_source(path_or_name)
        state, extras = weights_lib.load_state_dict_file(source)
        trained_with = weights_lib.trained_conventions(state, extras, self.config)
        flavour_notes = weights_lib.adopt_flavour(self.config, trained_with, label)
        if flavour_notes:
            self._rebuild_network()
        state, notes = weights_lib.to_network_state(state, self.config)
        notes = flavour_notes + notes
        exclude = weights_lib.translate_exclude(exclude, extras)  # Matterport's layer names
        training = self.mode == "training"  # may start from a deeper ResNet, or partial weights
        selected, skipped = weights_lib.select_for_network(
            self.net, state, exclude, source, training
        )
        if not training:
            completeness.require_complete(
                self.net, selected, source, self.config, completeness.made_for(extras), state
            )
        notes += self._adopt_conventions(trained_with, selected, label)
        notes += skipped + weights_lib.load_selected(self.net, selected, source)
        if extras.get("format") == "mrcnn":
            self.training_state = TrainingState.resumed(extras, source)
        for note in notes:
            log.info(note)
        return notes

    def _weights_source(self, path_or_name: str | os.PathLike) -> tuple[str, str]:
        """(file to read, label for notes) of :meth:`load_weights`'s ``path_or_name``:
        "last", "coco" and "imagenet" resolved to their files, anything else as given."""
        source = str(path_or_name)
        if source == "last":
            source = self.find_last()
            return source, source
        if source == "coco":
            if self.config.BACKBONE != weights_lib.COCO_BACKBONE:
                raise weights_lib.WeightsError(
                    f"torchvision's COCO weights are for BACKBONE={weights_lib.COCO_BACKBONE!r}, "
                    f"this config has {self.config.BACKBONE!r}; set BACKBONE = "
                    f"{weights_lib.COCO_BACKBONE!r}"
                )
            return str(weights_lib.pretrained_file("coco")), "the coco weights"
        if source == "imagenet":
            imagenet = weights_lib.pretrained_file(f"imagenet-{self.config.BACKBONE}")
            return str(imagenet), "the imagenet weights"
        return source, source

    def _adopt_conventions(
        self, trained_with: dict | None, selected: Mapping, label: str
    ) -> list[str]:
        """Adopt into ``self.config`` the conventions the weights were trained with, for the
        ``selected`` layers, and have the network's stages read them; notes on what changed
        (or that the weights record none)."""
        if trained_with is None:
            return [
                f"{label} records no conventions (normalisation, box coding, anchors, ROIAlign); "
                "the config's values are used"
            ]
        notes = reconcile_conventions(self.config, trained_with, selected, label)
        self.net.configure()  # the stages read the adopted values
        return notes

    def _rebuild_network(self) -> None:
        """A new network for the config's NETWORK_FLAVOUR, on the old one's device and mode."""
        device, dtype, training = self.device, self.dtype, self.net.training
        self.net = MaskRCNNNet(self.config).to(device=device, dtype=dtype).train(training)
        if getattr(self.config, "CHANNELS_LAST", False):
            self.net.to(memory_format=torch.channels_last)

    # ------------------------------------------------------------------ training
    def train(
        self,
        train_dataset,
        val_dataset,
        learning_rate: float,
        epochs: int,
        layers: str,
        augmentation=None,
        custom_callbacks=None,
        no_augmentation_sources=None,
        *,
        max_seconds: float | None = None,
    ) -> None:
        """Train (Matterport's meaning): see :mod:`mrcnn.training.trainer` and docs/training.md.

        Args:
            train_dataset, val_dataset: prepared :class:`mrcnn.dataset.Dataset` objects with
                NUM_CLASSES classes (``val_dataset`` may be None: no validation).
            learning_rate: the SGD learning rate (after warm-up).
            epochs: the final epoch number; training runs from ``self.epoch + 1`` to it.
            layers: "heads", "2+", "3+", "4+", "5+", "all", or a regular expression over
                parameter names (e.g. ``r"^(rpn|box_head)\\."``); the rest is frozen.
            augmentation: a torchvision.transforms.v2 transform (see
                :func:`mrcnn.training.augment.default_augmentation`) or None.
            custom_callbacks, no_augmentation_sources: Matterport arguments, not supported.
            max_seconds: a time box: stop before an epoch that would end more than this many
                seconds from now, judging by the last epoch (at least one epoch runs).
        """
        if self.mode != "training":
            raise ValueError("train() needs a model created with mode='training'")
        if custom_callbacks or no_augmentation_sources:
            raise ValueError(
                "custom_callbacks and no_augmentation_sources are Keras-specific and not "
                "supported; filter sources in the dataset and read metrics.jsonl instead"
            )
        if not self._said_random_frozen_bn and frozen_batchnorm_is_untrained(self.net.backbone):
            log.warning(RANDOM_FROZEN_BN_NOTE)
            self._said_random_frozen_bn = True
        subject = TrainingSubject(
            self.net, self.config, self.training_state, self.device, self.model_dir
        )
        run_training(
            subject,
            train_dataset,
            val_dataset,
            learning_rate,
            epochs,
            layers,
            augmentation,
            max_seconds=max_seconds,
        )

    def start_new_run(self) -> None:
        """Make the next ``train`` start a new run folder at epoch 1 from the loaded weights,
        instead of resuming the loaded checkpoint's run."""
        self.training_state = TrainingState()

    # ------------------------------------------------------------------ inference
    def detect(
        self, images: Sequence[np.ndarray], verbose: int = 0, *, mask_format: str = "dense"
    ) -> list[dict]:
        """Detect instances in a list of images.

        Args:
            images: H x W x 3 uint8 RGB arrays (H x W grayscale and H x W x 4 RGBA are
                converted); any number, run IMAGES_PER_GPU at a time. Images that mold to
                different input sizes run in separate batches, so an image's detections never
                depend on the other images in the list.
            verbose: 1 prints one line per image.
            mask_format: "dense" (Matterport's bool [H, W, N]) or "boxes": a
                :class:`mrcnn.structures.masks.BoxMasks` holding each mask only inside its box,
                whose memory does not grow with the image (use it for large photos).
        Returns:
            one dict per image:
            "rois" int32 [N, 4] (y1, x1, y2, x2) original-image pixels, rounded;
            "boxes" float32 [N, 4] (x1, y1, x2, y2) unrounded original-image pixels;
            "class_ids" int32 [N] (never 0, the background); "scores" float32 [N];
            "masks" bool [H, W, N] at the original resolution. Best score first.
        Raises:
            ValueError: an empty list, a non-array, a dtype other than uint8, a bad shape or a
                zero-size image, naming the image's position.
        """
        if mask_format not in ("dense", "boxes"):
            raise ValueError(f"mask_format={mask_format!r}: use 'dense' or 'boxes'")
        images = checked_images(images)
        was_training = self.net.training
        self.net.eval()
        results: list[dict | None] = [None] * len(images)
        step = int(self.config.IMAGES_PER_GPU)
        try:
            with torch.inference_mode():
                # Batch only images that mold to the same input, so that no image is padded
                # because of another and each result equals detect([image]).
                for group in same_input_groups(images, self.config):
                    for start in range(0, len(group), step):
                        chunk = group[start : start + step]
                        found = self._detect_batch([images[i] for i in chunk], mask_format)
                        for index, result in zip(chunk, found, strict=True):
                            results[index] = result
        finally:
            self.net.train(was_training)
        if verbose:
            for i, r in enumerate(results):
                print(
                    f"image {i}: {images[i].shape[1]}x{images[i].shape[0]}, "
                    f"{len(r['class_ids'])} instances"
                )
        return results

    def inference_context(self):
        """The context ``detect`` runs the network in: autocast to INFERENCE_PRECISION on this
        model's device (nothing for fp32). Whatever runs the network's stages for inference
        (detect_molded, run_graph, :func:`mrcnn.inspect.run_stages`) enters it, so that it
        computes what ``detect`` computes."""
        precision = str(getattr(self.config, "INFERENCE_PRECISION", "fp32"))
        return inference_autocast(precision, self.device, self.dtype)

    def _detect_batch(self, images: list[np.ndarray], mask_format: str) -> list[dict]:
        batch, metas = mold_batch(images, self.config, self.dtype, self.device)
        # Matterport's detect left model.anchors at this input's anchors (build_rpn_targets).
        self.anchor_shape = (int(batch.shape[-2]), int(batch.shape[-1]))
        windows = torch.tensor([m.window for m in metas], dtype=self.dtype, device=self.device)
        with self.inference_context():
            found = self.net(batch, windows)
        return [
            self.unmold_one(found, i, meta, batch.shape[-2:], mask_format)
            for i, meta in enumerate(metas)
        ]

    def unmold_one(
        self, found: dict, index: int, meta, input_shape, mask_format: str = "dense"
    ) -> dict:
        """Image ``index``'s detections of a batch as ``detect`` returns them, unmolded the
        way of the network's flavour (``input_shape``: the batch's padded (H, W))."""
        flavours_own = self.net.flavour.dense_unmold  # Matterport's unmolding, or None
        if flavours_own is not None and mask_format == "dense":
            return flavours_own(found, index, meta, input_shape)
        return _unmold_detections(found, found["image_index"] == index, meta, mask_format)


def _unmold_detections(
    found: dict, selected: torch.Tensor, meta: ImageMeta, mask_format: str = "dense"
) -> dict:
    boxes = unmold_boxes(found["boxes"][selected], meta)
    masks = found["masks"][selected]
    paste_dtype = masks.dtype if masks.dtype == torch.float64 else torch.float32
    masks, paste_boxes = masks.to(paste_dtype), boxes.to(paste_dtype)
    if mask_format == "boxes":
        full = _box_masks(masks, paste_boxes, meta.original_shape)
    else:
        full = to_host(paste_masks(masks, paste_boxes, meta.original_shape))
    boxes_np = boxes.float().cpu().numpy()
    return {
        "rois": np.round(xyxy_to_yxyx(boxes_np)).astype(np.int32),
        "boxes": boxes_np.astype(np.float32),
        "class_ids": found["class_ids"][selected].cpu().numpy().astype(np.int32),
        "scores": found["scores"][selected].float().cpu().numpy(),
        "masks": full,
    }


def _box_masks(masks: torch.Tensor, boxes: torch.Tensor, shape: tuple[int, int]) -> BoxMasks:
    """The instances as :class:`mrcnn.structures.masks.BoxMasks`: small masks and boxes,
    pasted lazily."""
    return BoxMasks((int(shape[0]), int(shape[1])), masks.cpu(), boxes.cpu())

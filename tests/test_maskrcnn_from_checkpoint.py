"""MaskRCNN.from_checkpoint and the config read back from a checkpoint
(mrcnn.weights.checkpoint)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrcnn.config import Config, TorchvisionCocoConfig
from mrcnn.model import MaskRCNN
from mrcnn.weights.checkpoint import checkpoint_path
from mrcnn.weights.resolve import RUNTIME_KEYS, config_for_weights, read_config, resolve_weights
from tests.helpers.tiny_model import save_tiny_checkpoint, tiny_model


class TinyConfig(Config):
    NAME = "tiny"
    BACKBONE = "resnet50"
    NUM_CLASSES = 3
    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = 128
    IMAGE_MAX_DIM = 128
    FPN_CLASSIF_FC_LAYERS_SIZE = 64
    DEVICE = "cpu"


def _same_weights(a: MaskRCNN, b: MaskRCNN) -> bool:
    # (on the CPU: a checkpoint loads on the config's DEVICE, "auto" when loaded, a GPU where
    # there is one, while tiny_model() is on the CPU)
    return all(
        torch.equal(x.cpu(), y.cpu())
        for x, y in zip(a.net.state_dict().values(), b.net.state_dict().values(), strict=True)
    )


def test_the_checkpoints_config_and_weights_come_back(tmp_path):
    path = save_tiny_checkpoint(tmp_path / "tiny.pt", CPU_THREADS=1)
    model = MaskRCNN.from_checkpoint(path, ["DETECTION_MIN_CONFIDENCE=0.5"])
    assert model.mode == "inference" and not model.net.training
    assert model.config.NUM_CLASSES == 3 and model.config.IMAGE_MAX_DIM == 128
    assert model.config.DETECTION_MIN_CONFIDENCE == 0.5  # the override on top
    assert model.config.CPU_THREADS == Config.CPU_THREADS  # the saving machine's is not kept
    assert _same_weights(model, tiny_model()) and model.checkpoint_path == str(path)
    image = np.zeros((64, 64, 3), np.uint8)
    assert model.detect([image])[0]["masks"].shape[:2] == (64, 64)


def test_a_given_config_class_or_instance_replaces_the_checkpoints(tmp_path):
    path = save_tiny_checkpoint(tmp_path / "tiny.pt")
    from_class = MaskRCNN.from_checkpoint(path, {"DETECTION_MAX_INSTANCES": 7}, config=TinyConfig)
    assert isinstance(from_class.config, TinyConfig)
    assert from_class.config.DETECTION_MAX_INSTANCES == 7
    assert from_class.config.POST_NMS_ROIS_INFERENCE == TinyConfig.POST_NMS_ROIS_INFERENCE
    instance = TinyConfig()
    assert MaskRCNN.from_checkpoint(path, config=instance, mode="training").config is instance
    with pytest.raises(ValueError, match="overrides or a Config instance, not both"):
        MaskRCNN.from_checkpoint(path, ["NUM_CLASSES=3"], config=instance)


def test_last_is_the_newest_checkpoint_of_the_configs_name(tmp_path):
    older = tmp_path / "tiny20240101T0000"
    newer = tmp_path / "tiny20250101T0000"
    other = tmp_path / "other20260101T0000"
    for run in (older, newer, other):
        run.mkdir()
    save_tiny_checkpoint(checkpoint_path(older, "tiny", 1))
    newest = save_tiny_checkpoint(checkpoint_path(newer, "tiny", 2))
    save_tiny_checkpoint(checkpoint_path(other, "other", 1))
    model = MaskRCNN.from_checkpoint("last", config=TinyConfig, model_dir=tmp_path)
    assert model.checkpoint_path == str(newest) and model.epoch == 1
    assert resolve_weights("last", tmp_path, ["NAME=tiny"]) == str(newest)
    assert resolve_weights("last", tmp_path).endswith("mrcnn_other_0001.pt")
    assert resolve_weights("coco", tmp_path) == "coco"
    with pytest.raises(FileNotFoundError, match="no checkpoint for NAME='nothing'"):
        MaskRCNN.from_checkpoint("last", ["NAME=nothing"], model_dir=tmp_path)


def test_none_gives_random_weights_and_says_so(tmp_path):
    notes = []
    model = MaskRCNN.from_checkpoint(
        "none", config=TinyConfig, mode="training", model_dir=tmp_path, on_note=notes.append
    )
    assert model.mode == "training" and model.epoch == 0 and model.checkpoint_path is None
    assert notes[0] == "none: random initialisation, no weights loaded"


@pytest.mark.parametrize("train_bn", [False, True])
def test_training_from_random_weights_with_frozen_batchnorm_says_what_to_set(tmp_path, train_bn):
    """From random weights, frozen BatchNorm gave losses near 1e6 on balloon photos."""
    notes = []
    MaskRCNN.from_checkpoint(
        "none", [f"TRAIN_BN={train_bn}"], config=TinyConfig, mode="training",
        model_dir=tmp_path, on_note=notes.append,
    )  # fmt: skip
    advice = [note for note in notes if "TRAIN_BN = True" in note]
    assert len(advice) == (0 if train_bn else 1)
    inference = []
    MaskRCNN.from_checkpoint(
        "none", ["TRAIN_BN=False"], config=TinyConfig, on_note=inference.append
    )
    assert inference == ["none: random initialisation, no weights loaded"]


def test_config_for_weights_choices(tmp_path):
    path = save_tiny_checkpoint(tmp_path / "tiny.pt")
    saved = read_config(path)
    assert saved["NUM_CLASSES"] == 3 and set(RUNTIME_KEYS) <= set(saved)
    assert read_config(tmp_path / "missing.pt") is None and read_config("coco") is None
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    assert read_config(tmp_path / "junk.pt") is None
    assert config_for_weights(path).DEVICE == Config.DEVICE  # TINY's "cpu" is not kept
    assert isinstance(
        config_for_weights("coco", ["DETECTION_MIN_CONFIDENCE=0.3"]), TorchvisionCocoConfig
    )
    assert type(config_for_weights("other.pth")).__mro__[1] is Config
    yaml = tmp_path / "c.yaml"
    yaml.write_text("NUM_CLASSES: 5\n")
    chosen = config_for_weights(path, {"IMAGE_MAX_DIM": 256}, str(yaml))
    assert (chosen.NUM_CLASSES, chosen.IMAGE_MAX_DIM) == (5, 256)


def test_config_for_a_matterport_h5_comes_from_its_shapes(tmp_path):
    from tests.helpers.keras_h5 import matterport_manifest, random_layers, write_keras_h5

    manifest = matterport_manifest("resnet50", num_classes=3, fc=32)
    h5 = write_keras_h5(tmp_path / "user.h5", manifest, random_layers(manifest, 1))
    config = config_for_weights(h5, ["IMAGE_MAX_DIM=256"])
    assert (config.BACKBONE, config.NUM_CLASSES, config.FPN_CLASSIF_FC_LAYERS_SIZE) == (
        "resnet50",
        3,
        32,
    )
    assert config.IMAGE_MAX_DIM == 256
    assert config_for_weights(h5, ["NUM_CLASSES=2"]).NUM_CLASSES == 2  # --set wins
    model = MaskRCNN.from_checkpoint(str(h5), config=config)  # loads whole: nothing left unset
    assert model.config.NETWORK_FLAVOUR == "matterport"

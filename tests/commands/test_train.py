"""``mrcnn train`` chooses its config: NUM_CLASSES from the dataset when nothing else chose it,
the settings a weights file carries (a checkpoint's, resuming its run or starting a new one on
other classes; a Matterport .h5's or its converted file's), and the coco weights' backbone."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mrcnn.cli import main
from mrcnn.weights.resolve import read_config
from tests.helpers.training import TinyConfig

#: TinyConfig as --set flags, without NUM_CLASSES: one short step per epoch.
_SETTINGS = {
    key: getattr(TinyConfig, key)
    for key in vars(TinyConfig)
    if key.isupper() and key not in ("NUM_CLASSES", "STEPS_PER_EPOCH", "VALIDATION_STEPS")
}
TINY = [f"{key}={value!r}" for key, value in _SETTINGS.items()]
TINY += ["STEPS_PER_EPOCH=1", "VALIDATION_STEPS=0"]


def _train(logs: Path, dataset: str, weights: str, epochs: int, *sets: str) -> int:
    """``mrcnn train``; each of ``sets`` is a KEY=VALUE for --set, or a flag such as --new-run."""
    argv = ["train", "--dataset", dataset, "--weights", weights, "--logs", str(logs)]
    flags = [a for s in sets for a in (("--set", s) if "=" in s else (s,))]
    return main([*argv, "--epochs", str(epochs), *flags])


def _one_blob_coco(root: Path, count: int = 30) -> str:
    """A COCO dataset of ``count`` 48 x 48 images with one square "blob" each: 2 classes."""
    images = root / "images"
    images.mkdir(parents=True)
    square = [8, 8, 30, 8, 30, 30, 8, 30]
    entries, annotations = [], []
    for i in range(1, count + 1):
        Image.fromarray(np.zeros((48, 48, 3), dtype=np.uint8)).save(images / f"{i}.png")
        entries.append({"id": i, "file_name": f"{i}.png", "height": 48, "width": 48})
        annotation = {"id": i, "image_id": i, "category_id": 1, "segmentation": [square]}
        annotations.append({**annotation, "bbox": [8, 8, 22, 22], "area": 484, "iscrowd": 0})
    categories = [{"id": 1, "name": "blob"}]
    data = {"images": entries, "annotations": annotations, "categories": categories}
    (root / "instances.json").write_text(json.dumps(data))
    return f"coco:{root / 'instances.json'}:{images}"


def test_num_classes_from_the_dataset_resume_keeps_settings_new_run_transfers(tmp_path, capsys):
    logs = tmp_path / "logs"
    assert _train(logs, "shapes:4:64", "none", 1, *TINY) == 0
    printed = capsys.readouterr().out
    assert "NUM_CLASSES = 4, from the dataset: 4 classes including the background" in printed
    (first,) = logs.glob("*/mrcnn_tiny_0001.pt")
    assert read_config(first)["NUM_CLASSES"] == 4

    # No flags: the run continues with the settings it was started with (not the defaults,
    # whose network differs: ResNet-101, 1024 px).
    assert _train(logs, "shapes:4:64", "last", 2) == 0
    capsys.readouterr()
    second = first.parent / "mrcnn_tiny_0002.pt"
    saved = read_config(second)
    assert saved["IMAGE_MAX_DIM"] == 64 and saved["BACKBONE"] == "resnet50"
    assert saved["STEPS_PER_EPOCH"] == 1 and saved["NUM_CLASSES"] == 4

    # A dataset of other classes cannot continue that run: one line, nothing written ...
    blobs = _one_blob_coco(tmp_path / "blobs")
    before = sorted(p.name for p in first.parent.iterdir())
    assert _train(logs, blobs, "last", 3) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "cannot resume" in err and "NUM_CLASSES = 4" in err
    assert sorted(p.name for p in first.parent.iterdir()) == before

    # ... but a new run from it can: its settings, the dataset's classes, new class layers.
    assert _train(logs, blobs, str(second), 1, "NAME='blobs'", "--new-run") == 0
    printed = capsys.readouterr().out
    assert "NUM_CLASSES = 2, from the dataset" in printed
    assert "class-specific layers" in printed and "differs from the file's 4" in printed
    (transferred,) = logs.glob("blobs*/mrcnn_blobs_0001.pt")
    saved = read_config(transferred)
    assert saved["NUM_CLASSES"] == 2 and saved["IMAGE_MAX_DIM"] == 64
    assert sorted(p.name for p in first.parent.iterdir()) == before


def test_a_chosen_num_classes_must_match_the_dataset(tmp_path, capsys):
    assert _train(tmp_path / "logs", "shapes:4:64", "none", 1, *TINY, "NUM_CLASSES=3") == 1
    err = capsys.readouterr().err
    assert "has 4 classes including the background" in err and "--set NUM_CLASSES=4" in err
    assert not list((tmp_path / "logs").glob("*/*.pt"))


def test_a_matterport_model_fine_tunes_on_other_classes_without_a_config(tmp_path, capsys):
    from tests.helpers.keras_h5 import matterport_manifest, random_layers, write_keras_h5

    manifest = matterport_manifest("resnet50", num_classes=2, fc=64)
    h5 = write_keras_h5(tmp_path / "mask_rcnn_balloon.h5", manifest, random_layers(manifest, 5))
    converted = tmp_path / "balloon.safetensors"
    assert main(["convert", str(h5), str(converted)]) == 0
    small = ["IMAGE_MIN_DIM=128", "IMAGE_MAX_DIM=128", "STEPS_PER_EPOCH=1", "VALIDATION_STEPS=0"]
    capsys.readouterr()
    assert _train(tmp_path / "logs", "shapes:8:64", str(converted), 1, *small) == 0
    printed = capsys.readouterr().out
    assert "NUM_CLASSES = 4, from the dataset" in printed
    assert "differs from the file's 2" in printed
    (checkpoint,) = (tmp_path / "logs").glob("*/*_0001.pt")
    saved = read_config(checkpoint)
    assert saved["NETWORK_FLAVOUR"] == "matterport" and saved["FPN_CLASSIF_FC_LAYERS_SIZE"] == 64
    assert saved["NUM_CLASSES"] == 4

    # The .h5 itself: its shapes give BACKBONE (ResNet-50, not the base Config's ResNet-101) and
    # the head size, the dataset NUM_CLASSES.
    assert _train(tmp_path / "from_h5", "shapes:8:64", str(h5), 1, *small) == 0
    assert "differs from the file's 2" in capsys.readouterr().out
    (checkpoint,) = (tmp_path / "from_h5").glob("*/*_0001.pt")
    saved = read_config(checkpoint)
    assert (saved["BACKBONE"], saved["FPN_CLASSIF_FC_LAYERS_SIZE"]) == ("resnet50", 64)
    assert saved["NETWORK_FLAVOUR"] == "matterport" and saved["NUM_CLASSES"] == 4


def test_coco_weights_bring_their_backbone_unless_another_was_chosen(tmp_path, monkeypatch, capsys):
    from mrcnn.maskrcnn import MaskRCNN

    seen = {}

    def from_checkpoint(weights, *args, config=None, exclude=None, **kwargs):
        seen.update(weights=weights, config=config, exclude=exclude)
        raise ValueError("stopped before loading (no download in tests)")

    monkeypatch.setattr(MaskRCNN, "from_checkpoint", staticmethod(from_checkpoint))
    assert _train(tmp_path, "shapes:4:64", "coco", 1) == 1
    printed = capsys.readouterr().out
    assert "BACKBONE = resnet50, the backbone of the coco weights" in printed
    assert seen["config"].BACKBONE == "resnet50" and seen["config"].NUM_CLASSES == 4
    assert seen["exclude"] == ["class-specific"]  # 4 classes, not COCO's 91

    seen.clear()
    assert _train(tmp_path, "shapes:4:64", "coco", 1, "BACKBONE=resnet101") == 1
    captured = capsys.readouterr()
    assert "--weights coco are torchvision's resnet50 Mask R-CNN" in captured.err
    assert "train: shapes" not in captured.out and not seen  # refused before the dataset


def test_help_says_where_the_config_comes_from(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "NUM_CLASSES comes from the dataset" in text and "BACKBONE is resnet50" in text

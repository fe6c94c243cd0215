"""The offline demo end to end, shrunk to seconds (the real run is `make demo`)."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import torch

from mrcnn.cli import main
from mrcnn.demo import _LOSS_COLUMNS, DEMO_IMAGE_SIZE, ShapesDemoConfig, run_demo
from mrcnn.evaluation import evaluate_dataset
from mrcnn.splash.filter import color_splash


def test_demo_writes_report_pictures_and_video(tmp_path):
    torch.manual_seed(0)  # the model starts from random weights
    out = tmp_path / "demo"
    # Two steps cannot train a detector (it calls everything background); every foreground
    # class of every ROI with no score cutoff gives the pictures and splash something to show.
    overrides = {
        "STEPS_PER_EPOCH": 2,
        "VALIDATION_STEPS": 1,
        "WORKERS": 0,
        "DETECTION_MIN_CONFIDENCE": 0.0,
        "DETECTION_CLASS_MODE": "all_classes",
    }
    report = run_demo(
        out,
        train_seconds=0,
        train_images=8,
        val_images=3,
        progress=False,
        overrides=overrides,
    )
    text = (out / "report.md").read_text()
    assert "mask mAP@0.5" in text and "| train |" in text
    # One finished epoch, with every training loss and the validation loss in the table.
    assert len(report.epochs) == 1
    assert set(report.epochs[0]) == {"epoch", *_LOSS_COLUMNS}
    assert all(math.isfinite(report.epochs[0][k]) for k in _LOSS_COLUMNS)
    assert text.count("\n| 1 | ") == 1
    # The reported mAP is the one the saved model scores on the validation images.
    assert f"**{report.map50:.3f}**" in text
    model, val = _saved_model_and_val(out, overrides)
    assert report.map50 == evaluate_dataset(model, val, iou_thresholds=(0.5,), progress=False).map50
    assert json.loads((out / "report.json").read_text())["map50"] == report.map50
    # A detections picture and a splash picture per validation scene (3 here), and each
    # splash is exactly color_splash of the enlarged scene with that model's detected masks.
    ids = list(val.image_ids)
    assert report.images == [f"{kind}_{i}.png" for i in ids for kind in ("detections", "splash")]
    splashed = 0
    for image_id in ids:
        image = val.load_image(image_id)
        masks = model.detect([image])[0]["masks"]
        splashed += masks.any()
        big = image.repeat(3, axis=0).repeat(3, axis=1)
        expected = color_splash(big, masks.repeat(3, axis=0).repeat(3, axis=1))
        written = cv2.cvtColor(cv2.imread(str(out / f"splash_{image_id}.png")), cv2.COLOR_BGR2RGB)
        np.testing.assert_array_equal(written, expected)
        drawn = cv2.imread(str(out / f"detections_{image_id}.png"))
        assert drawn.shape[:2] == big.shape[:2]
        assert (drawn != big[..., ::-1]).any() == masks.any()  # drawn only where detected
    assert splashed, "no scene had a detection: the splash comparison checked nothing"
    # The splashed clip has every frame of the 48-frame source, at the scene's size.
    capture = cv2.VideoCapture(str(out / report.video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 48
    size = (capture.get(cv2.CAP_PROP_FRAME_HEIGHT), capture.get(cv2.CAP_PROP_FRAME_WIDTH))
    assert size == (DEMO_IMAGE_SIZE, DEMO_IMAGE_SIZE)
    capture.release()


def _saved_model_and_val(out, overrides: dict):
    """The demo's checkpoint as an inference model, and its 3 validation images."""
    from mrcnn.datasets.shapes import ShapesDataset
    from mrcnn.model import MaskRCNN

    val = ShapesDataset()
    val.load_shapes(3, DEMO_IMAGE_SIZE, DEMO_IMAGE_SIZE, seed=0, subset="val")
    val.prepare()
    model = MaskRCNN("inference", ShapesDemoConfig.from_overrides(overrides), out / "logs")
    model.load_weights(model.find_last())
    return model, val


def test_demo_config_is_valid_and_small():
    config = ShapesDemoConfig()
    assert config.NUM_CLASSES == 4 and config.BACKBONE == "resnet18"


def test_demo_help(capsys):
    try:
        main(["demo", "--help"])
    except SystemExit as exit_:
        assert exit_.code == 0
    assert "--train-seconds" in capsys.readouterr().out

"""The offline demo end to end, shrunk to seconds (the real run is `make demo`)."""

from __future__ import annotations

import cv2

from mrcnn.cli import main
from mrcnn.demo import ShapesDemoConfig, run_demo


def test_demo_writes_report_pictures_and_video(tmp_path):
    out = tmp_path / "demo"
    overrides = {"STEPS_PER_EPOCH": 2, "VALIDATION_STEPS": 1, "WORKERS": 0}
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
    assert len(report.epochs) == 1 and "loss" in report.epochs[0]
    # The reported mAP is the one the saved model scores on the validation images.
    assert f"**{report.map50:.3f}**" in text
    assert report.map50 == _map50_of_saved_model(out, overrides)
    for name in report.images:
        assert (out / name).is_file()
    capture = cv2.VideoCapture(str(out / report.video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 48
    capture.release()


def _map50_of_saved_model(out, overrides: dict) -> float:
    """mAP@0.5 of the demo's checkpoint on its 3 validation images, measured here."""
    from mrcnn.datasets.shapes import ShapesDataset
    from mrcnn.demo import DEMO_IMAGE_SIZE
    from mrcnn.evaluation import evaluate_dataset
    from mrcnn.model import MaskRCNN

    val = ShapesDataset()
    val.load_shapes(3, DEMO_IMAGE_SIZE, DEMO_IMAGE_SIZE, seed=0, subset="val")
    val.prepare()
    model = MaskRCNN("inference", ShapesDemoConfig.from_overrides(overrides), out / "logs")
    model.load_weights(model.find_last())
    return evaluate_dataset(model, val, iou_thresholds=(0.5,), progress=False).map50


def test_demo_config_is_valid_and_small():
    config = ShapesDemoConfig()
    assert config.NUM_CLASSES == 4 and config.BACKBONE == "resnet18"


def test_demo_help(capsys):
    try:
        main(["demo", "--help"])
    except SystemExit as exit_:
        assert exit_.code == 0
    assert "--train-seconds" in capsys.readouterr().out

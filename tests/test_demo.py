"""The offline demo end to end, shrunk to seconds (the real run is `make demo`)."""

from __future__ import annotations

import cv2

from mrcnn.cli import main
from mrcnn.demo import ShapesDemoConfig, run_demo


def test_demo_writes_report_pictures_and_video(tmp_path):
    out = tmp_path / "demo"
    report = run_demo(
        out,
        train_seconds=0,
        train_images=8,
        val_images=3,
        progress=False,
        overrides={"STEPS_PER_EPOCH": 2, "VALIDATION_STEPS": 1, "WORKERS": 0},
    )
    text = (out / "report.md").read_text()
    assert "mask mAP@0.5" in text and "| train |" in text
    assert len(report.epochs) == 1 and "loss" in report.epochs[0]
    assert 0.0 <= report.map50 <= 1.0
    for name in report.images:
        assert (out / name).is_file()
    capture = cv2.VideoCapture(str(out / report.video))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 48
    capture.release()


def test_demo_config_is_valid_and_small():
    config = ShapesDemoConfig()
    assert config.NUM_CLASSES == 4 and config.BACKBONE == "resnet18"


def test_demo_help(capsys):
    try:
        main(["demo", "--help"])
    except SystemExit as exit_:
        assert exit_.code == 0
    assert "--train-seconds" in capsys.readouterr().out

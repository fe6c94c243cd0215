"""The offline demo end to end, shrunk to seconds (the real run is `make demo`)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mrcnn.cli import main
from mrcnn.demo import _LOSS_COLUMNS, DEMO_IMAGE_SIZE, DemoReport, ShapesDemoConfig, run_demo
from mrcnn.evaluation import evaluate_dataset
from mrcnn.modeling import cpu_threads
from mrcnn.splash.filter import color_splash


@pytest.mark.serial  # the demo sets torch's threads from the machine's load: it runs alone
def test_demo_writes_report_pictures_and_video(tmp_path, monkeypatch):
    torch.manual_seed(0)  # the model starts from random weights
    # The splash is compared pixel for pixel with a detect run here, so the demo must keep
    # this process's thread count (on a busy machine it would take fewer threads, and float
    # sums in another order can move a mask's edge by a pixel).
    monkeypatch.setattr(cpu_threads, "busy_cores_of_others", lambda: 0.0)
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
    # A cap of 0 s stops training after its first epoch of the two planned.
    report = run_demo(
        out,
        train_epochs=2,
        max_train_seconds=0,
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
    # Stopped by the cap before the model is good: the report says so, and what to do.
    assert report.stopped_early and "trained 1 of 2 planned epochs (the 0 s time cap" in text
    assert "**Not trained enough:** mask mAP@0.5" in text and "--train-seconds " in text
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
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "--train-seconds" in text and "--train-epochs" in text


def _report(map50: float, epochs_done: int, train_seconds: float = 100.0) -> DemoReport:
    report = DemoReport(Path("demo"), epochs_planned=12, time_cap=60.0, map50=map50)
    report.epochs = [{"epoch": e} for e in range(1, epochs_done + 1)]
    report.seconds = {"train": train_seconds, "total": train_seconds + 10}
    return report


def test_shortfall_names_the_cap_the_step_time_and_the_budget_to_ask_for():
    steps = ShapesDemoConfig.STEPS_PER_EPOCH
    problem = _report(0.31, epochs_done=2).shortfall(steps)  # 100 s for 2 epochs of 50 steps
    assert problem.startswith("mask mAP@0.5 0.310 is below the 0.9 a trained demo model")
    assert "the 60 s time cap stopped training after 2 of 12 epochs (1.00 s a step" in problem
    assert problem.endswith("run again with --train-seconds 840")  # 600 s * 1.25 + 60 -> 14 min


def test_shortfall_is_none_for_a_good_model_even_when_stopped_early():
    assert _report(0.95, epochs_done=3).shortfall(50) is None
    assert _report(0.95, epochs_done=12).shortfall(50) is None


def test_a_fully_trained_model_below_target_is_reported_as_unexpected():
    problem = _report(0.5, epochs_done=12).shortfall(50)
    assert "after all 12 epochs: unexpected" in problem


def test_cli_exits_1_with_the_shortfall_as_its_last_line(tmp_path, monkeypatch, capsys):
    def fake_run_demo(out, epochs, cap, *args, **kwargs):
        assert (epochs, cap) == (12, 60.0)
        return _report(0.2, epochs_done=1)

    monkeypatch.setattr("mrcnn.demo.run_demo", fake_run_demo)
    code = main(
        ["demo", "--out", str(tmp_path / "d"), "--train-epochs", "12", "--train-seconds", "60"]
    )
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert code == 1
    assert last.startswith("not trained enough: mask mAP@0.5 0.200 is below")


def test_cli_refuses_a_zero_cap_in_one_line(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--train-seconds", "0"]) != 0
    assert "--train-seconds 0.0: both must be > 0" in capsys.readouterr().err

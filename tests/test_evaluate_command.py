"""``mrcnn evaluate`` end to end with a tiny random-weight model on synthetic shapes."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
from pycocotools.coco import COCO

from mrcnn.cli import main
from mrcnn.config import Config
from mrcnn.datasets import from_spec
from mrcnn.evaluation import COCO_STAT_NAMES, dataset_to_coco

TINY = {
    "NAME": "tiny",
    "BACKBONE": "resnet50",
    "IMAGE_MIN_DIM": 64,
    "IMAGE_MAX_DIM": 64,
    "FPN_CLASSIF_FC_LAYERS_SIZE": 32,
    "TOP_DOWN_PYRAMID_SIZE": 32,
    "RPN_ANCHOR_SCALES": (8, 16, 32, 64, 128),
    "PRE_NMS_LIMIT": 200,
    "POST_NMS_ROIS_INFERENCE": 50,
    "DETECTION_MAX_INSTANCES": 10,
    "DETECTION_MIN_CONFIDENCE": 0.0,  # random weights: keep every detection
    "IMAGES_PER_GPU": 1,
    "CPU_THREADS": 1,
}
SPEC = "shapes:20:64"  # the val subset holds 2 images of 64 x 64


def _set_flags(values: dict) -> list[str]:
    flags = []
    for key, value in values.items():
        text = ",".join(map(str, value)) if isinstance(value, tuple) else value
        flags += ["--set", f"{key}={'(' + text + ')' if isinstance(value, tuple) else text}"]
    return flags


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from mrcnn.model import MaskRCNN
    from mrcnn.training.checkpoint import atomic_torch_save, checkpoint_payload

    config = Config.from_overrides({**TINY, "NUM_CLASSES": 4, "DEVICE": "cpu"})
    model = MaskRCNN("inference", config, model_dir=tmp_path_factory.mktemp("logs"))
    path = tmp_path_factory.mktemp("weights") / "tiny.pt"
    atomic_torch_save(checkpoint_payload(model.net.state_dict(), config, epoch=1), path)
    return path


def test_help_works(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--help"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    for flag in ("--dataset", "--weights", "--iou", "--coco", "--output", "--limit"):
        assert flag in printed


def test_evaluate_end_to_end_writes_loadable_results(weights, tmp_path, capsys):
    output = tmp_path / "results.json"
    argv = ["evaluate", "--dataset", SPEC, "--weights", str(weights), "--device", "cpu"]
    argv += ["--iou", "0.5", "0.75", "--coco", "--output", str(output), "--quiet"]
    argv += ["--logs", str(tmp_path / "logs")] + _set_flags(TINY)  # NUM_CLASSES from the data
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "2 images" in printed and "0.50:0.95" in printed and "0.75" in printed
    assert "segm" in printed and "bbox" in printed and "AP50" in printed

    results = json.loads(output.read_text())
    assert results, "DETECTION_MIN_CONFIDENCE=0 should leave detections"
    assert {"image_id", "category_id", "bbox", "score", "segmentation"} <= set(results[0])
    gt = COCO()
    gt.dataset = dataset_to_coco(from_spec(SPEC, "val"))
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        loaded = gt.loadRes(str(output))
    assert len(loaded.anns) == len(results)
    assert set(loaded.getImgIds()) <= {0, 1}
    assert len(COCO_STAT_NAMES) == 12


def test_num_classes_mismatch_is_a_clear_error(weights, tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text("NUM_CLASSES: 2\n")
    argv = ["evaluate", "--dataset", SPEC, "--weights", str(weights), "--config", str(config)]
    assert main(argv) == 1
    error = capsys.readouterr().err
    assert "NUM_CLASSES=2" in error and "has 4 classes" in error
    assert "--set NUM_CLASSES=4" in error

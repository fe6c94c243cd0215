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
def weights(module_tmp):
    from mrcnn.model import MaskRCNN
    from mrcnn.weights.checkpoint import atomic_torch_save, checkpoint_payload

    config = Config.from_overrides({**TINY, "NUM_CLASSES": 4, "DEVICE": "cpu"})
    model = MaskRCNN("inference", config, model_dir=module_tmp.mktemp("logs"))
    path = module_tmp.mktemp("weights") / "tiny.pt"
    atomic_torch_save(checkpoint_payload(model.net.state_dict(), config, epoch=1), path)
    return path


def test_help_works(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--help"])
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    for flag in ("--dataset", "--weights", "--iou", "--coco", "--output", "--limit"):
        assert flag in printed


def _oracle_detect(dataset):
    """A ``MaskRCNN.detect`` that returns the ground truth of ``dataset``'s images, plus on the
    first image a confident false positive (its first mask shifted by half the image), so
    that AP is high but not 1."""
    import numpy as np

    images = [dataset.load_image(i) for i in dataset.image_ids]

    def detect(self, batch, verbose=0):
        results = []
        for image in batch:
            index = next(i for i, known in enumerate(images) if np.array_equal(known, image))
            masks, class_ids = dataset.load_mask(index)
            scores = np.linspace(0.9, 0.8, len(class_ids))
            if index == 0:
                shifted = np.roll(masks[:, :, :1], image.shape[0] // 2, axis=(0, 1))
                masks = np.concatenate([shifted, masks], axis=2)
                class_ids = np.concatenate([class_ids[:1], class_ids])
                scores = np.concatenate([[0.99], scores])
            rois = dataset.extract_bboxes(masks)
            results.append(
                {
                    "rois": rois,
                    "boxes": rois[:, [1, 0, 3, 2]].astype(np.float32),
                    "class_ids": class_ids.astype(np.int32),
                    "scores": scores.astype(np.float32),
                    "masks": masks,
                }
            )
        return results

    return detect


def _coco_stats_of_json(path, dataset, iou_type: str) -> list[float]:
    """pycocotools' COCOeval on a results file, independently of mrcnn.evaluation."""
    from pycocotools.cocoeval import COCOeval

    gt = COCO()
    gt.dataset = dataset_to_coco(dataset)
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        evaluator = COCOeval(gt, gt.loadRes(str(path)), iou_type)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [float(v) for v in evaluator.stats]


def test_evaluate_end_to_end_writes_loadable_results(weights, tmp_path, capsys, monkeypatch):
    from mrcnn.model import MaskRCNN

    val = from_spec(SPEC, "val")
    monkeypatch.setattr(MaskRCNN, "detect", _oracle_detect(val))
    output = tmp_path / "results.json"
    argv = ["evaluate", "--dataset", SPEC, "--weights", str(weights), "--device", "cpu"]
    argv += ["--iou", "0.5", "0.75", "--coco", "--output", str(output), "--quiet"]
    argv += ["--logs", str(tmp_path / "logs")] + _set_flags(TINY)  # NUM_CLASSES from the data
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "2 images" in printed and "0.50:0.95" in printed and "0.75" in printed
    assert "segm" in printed and "bbox" in printed and "AP50" in printed

    results = json.loads(output.read_text())
    assert {"image_id", "category_id", "bbox", "score", "segmentation"} <= set(results[0])
    assert len(results) == sum(len(val.load_mask(i)[1]) for i in val.image_ids) + 1
    table = {line.split()[0]: line.split()[1:] for line in printed.splitlines() if line.strip()}
    for iou_type in ("segm", "bbox"):
        # The printed AP, AP50, AP75 are pycocotools' figures for the written detections.
        stats = _coco_stats_of_json(output, val, iou_type)
        assert [float(v) for v in table[iou_type][:3]] == pytest.approx(stats[:3], abs=6e-4)
        # Exact masks and boxes after one confident false positive: high, but below 1.
        assert 0.5 < stats[0] < 1.0 and stats[1] == stats[2] == stats[0]
    assert len(COCO_STAT_NAMES) == 12


def test_num_classes_mismatch_is_a_clear_error(weights, tmp_path, capsys):
    config = tmp_path / "tiny.yaml"
    config.write_text("NUM_CLASSES: 2\n")
    argv = ["evaluate", "--dataset", SPEC, "--weights", str(weights), "--config", str(config)]
    assert main(argv) == 1
    error = capsys.readouterr().err
    assert "NUM_CLASSES=2" in error and "has 4 classes" in error
    assert "--set NUM_CLASSES=4" in error


def test_a_checkpoint_of_other_classes_is_named_as_the_cause(tmp_path, capsys):
    from mrcnn.model import MaskRCNN
    from mrcnn.weights.checkpoint import atomic_torch_save, checkpoint_payload

    config = Config.from_overrides({**TINY, "NUM_CLASSES": 3, "DEVICE": "cpu"})
    model = MaskRCNN("inference", config, model_dir=tmp_path)
    other = tmp_path / "three_classes.pt"
    atomic_torch_save(checkpoint_payload(model.net.state_dict(), config, epoch=1), other)
    assert main(["evaluate", "--dataset", SPEC, "--weights", str(other)]) == 1
    error = capsys.readouterr().err
    assert f"the model {other} has NUM_CLASSES=3 (as the file gives it)" in error
    assert "has 4 classes" in error and "--set" not in error


def test_a_matterport_h5_of_other_classes_is_named_as_the_cause(tmp_path, capsys):
    from tests.helpers.keras_h5 import matterport_manifest, random_layers, write_keras_h5

    manifest = matterport_manifest("resnet50", num_classes=2, fc=32)
    h5 = write_keras_h5(tmp_path / "balloon.h5", manifest, random_layers(manifest, 2))
    assert main(["evaluate", "--dataset", SPEC, "--weights", str(h5)]) == 1
    error = capsys.readouterr().err
    assert f"the model {h5} has NUM_CLASSES=2 (as the file gives it)" in error
    assert "has 4 classes" in error


def test_existing_output_and_inputs_are_never_written_over(tmp_path, capsys):
    existing = tmp_path / "mine.json"
    existing.write_text("the user's file")
    args = ["evaluate", "--dataset", "shapes", "--weights", "none.pt"]
    assert main([*args, "--output", str(existing)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert existing.read_text() == "the user's file"
    annotations = tmp_path / "instances.json"
    annotations.write_text("{}")
    coco = ["evaluate", "--dataset", f"coco:{annotations}", "--weights", "none.pt"]
    assert main([*coco, "--output", str(annotations), "--overwrite"]) == 1
    assert "over input files" in capsys.readouterr().err
    assert annotations.read_text() == "{}"


def _evaluate(argv_tail, weights, tmp_path, name):
    output = tmp_path / f"{name}.json"
    argv = ["evaluate", "--dataset", SPEC, "--weights", str(weights), "--device", "cpu"]
    argv += ["--output", str(output), "--quiet", "--logs", str(tmp_path / "logs")]
    assert main(argv + _set_flags(TINY) + argv_tail) == 0
    return json.loads((tmp_path / f"{name}.metrics.json").read_text())


def test_bootstrap_adds_intervals_to_the_table_and_the_metrics(
    weights, tmp_path, capsys, monkeypatch
):
    from mrcnn.model import MaskRCNN

    monkeypatch.setattr(MaskRCNN, "detect", _oracle_detect(from_spec(SPEC, "val")))
    plain = _evaluate(["--coco"], weights, tmp_path, "plain")
    plain_table = capsys.readouterr().out
    assert plain["bootstrap"] is None and "ci_low" not in plain["mean_ap"]["0.50"]
    flags = ["--coco", "--bootstrap", "200", "--confidence", "0.9", "--bootstrap-seed", "4"]
    boot = _evaluate(flags, weights, tmp_path, "boot")
    printed = capsys.readouterr()
    assert "90% interval" in printed.out and "200 resamples of the images" in printed.out
    assert "bootstrap interval from 2 images is unreliable" in printed.err  # the val subset
    row = next(line for line in printed.out.splitlines() if line.split()[:1] == ["0.50"])
    plain_row = next(line for line in plain_table.splitlines() if line.split()[:1] == ["0.50"])
    # The point estimates are those of a run without --bootstrap.
    assert row.split()[1] == plain_row.split()[1] and row.split()[4] == plain_row.split()[2]
    assert boot["bootstrap"] == {
        "resamples": 200, "confidence": 0.9, "seed": 4, "method": "percentile", "unit": "image"
    }  # fmt: skip
    for figure in ("mean_ap", "dataset_ap"):
        for name, entry in boot[figure].items():
            assert entry["value"] == plain[figure][name]["value"]
            assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]
    assert boot["mean_ap"]["0.50"]["ci_low"] < boot["mean_ap"]["0.50"]["ci_high"]
    for iou_type in ("bbox", "segm"):
        assert boot["coco"][iou_type]["AP"]["value"] == plain["coco"][iou_type]["AP"]["value"]
        ap = boot["coco"][iou_type]["AP"]
        assert (
            ap["ci_low"] <= ap["value"] <= ap["ci_high"]
            and "ci_low" not in (boot["coco"][iou_type]["APs"])
        )
        assert f"{iou_type:>6}  90% interval: AP [" in printed.out
    assert _evaluate(flags, weights, tmp_path, "again") == boot | {
        "detections_file": str(tmp_path / "again.json")
    }


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--bootstrap", "0"], "argument --bootstrap: bootstrap resamples '0': must be a whole"),
        (["--bootstrap", "2.5"], "argument --bootstrap: bootstrap resamples '2.5': must be a"),
        (["--confidence", "95"], "argument --confidence: confidence '95': must be a number in"),
        (["--confidence", "0"], "argument --confidence: confidence '0': must be a number in"),
        (["--bootstrap-seed", "x"], "argument --bootstrap-seed: bootstrap seed 'x': must be"),
    ],
)
def test_bad_bootstrap_flags_are_one_line_errors(flags, needle, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--dataset", SPEC, "--weights", "none.pt", *flags])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("mrcnn evaluate: error: ") and needle in err[-1]
    assert not any("Traceback" in line for line in err)

"""int8 graphs (mrcnn.deploy.int8, `mrcnn export --int8`, `--backend openvino --precision int8`).

The model is the suite's small trained network (tests/helpers/trained_shapes.py, a few triangles
overfitted), so that accuracy means something; its int8 graph is made once for the module.
"""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mrcnn.cli import main
from mrcnn.datasets import ShapesDataset
from mrcnn.deploy import int8
from mrcnn.deploy import openvino_backend as backend
from mrcnn.evaluation import evaluate_dataset
from mrcnn.tracking.analysis import detection_floor, video_analyser
from tests.helpers.exported import load_checkpoint
from tests.helpers.trained_shapes import (
    OverfitConfig,
    trained_model,
    trained_triangles,
    triangles,
)

pytest.importorskip("openvino", reason="openvino is a test extra: pip install -e .[test]")
pytest.importorskip("nncf", reason="nncf is a test extra: pip install -e .[test]")
pytest.importorskip("onnxscript", reason="onnxscript is a test extra: pip install -e .[test]")

#: The int8 graph's input: larger than the 64 x 64 the model molds to, so that the backend's
#: search for a cached int8 graph an image fits in is exercised too.
GRAPH_SIZE = (96, 96)


def quiet(_: str) -> None:
    pass


@pytest.fixture(scope="module")
def made(module_tmp):
    """(model, cache folder, int8 entry, report, the scenes of triangles(3) the fp32 graph
    finds objects on): calibrated and checked on the 3 scenes the model learnt, the only ones
    it may find objects on, and where its fp32 accuracy is high, so that a loss would show.
    (Which of the 3 it finds depends on the threads training ran with.)"""
    model = trained_model()
    cache = module_tmp.mktemp("cache")
    folder, report = int8.make_int8_graph(
        model, triangles(3), cache, GRAPH_SIZE, check=triangles(3), say=quiet, progress=False
    )
    fp32 = backend.OpenVinoMaskRCNN(model, cache, "fp32", say=quiet, input_size=GRAPH_SIZE)
    scenes = triangles(3)
    seen = [i for i in range(3) if len(fp32.detect([scenes.load_image(i)])[0]["scores"])]
    return model, cache, folder, report, seen


def with_images(dataset, replaced: dict):
    """``dataset`` whose load_image gives, for the ids in ``replaced``, what its value gives
    (an exception is raised)."""
    load = dataset.load_image

    def load_image(image_id):
        if image_id not in replaced:
            return load(image_id)
        value = replaced[image_id]
        if isinstance(value, Exception):
            raise value
        return value

    dataset.load_image = load_image
    return dataset


#: A scene with nothing in it: the model finds no object there.
BLANK = np.full((64, 64, 3), 128, dtype=np.uint8)


@pytest.fixture(scope="module")
def fp32_entry(made):
    """The cache entry of the model's fp32 graph for GRAPH_SIZE inputs, which ``made``
    exported (an export costs 20-60 s; the tests below calibrate at that size too)."""
    model, cache = made[:2]
    runner = backend.OpenVinoMaskRCNN(model, cache, "fp32", say=quiet, input_size=GRAPH_SIZE)
    entry = runner.graph_folder(GRAPH_SIZE)
    assert runner.exports == 0
    return entry


@pytest.fixture
def cache(fp32_entry, tmp_path):
    """A fresh cache holding only the fp32 GRAPH_SIZE graph (no export in the test)."""
    return seeded_cache(tmp_path / "cache", fp32_entry)


def seeded_cache(folder, entry):
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copytree(entry, folder / entry.name, dirs_exist_ok=True)
    return folder


def test_every_weighted_layer_runs_in_int8(made):
    """Fails when the constants are not folded first (the backbone's convolutions keep fp32
    weights: BatchNorm's scale is multiplied in at run time) or when the pyramid ROIAlign's
    rows are put back in order with GatherND (the heads' first layers then get fp32 inputs)."""
    report = made[3]
    assert report.layers >= 40
    assert report.int8_layers == report.layers


def test_frozen_batchnorm_convolutions_run_in_int8(matterport_export):
    """With BatchNorm frozen (Matterport's and torchvision's models), the export multiplies its
    scale into each convolution's weights at run time; NNCF quantizes constant weights only, so
    without folding the constants first every backbone convolution stayed fp32."""
    images = ShapesDataset()
    images.load_shapes(2, 128, 128, seed=0)
    images.prepare()
    model = load_checkpoint(matterport_export[0])
    inputs = int8.CalibrationInputs(images, [0, 1], model.config, (128, 128))
    graph = int8.quantize(int8.nncf_module(), matterport_export[1], inputs, 2)
    quantized, layers = int8.int8_layer_count(graph)
    assert layers >= 40 and quantized == layers


def test_int8_keeps_the_trained_models_accuracy_and_reports_it(made):
    model, cache, folder, report, seen = made
    assert report.calibration_images == len(seen) >= 2 and report.held_out_images == 3
    assert report.fp32["mAP@0.5"] >= 0.6  # the trained model finds its triangles
    assert report.drops()["mAP@0.5"] <= 0.05 and report.drops()["mAP@[.5:.95]"] <= 0.1
    stored = json.loads((folder / "made_from.json").read_text())
    assert stored["precision"] == "int8" and stored["report"]["int8"] == report.int8
    assert any("int8 accuracy on 3 checked images" in line for line in report.lines())
    # the figure reported is the one the backend gives on those images
    runner = backend.OpenVinoMaskRCNN(model, cache, "int8", say=quiet, input_size=GRAPH_SIZE)
    measured = evaluate_dataset(runner, triangles(3), progress=False, coco_results=False)
    assert round(float(measured.map50), 4) == report.int8["mAP@0.5"]


def test_the_backend_runs_the_cached_int8_graph_an_image_fits_in(made):
    model, cache, _, _, seen = made
    runner = backend.OpenVinoMaskRCNN(model, cache, "int8", say=quiet)
    assert runner.input_size(64, 64) == (64, 64)
    assert runner.int8_size((64, 64)) == GRAPH_SIZE
    fp32 = backend.OpenVinoMaskRCNN(model, cache, "fp32", say=quiet, input_size=GRAPH_SIZE)
    image = triangles(3).load_image(seen[0])
    ours, reference = runner.detect([image])[0], fp32.detect([image])[0]
    assert runner.exports == 0 and fp32.exports == 0  # both graphs came from the cache
    assert ours["masks"].shape[:2] == image.shape[:2]
    best = np.argmax(reference["scores"])
    overlap = (ours["masks"][..., 0] & reference["masks"][..., best]).sum()
    union = (ours["masks"][..., 0] | reference["masks"][..., best]).sum()
    assert overlap / union > 0.8


def test_no_int8_graph_says_how_to_make_one(made, tmp_path):
    model = made[0]
    runner = backend.OpenVinoMaskRCNN(model, tmp_path, "int8", say=quiet)
    with pytest.raises(
        backend.MissingInt8Graph, match=r"mrcnn export OUT.xml .*--input-size 64x64"
    ):
        runner.detect([triangles(1).load_image(0)])


def test_the_stable_video_mode_runs_the_int8_graph_at_its_lowered_threshold(made, monkeypatch):
    """splash's default video mode lowers DETECTION_MIN_CONFIDENCE while it detects, and a
    user's threshold need not be the one the graph was made with; the int8 graph takes the
    threshold as an input, so the same graph serves (no MissingInt8Graph)."""
    model, cache, _, _, seen = made
    monkeypatch.setattr(model.config, "DETECTION_MIN_CONFIDENCE", 0.5)  # made at 0
    runner = backend.OpenVinoMaskRCNN(model, cache, "int8", say=quiet)
    image = triangles(3).load_image(seen[0])
    at_config = runner.detect([image])[0]
    analyser = video_analyser(runner, "stable")
    assert analyser.score_floor < model.config.DETECTION_MIN_CONFIDENCE
    shown = analyser([image, image])
    assert len(shown) == 2 and len(shown[1]["track_ids"]) >= 1
    with detection_floor(runner, 0.0):
        everything = runner.detect([image])[0]
    assert len(everything["scores"]) >= len(at_config["scores"]) and runner.exports == 0


def test_changed_weights_do_not_run_the_old_int8_graph(made):
    cache = made[1]
    changed = trained_model()
    with torch.no_grad():
        changed.net.mask_head.logits.bias.add_(0.5)
    runner = backend.OpenVinoMaskRCNN(changed, cache, "int8", say=quiet)
    with pytest.raises(backend.MissingInt8Graph):
        runner.detect([triangles(1).load_image(0)])


def test_an_image_that_does_not_load_is_skipped_with_a_line(made, monkeypatch, tmp_path):
    model, cache, _, _, seen = made
    calibration, said = with_images(triangles(4), {3: OSError("truncated file")}), []
    monkeypatch.setattr(int8, "evaluate_dataset", lambda *a, **k: _Figures())
    monkeypatch.setattr(int8, "store_graph", lambda *a: None)
    _, report = int8.make_int8_graph(
        model, calibration, cache, GRAPH_SIZE, check=triangles(1), say=said.append, progress=False
    )
    assert report.calibration_images == len(seen)
    assert any("calibration skips image 3" in line and "truncated file" in line for line in said)


class _Figures:
    map50 = map50_95 = 0.5


def test_an_image_without_detections_is_left_out_of_calibration(made, cache):
    """On a blank scene the model finds nothing, so the mask head's tensors get no values from
    it; calibrated with it, NNCF gave the mask head ranges of [0, 8e-05] (then refused by
    check_calibrated) and the int8 masks were lost."""
    model, said = made[0], []
    _, report = int8.make_int8_graph(
        model,
        with_images(triangles(4), {3: BLANK}),
        cache,
        GRAPH_SIZE,
        check=triangles(3),
        say=said.append,
        progress=False,
    )
    # (at this input size the model may find other scenes than the module's `seen`)
    assert 1 <= report.calibration_images <= 3
    left_out = 4 - report.calibration_images
    assert f"note: calibration leaves out {left_out} images the model finds nothing on" in said
    assert report.drops()["mAP@0.5"] <= 0.05


def test_calibration_images_the_model_finds_nothing_on_are_refused(made, cache):
    model = made[0]
    with pytest.raises(ValueError, match=r"finds no object on any of the 1 calibration images"):
        int8.make_int8_graph(
            model,
            with_images(triangles(1), {0: BLANK}),
            cache,
            GRAPH_SIZE,
            check=triangles(1),
            say=quiet,
            progress=False,
        )


def test_calibration_feeds_the_graph_a_low_threshold():
    """NNCF measures the graph at CALIBRATION_MIN_SCORE, not at the config's threshold: there
    the Matterport R-101's mask head got boxes on too few pyramid levels, four quantizers
    stayed empty and its int8 graph was refused (about 2.5 minutes to show: not run here)."""
    settings = OverfitConfig.from_overrides({"DETECTION_MIN_CONFIDENCE": 0.7})
    inputs = list(int8.CalibrationInputs(triangles(2), [0, 1], settings, GRAPH_SIZE))
    assert len(inputs) == 2 and {"image", "window", "min_score"} <= set(inputs[0])
    assert [i["min_score"][0] for i in inputs] == [np.float32(int8.CALIBRATION_MIN_SCORE)] * 2
    assert int8.CALIBRATION_MIN_SCORE < 0.7
    assert settings.DETECTION_MIN_CONFIDENCE == 0.7  # the settings are left as they were


def test_split_is_deterministic_disjoint_and_checked():
    ids = list(range(20))
    calibration, held = int8.split_for_calibration(ids, 0.25)
    assert len(held) == 5 and sorted(calibration + held) == ids
    assert (calibration, held) == int8.split_for_calibration(ids, 0.25)
    assert len(int8.split_for_calibration(ids, 3)[1]) == 3
    assert len(int8.split_for_calibration(ids[:2], 0.1)[1]) == 1  # at least one image
    with pytest.raises(ValueError, match="no image would be left to calibrate"):
        int8.split_for_calibration(ids[:3], 3)
    for bad in ("0", "1.5", "-2", "many"):
        with pytest.raises(ValueError, match="--holdout"):
            int8.parse_holdout(bad)
    assert int8.parse_holdout("0.2") == 0.2 and int8.parse_holdout("7") == 7


def test_without_nncf_it_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "nncf", None)
    with pytest.raises(RuntimeError, match=r"pip install nncf"):
        int8.nncf_module()


def test_cli_exports_int8_and_detect_runs_it(fp32_entry, tmp_path, capsys):
    checkpoint, _ = trained_triangles()
    seeded_cache(backend.default_cache_dir(checkpoint), fp32_entry)
    out = tmp_path / "m.xml"
    code = main(
        [
            "export",
            str(out),
            "--weights",
            str(checkpoint),
            "--int8",
            "--calibrate",
            "shapes:20:64",
            "--input-size",
            f"{GRAPH_SIZE[0]}x{GRAPH_SIZE[1]}",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "int8 accuracy on 2 checked images" in printed and "wrote" in printed
    assert out.is_file() and out.with_suffix(".bin").is_file()
    report = json.loads(out.with_suffix(".int8.json").read_text())
    assert report["input_size"] == list(GRAPH_SIZE) and report["int8_layers"] == report["layers"]
    photo = tmp_path / "in.png"
    Image.fromarray(triangles(1).load_image(0)).save(photo)
    args = [
        "detect",
        "--weights",
        str(checkpoint),
        "--input",
        str(photo),
        "--output",
        str(tmp_path / "out"),
    ]
    assert main([*args, "--backend", "openvino", "--precision", "int8"]) == 0
    assert (tmp_path / "out" / "detections.json").is_file()


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--calibrate", "shapes"], "--calibrate and --holdout are for --int8"),
        (["--int8"], "--int8 needs --calibrate SPEC"),
        (["--int8", "--calibrate", "shapes", "--format", "onnx"], "--int8 makes an OpenVINO"),
        (["--int8", "--calibrate", "shapes", "--holdout", "2.5"], "--holdout '2.5'"),
    ],
)
def test_cli_refuses_int8_arguments_that_do_not_fit(tmp_path, capsys, extra, message):
    out = tmp_path / ("m.onnx" if "onnx" in extra else "m.xml")
    assert main(["export", str(out), "--weights", "coco", *extra]) == 1
    assert message in capsys.readouterr().err


def test_int8_with_the_torch_backend_is_refused_in_one_line(tmp_path, capsys):
    checkpoint, _ = trained_triangles()
    Image.fromarray(triangles(1).load_image(0)).save(tmp_path / "in.png")
    code = main(
        [
            "detect",
            "--weights",
            str(checkpoint),
            "--input",
            str(tmp_path),
            "--output",
            str(tmp_path / "out"),
            "--precision",
            "int8",
        ]
    )
    assert code == 1
    assert "int8 runs in OpenVINO only" in capsys.readouterr().err


def test_a_pyramid_level_without_boxes_takes_its_siblings_range():
    """A level no calibration box reached leaves its ROIAlign quantizer empty; the rows are
    concatenated into one head input, so the measured levels' range is given to it."""
    import openvino as ov
    from openvino import opset13 as ops

    def quantized(parameter, low: float, high: float):
        bounds = [ops.constant(np.float32(v)) for v in (low, high, low, high)]
        return ops.fake_quantize(parameter, *bounds, 256)

    levels = [ops.parameter([1, 4], np.float32) for _ in range(3)]
    measured = quantized(levels[0], -3.0, 5.0)
    empty = [quantized(levels[1], 0.0, 8e-5), quantized(levels[2], 0.0, 8e-5)]
    graph = ov.Model([ops.concat([measured, *empty], 0)], levels)
    assert len(int8.unmeasured_quantizers(graph)) == 2
    said: list[str] = []
    with pytest.raises(ValueError, match="2 quantizers saw no values"):
        int8.check_calibrated(graph, 3)  # a check alone changes nothing
    int8.fill_empty_levels(graph, said.append)
    int8.check_calibrated(graph, 3)  # no error: both borrowed
    assert int8.unmeasured_quantizers(graph) == [] and "2 pyramid levels" in said[0]
    ranges = empty[1].input(2).get_source_output().get_node().get_data()
    assert float(ranges) == 5.0
    lone = ov.Model([quantized(levels[0], 0.0, 8e-5)], [levels[0]])  # no sibling: refused
    int8.fill_empty_levels(lone, said.append)
    with pytest.raises(ValueError, match="1 quantizers saw no values"):
        int8.check_calibrated(lone, 3)

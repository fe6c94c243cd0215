"""The OpenVINO backend (mrcnn.deploy.openvino_backend, --backend openvino|auto).

The network export is the one `mrcnn export` makes, and tests/deploy/test_export.py checks it
against the PyTorch model. Here the export of the session's tiny Matterport-style model is
handed to the backend (its export call is replaced by a copy of that file, and each call is
recorded) so that the tests check what is the backend's own: OpenVINO's results equal ONNX
Runtime's on the same graph, the cache is used and keyed, the choice of backend, the errors.
"""

from __future__ import annotations

import io
import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from mrcnn.cli import main
from mrcnn.datasets import ShapesDataset
from mrcnn.deploy import openvino_backend as backend
from mrcnn.deploy.runtime import OnnxMaskRCNN, graph_feed, inference_plan
from mrcnn.evaluation import evaluate_dataset
from mrcnn.splash.service import SplashService
from mrcnn.testing import photo_like_image
from tests.helpers.exported import CLASS_NAMES, load_checkpoint, pair_detections

pytest.importorskip("openvino", reason="openvino is a test extra: pip install -e .[test]")
pytest.importorskip("onnxruntime", reason="onnxruntime is a test extra: pip install -e .[test]")

#: Photos of several shapes: the Matterport-style model molds each to its 128 x 128 input.
SHAPES = [(100, 140), (128, 128), (90, 60)]


def copying_export(onnx_file, asked: list):
    """A stand-in for export_onnx that copies ``onnx_file`` and records the input size."""

    def export_copy(model, path, input_size=None, **_):
        asked.append(tuple(input_size))
        shutil.copyfile(onnx_file, path)
        return path

    return export_copy


@pytest.fixture
def exports(matterport_export, monkeypatch):
    """The input sizes the backend exported for; each export copies the session's .onnx."""
    asked: list[tuple[int, int]] = []
    monkeypatch.setattr(backend, "export_onnx", copying_export(matterport_export[1], asked))
    return asked


@pytest.fixture
def model(matterport_export):
    return load_checkpoint(matterport_export[0])


@pytest.fixture(scope="module")
def compiled(matterport_export, module_tmp):
    """(model, its OpenVinoMaskRCNN with the 128 x 128 graph compiled, export sizes asked)."""
    asked: list[tuple[int, int]] = []
    model = load_checkpoint(matterport_export[0])
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(backend, "export_onnx", copying_export(matterport_export[1], asked))
        detector = backend.OpenVinoMaskRCNN(model, module_tmp.mktemp("cache"), say=print)
        detector.compiled_graph((128, 128))
    return model, detector, asked


def images() -> list[np.ndarray]:
    return [photo_like_image(h, w, seed=h) for h, w in SHAPES]


def test_openvino_gives_what_onnxruntime_gives_on_the_same_graph(matterport_export, compiled):
    _, detector, asked = compiled
    reference = OnnxMaskRCNN(matterport_export[1]).detect(images())
    found = detector.detect(images())
    assert asked == [(128, 128)]
    assert sum(len(r["scores"]) for r in reference) >= 20
    for ours, theirs in zip(found, reference, strict=True):
        assert len(ours["scores"]) == len(theirs["scores"])
        np.testing.assert_array_equal(ours["class_ids"], theirs["class_ids"])
        np.testing.assert_allclose(ours["scores"], theirs["scores"], atol=1e-4)
        np.testing.assert_allclose(ours["boxes"], theirs["boxes"], atol=1e-2)
        paired, _, ious = pair_detections(theirs, ours)
        assert paired == len(theirs["scores"]) and min(ious, default=1.0) >= 0.98


def test_a_second_run_compiles_the_cached_graph_and_exports_nothing(model, exports, tmp_path):
    notes: list[str] = []
    first = backend.OpenVinoMaskRCNN(model, tmp_path, say=notes.append)
    expected = first.detect(images()[:1])[0]
    assert first.exports == 1 and "exporting the network for 128x128" in notes[0]
    again = backend.OpenVinoMaskRCNN(model, tmp_path, say=notes.append)
    result = again.detect(images()[:1])[0]
    assert again.exports == 0 and exports == [(128, 128)] and len(notes) == 1
    np.testing.assert_array_equal(result["masks"], expected["masks"])
    [folder] = [p for p in tmp_path.iterdir() if p.is_dir()]
    made_from = json.loads((folder / "made_from.json").read_text())
    assert made_from["input_size"] == [128, 128] and (folder / "model.bin").is_file()


def test_changed_weights_or_settings_get_a_new_graph(model, exports, tmp_path):
    def key() -> str:
        return backend.graph_key(
            backend.weights_digest(model.net), model.config, (128, 128), "fp32"
        )

    first = key()
    backend.OpenVinoMaskRCNN(model, tmp_path, say=print).compiled_graph((128, 128))
    with torch.no_grad():
        model.net.box_head.class_logits.bias.add_(0.5)  # weights changed in memory
    changed_weights = key()
    again = backend.OpenVinoMaskRCNN(model, tmp_path, say=print)
    again.compiled_graph((128, 128))
    assert again.exports == 1 and len(exports) == 2
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2
    model.config.DETECTION_NMS_THRESHOLD = 0.5  # a value the graph depends on
    changed_settings = key()
    model.config.IMAGE_MIN_SCALE = 0  # molding only: the graph is the same
    model.config.CPU_KEEP_FREED_MEMORY = False  # the process's malloc: the same graph too
    assert key() == changed_settings
    assert len({first, changed_weights, changed_settings}) == 3


def test_the_digest_reads_scalar_and_bf16_tensors():
    """Trainable BatchNorm holds a 0-d num_batches_tracked (the demo's models have it)."""
    layer = torch.nn.Sequential(torch.nn.BatchNorm2d(4), torch.nn.Linear(2, 2).bfloat16())
    before = backend.weights_digest(layer)
    layer[0].num_batches_tracked += 1
    assert backend.weights_digest(layer) != before


def test_the_threshold_moves_in_the_same_graph_both_ways(compiled, monkeypatch):
    """The score threshold is the graph's "min_score" input, fed on each run: a raised one
    drops the lower scores in the graph, a lowered one brings them back, with no new export
    (the video modes and the page's slider move it while a model runs)."""
    model, detector, asked = compiled
    all_found = detector.detect(images()[:1])[0]
    cut = float(np.median(all_found["scores"]))
    monkeypatch.setattr(model.config, "DETECTION_MIN_CONFIDENCE", cut)
    kept = detector.detect(images()[:1])[0]
    assert len(kept["scores"]) == int((all_found["scores"] >= np.float32(cut)).sum()) > 0
    np.testing.assert_array_equal(kept["boxes"], all_found["boxes"][: len(kept["scores"])])
    feed = graph_feed(images()[0], model.config, inference_plan(*SHAPES[0], model.config))
    scores = detector.compiled_graph((128, 128))(feed)[2]  # the graph alone drops them
    assert len(scores) == len(kept["scores"]) and scores.min() >= np.float32(cut)
    key = detector.key((128, 128))
    monkeypatch.setattr(model.config, "DETECTION_MIN_CONFIDENCE", 0.0)
    again = detector.detect(images()[:1])[0]
    assert len(again["scores"]) >= len(all_found["scores"]) and asked == [(128, 128)]
    assert detector.key((128, 128)) == key


def test_box_masks_hold_the_dense_masks(compiled):
    _, detector, _ = compiled
    dense = detector.detect(images()[:1])
    boxed = detector.detect(images()[:1], mask_format="boxes")
    for d, b in zip(dense, boxed, strict=True):
        pasted = b["masks"].to_dense()
        assert pasted.shape == d["masks"].shape
        # torch's paste and numpy's differ in float rounding only: a pixel or two at the edges
        assert np.logical_xor(pasted, d["masks"]).sum() <= 0.002 * d["masks"].size
    with pytest.raises(ValueError, match="mask_format='sparse'"):
        detector.detect(images()[:1], mask_format="sparse")


def test_the_page_and_evaluate_run_on_the_openvino_backend(model, exports, tmp_path):
    model.config.DETECTION_MIN_CONFIDENCE = 0.5
    detector = backend.OpenVinoMaskRCNN(model, tmp_path, say=print)
    service = SplashService(detector, ["BG", *CLASS_NAMES], score_floor=0.05)
    assert model.config.DETECTION_MIN_CONFIDENCE == 0.05  # the page's floor reaches the graph
    photo = io.BytesIO()
    Image.fromarray(images()[0]).save(photo, format="PNG")
    _, upload = service.analyze(photo.getvalue(), "a.png")
    assert len(upload.scores) > 0 and upload.scores.min() >= np.float32(0.05)
    dataset = ShapesDataset()
    dataset.load_shapes(2, 128, 128, seed=0)
    dataset.prepare()
    evaluation = evaluate_dataset(detector, dataset, progress=False)
    assert math.isfinite(evaluation.map50) and exports == [(128, 128)]


def test_bf16_on_a_cpu_without_it_runs_fp32_and_says_so(model, monkeypatch, tmp_path):
    monkeypatch.setattr(backend, "cpu_capabilities", lambda: ["FP32", "INT8"])
    notes: list[str] = []
    detector = backend.OpenVinoMaskRCNN(model, tmp_path, precision="bf16", say=notes.append)
    assert detector.precision == "fp32"
    assert notes == ["note: OpenVINO has no bf16 on this CPU (it offers FP32, INT8): running fp32"]


@pytest.mark.parametrize(
    ("device", "installed", "precision", "expected"),
    [
        ("cpu", True, "fp32", "openvino"),
        ("cuda", True, "fp32", "torch"),
        ("cpu", False, "fp32", "torch"),
        ("cpu", True, "bf16", "torch"),  # (the capabilities below have no BF16)
    ],
)
def test_auto_chooses_openvino_where_it_can_run_the_model(
    model, monkeypatch, tmp_path, device, installed, precision, expected
):
    monkeypatch.setattr(type(model), "device", property(lambda _: torch.device(device)))
    monkeypatch.setattr(backend, "cpu_capabilities", lambda: ["FP32", "INT8"])
    monkeypatch.setattr(model.config, "INFERENCE_PRECISION", precision)
    if not installed:
        monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino fails
    notes: list[str] = []
    chosen = backend.with_backend(model, "auto", cache_dir=tmp_path, say=notes.append)
    assert (chosen is model) == (expected == "torch")
    assert notes[0].startswith(f"backend: {expected} (")
    if not installed:
        assert "pip install" in notes[0]


def test_cache_folder_is_beside_the_weights_file(tmp_path, monkeypatch):
    weights = tmp_path / "model.pt"
    weights.write_bytes(b"x")
    assert backend.default_cache_dir(weights) == tmp_path / "model.pt.openvino"
    monkeypatch.setattr(backend.Path, "home", lambda: tmp_path / "home")
    assert backend.default_cache_dir("coco") == tmp_path / "home/.cache/mrcnn/openvino"


def test_detect_with_backend_openvino_writes_the_cache_beside_the_weights(
    matterport_export, exports, tmp_path, capsys
):
    checkpoint, _ = matterport_export
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(images()[0]).save(folder / "0.png")
    copy = tmp_path / "weights" / "tiny.pt"
    copy.parent.mkdir()
    shutil.copyfile(checkpoint, copy)
    args = ["detect", "--weights", str(copy), "--input", str(folder), "--device", "cpu"]
    assert main([*args, "--output", str(tmp_path / "torch")]) == 0
    assert main([*args, "--output", str(tmp_path / "ov"), "--backend", "openvino"]) == 0
    assert exports == [(128, 128)] and (copy.parent / "tiny.pt.openvino").is_dir()
    ours = json.loads((tmp_path / "ov" / "detections.json").read_text())
    reference = json.loads((tmp_path / "torch" / "detections.json").read_text())
    assert len(ours) == len(reference) > 0
    assert "exporting the network for 128x128" in capsys.readouterr().err


def test_bad_backend_requests_get_one_line(matterport_export, monkeypatch, tmp_path, capsys):
    checkpoint, onnx_file = matterport_export
    photo = tmp_path / "a.png"
    Image.fromarray(images()[0]).save(photo)
    run = ["detect", "--input", str(photo), "--output", str(tmp_path / "out")]
    assert main([*run, "--onnx", str(onnx_file), "--backend", "openvino"]) != 0
    assert "--onnx runs ONNX Runtime: drop --backend openvino" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "openvino", None)
    assert main([*run, "--weights", str(checkpoint), "--backend", "openvino"]) != 0
    err = capsys.readouterr().err
    assert "--backend openvino needs OpenVINO: pip install" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


#: Run in a child whose files may not grow past 512 KiB (RLIMIT_FSIZE; SIGXFSZ ignored, so a
#: write past it fails with EFBIG, as on a full disk it fails with ENOSPC): the backend caches
#: the graph of argv[1] (linked, not copied, so that only OpenVINO's save writes) into argv[2].
FILE_LIMIT_CHILD = """
import os, resource, signal, sys
from mrcnn.deploy import openvino_backend as backend
from tests.helpers.exported import load_checkpoint
checkpoint, onnx_file, cache = sys.argv[1:4]
def linked(model, path, input_size=None, **_):
    os.link(onnx_file, path)
    return path
backend.export_onnx = linked
model = load_checkpoint(checkpoint)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 19, 1 << 19))
try:
    backend.OpenVinoMaskRCNN(model, cache, say=lambda _: None).compiled_graph((128, 128))
except Exception as error:
    print(type(error).__name__, error)
"""


def test_a_cache_write_past_the_file_limit_says_why_and_leaves_nothing(matterport_export, tmp_path):
    """OpenVINO's save reports a failed write only as "basic_ios::clear: iostream error"."""
    checkpoint, onnx_file = matterport_export
    assert onnx_file.stat().st_size > 1 << 20  # the IR's weights do not fit either
    cache = tmp_path / "cache"
    child = [sys.executable, "-c", FILE_LIMIT_CHILD, str(checkpoint), str(onnx_file), str(cache)]
    said = subprocess.run(child, capture_output=True, text=True, timeout=300).stdout
    assert said.startswith("OutputWriteError cannot cache the graph in"), said
    assert "file too large" in said
    assert [p.name for p in cache.iterdir()] == []  # no half-written entry left behind

"""Exporting Matterport's network flavour (what .h5 models run in): mrcnn.deploy.matterport_graph,
mrcnn.deploy.matterport_runtime, and the runtimes that run the export (--onnx, --backend openvino).

The model is a tiny ResNet-50 in Matterport's flavour with spread scores (the session fixture
``matterport_flavour_export``); the PyTorch model is the reference (it equals Matterport's Keras
code: tests/modeling/test_matterport_equivalence.py).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from mrcnn.deploy import matterport_runtime
from mrcnn.deploy import openvino_backend as backend
from mrcnn.deploy.runtime import OnnxMaskRCNN, inference_plan, molding_for
from mrcnn.modeling.crop_and_resize import pyramid_crop_and_resize
from mrcnn.structures import matterport_image
from mrcnn.testing import photo_like_image
from tests.helpers.exported import assert_same_detections, load_checkpoint

pytest.importorskip("onnxruntime", reason="onnxruntime is a test extra: pip install -e .[test]")

#: Photos of several shapes: one fills the 128 x 128 input, the others are resized or padded.
SHAPES = [(100, 140), (128, 128), (90, 60), (300, 200)]


def images() -> list[np.ndarray]:
    return [photo_like_image(h, w, seed=h) for h, w in SHAPES]


@pytest.fixture(scope="module")
def model(matterport_flavour_export):
    return load_checkpoint(matterport_flavour_export[0])


def test_onnxruntime_gives_the_pytorch_models_detections(matterport_flavour_export, model):
    exported = OnnxMaskRCNN(matterport_flavour_export[1])
    assert exported.settings.NETWORK_FLAVOUR == "matterport"
    assert_same_detections(model.detect(images()), exported.detect(images()))


def test_openvino_gives_the_pytorch_models_detections(
    matterport_flavour_export, model, monkeypatch, tmp_path
):
    pytest.importorskip("openvino", reason="openvino is a test extra: pip install -e .[test]")
    onnx_file = matterport_flavour_export[1]
    monkeypatch.setattr(
        backend, "export_onnx", lambda m, path, **_: shutil.copyfile(onnx_file, path)
    )
    chosen = backend.with_backend(model, "auto", cache_dir=tmp_path, say=lambda _: None)
    assert isinstance(chosen, backend.OpenVinoMaskRCNN)  # .h5 models get OpenVINO too
    assert_same_detections(model.detect(images()), chosen.detect(images()))
    # box masks: the boxes and pasting of MaskRCNN.detect(mask_format="boxes")
    ours = model.detect(images()[:1], mask_format="boxes")[0]
    theirs = chosen.detect(images()[:1], mask_format="boxes")[0]
    np.testing.assert_allclose(theirs["boxes"], ours["boxes"], atol=0.01)
    assert (theirs["masks"].to_dense() != ours["masks"].to_dense()).mean() < 1e-3


@pytest.mark.parametrize(("height", "width"), [(100, 140), (300, 200), (128, 128), (57, 90)])
def test_numpy_molding_and_unmolding_are_the_torch_ones(model, height, width):
    config = model.config
    image = photo_like_image(height, width, seed=width)
    plan = inference_plan(height, width, config)
    molded, window = matterport_runtime.mold_image(image, config, plan)
    reference = matterport_image.mold_image(image, config, plan, torch.float32, "cpu")
    np.testing.assert_array_equal(molded[0], reference.numpy())
    np.testing.assert_array_equal(window[0], np.asarray(plan.meta().window, dtype=np.float32))
    rng = np.random.default_rng(height)
    x1, y1, x2, y2 = plan.meta().window  # the detection layer clips boxes into it
    xs = np.sort(rng.uniform(x1, x2, (12, 2)), axis=1)
    ys = np.sort(rng.uniform(y1, y2, (12, 2)), axis=1)
    boxes = np.stack([xs[:, 0], ys[:, 0], xs[:, 1], ys[:, 1]], axis=1).astype(np.float32)
    boxes[0, 2] = boxes[0, 0]  # no area: dropped, as Matterport drops it
    masks = rng.uniform(0, 1, (12, 28, 28)).astype(np.float32)
    found = matterport_image.unmold_detections(
        torch.from_numpy(boxes),
        torch.ones(12, dtype=torch.int64),
        torch.linspace(1, 0.5, 12),
        torch.from_numpy(masks),
        plan.meta(),
        plan.output_shape,
    )
    pixels, kept = matterport_runtime.unmold_boxes(boxes, plan.meta(), plan.output_shape)
    assert 0 not in kept
    np.testing.assert_array_equal(pixels, found["boxes"])
    pasted = matterport_runtime.paste_masks(masks[kept], pixels, (height, width))
    np.testing.assert_array_equal(pasted, found["masks"])


def test_a_box_ending_on_the_edge_reads_the_edge_in_both_networks():
    """Float rounding can put the last crop_and_resize sample of a box that ends on the map's
    edge a hair past it. Both the PyTorch stage and the export's ROIAlign then read the edge;
    zeroing that row (the strict rule) would make the two disagree whenever their rounding
    differs."""
    side, size = 32, 14
    y1 = np.float32(np.arange(1, 4000) / 4000.0)
    last = np.float32(side - 1)
    step = (np.float32(1.0) - y1) * last / np.float32(size - 1)
    past = y1 * last + np.float32(size - 1) * step > last  # the formula's float32 rounding
    assert past.any()
    starts = torch.from_numpy(y1[past][:8].copy())
    boxes = torch.stack([starts * 0, starts, starts * 0 + 0.5, torch.ones_like(starts)], 1)
    feature = torch.arange(side * side, dtype=torch.float32).view(1, 1, side, side) + 1.0
    levels = torch.full((len(boxes),), 2)
    pooled = pyramid_crop_and_resize([feature], boxes, torch.zeros(len(boxes)).long(), levels, size)
    bottom_row = feature[0, 0, -1]
    assert (pooled[:, 0, -1, 0] == bottom_row[0]).all()  # the first column samples x = 0


def test_a_flavour_the_runtime_does_not_know_is_one_line():
    settings = type("Settings", (), {"NETWORK_FLAVOUR": "detectron"})()
    with pytest.raises(ValueError, match="NETWORK_FLAVOUR='detectron': this runtime molds"):
        molding_for(settings)


def test_int8_graphs_are_made_and_run_for_the_flavour(
    matterport_flavour_export, model, monkeypatch, tmp_path
):
    """.h5 models get int8 graphs too: every weighted layer runs in int8 (the per-level crop
    boxes are written without Add, whose quantizer a level without boxes would leave empty)."""
    pytest.importorskip("nncf", reason="nncf is a test extra: pip install -e .[test]")
    from mrcnn.datasets import ShapesDataset
    from mrcnn.deploy.int8 import make_int8_graph

    onnx_file = matterport_flavour_export[1]
    monkeypatch.setattr(
        backend, "export_onnx", lambda m, path, **_: shutil.copyfile(onnx_file, path)
    )
    scenes = ShapesDataset()
    scenes.load_shapes(4, 128, 128, seed=0)
    scenes.prepare()
    _, report = make_int8_graph(
        model, scenes, tmp_path, (128, 128), holdout=1, say=lambda _: None, progress=False
    )
    assert report.layers >= 80 and report.int8_layers == report.layers
    runner = backend.OpenVinoMaskRCNN(model, tmp_path, "int8", say=lambda _: None)
    found = runner.detect(images()[:1])[0]
    assert runner.exports == 0 and found["masks"].shape[:2] == SHAPES[0]


@pytest.mark.parametrize("nans", [0, 3, 40])
def test_the_graphs_ranking_is_the_models_with_ties_and_nans(nans):
    """The export's tie-proof top-k against the PyTorch model's stable sort, on probabilities
    that tie by the dozen, with NaN scores (a diverged model: the graph's comparisons would
    otherwise choose fewer than k and fail in the runtime)."""
    from mrcnn.deploy.matterport_graph import stable_top_k as graph_top_k
    from mrcnn.modeling.proposals import stable_top_k as model_top_k

    generator = torch.Generator().manual_seed(nans)
    values = torch.randint(0, 12, (200,), generator=generator).float() / 11
    values[torch.randperm(200, generator=generator)[:nans]] = float("nan")
    values[[7, 150]] = torch.tensor([float("inf"), float("-inf")])  # infinities rank as such
    for k in (1, 30, 120):
        assert torch.equal(graph_top_k(values, k), model_top_k(values[None], k)[0])

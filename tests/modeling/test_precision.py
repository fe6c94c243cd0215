"""bf16 inference: convolutions in bf16 with folded weights cached, coordinates in float32."""

from __future__ import annotations

import argparse
import logging

import cv2
import numpy as np
import pytest
import torch

from mrcnn.evaluation import evaluate_dataset
from mrcnn.inspect import run_stages
from mrcnn.modeling import precision
from mrcnn.testing import photo_like_image
from tests.helpers.tiny_model import tiny_model
from tests.helpers.trained_shapes import trained_model, triangles


@pytest.fixture
def bf16_runs(monkeypatch):
    """bf16 runs even where it would be slower than float32 (AVX512_BF16 without AMX): these
    tests are about bf16's results, not its speed."""
    monkeypatch.setattr(precision, "cpu_bf16_shortfall", lambda: None)
    precision.autocast_dtype.cache_clear()
    yield
    precision.autocast_dtype.cache_clear()


def native_bf16(test):
    """Run ``test`` with bf16 on, where the CPU has bf16 instructions."""
    skip = pytest.mark.skipif(
        not precision.cpu_has_native_bf16(), reason="this CPU has no native bf16 (avx512_bf16/amx)"
    )
    return skip(pytest.mark.usefixtures("bf16_runs")(test))


def _dtypes_seen(model, image) -> dict[str, torch.dtype]:
    """Output dtypes of a backbone stage, the FPN and the box head during one detect."""
    seen, handles = {}, []
    for name, module in (
        ("layer1", model.net.backbone.body.layer1),
        ("fpn", model.net.fpn),
        ("box_head", model.net.box_head),
    ):

        def hook(_module, _inputs, output, name=name):
            first = output[0] if isinstance(output, (list, tuple)) else output
            seen[name] = first.dtype

        handles.append(module.register_forward_hook(hook))
    try:
        result = model.detect([image])[0]
    finally:
        for handle in handles:
            handle.remove()
    return seen | {"boxes": torch.from_numpy(result["boxes"]).dtype}


@native_bf16
def test_bf16_runs_the_layers_in_bf16_and_returns_float32_boxes():
    image = photo_like_image(96, 128)
    seen = _dtypes_seen(tiny_model(INFERENCE_PRECISION="bf16"), image)
    assert seen == {
        "layer1": torch.bfloat16,
        "fpn": torch.bfloat16,
        "box_head": torch.bfloat16,
        "boxes": torch.float32,
    }
    assert _dtypes_seen(tiny_model(), image)["layer1"] == torch.float32


@native_bf16
def test_bf16_agrees_with_fp32_on_a_trained_model():
    """The overfit triangles model: the same confident detections in bf16 as in fp32 (class,
    score within 0.05, masks that differ only on the fp32 mask's edge) and the same mask AP.

    Edge, not an IoU bar: this weakly trained model's mask logits sit near 0.5 along the
    triangles' edges, so bf16 rounding may flip an edge row (an AVX-512 EPYC: 206 against 199
    pixels, IoU 0.89, the boxes within 0.02 px); a mask that moved or changed shape differs
    away from the edge."""
    dataset = triangles(3)
    fp32, bf16 = trained_model(), trained_model(INFERENCE_PRECISION="bf16")
    for image_id in dataset.image_ids:
        image = dataset.load_image(image_id)
        expected, result = fp32.detect([image])[0], bf16.detect([image])[0]
        assert result["masks"].dtype == bool and result["boxes"].dtype == np.float32
        confident = np.flatnonzero(expected["scores"] >= 0.5)
        assert len(confident) > 0
        for i in confident:
            ious = [
                _iou(expected["masks"][..., i], result["masks"][..., j])
                for j in range(result["masks"].shape[2])
            ]
            j = int(np.argmax(ious))
            assert result["class_ids"][j] == expected["class_ids"][i]
            assert _only_on_the_edge(expected["masks"][..., i], result["masks"][..., j])
            assert abs(result["scores"][j] - expected["scores"][i]) <= 0.05
    aps = [
        evaluate_dataset(m, dataset, iou_thresholds=(0.5,), progress=False).map50
        for m in (fp32, bf16)
    ]
    assert abs(aps[0] - aps[1]) <= 0.01, aps


def _only_on_the_edge(mask: np.ndarray, other: np.ndarray) -> bool:
    """Whether bool ``other`` [H, W] differs from ``mask`` only within a pixel of its edge."""
    cross = np.ones((3, 3), np.uint8)
    grown = cv2.dilate(mask.astype(np.uint8), cross).astype(bool)
    shrunk = cv2.erode(mask.astype(np.uint8), cross).astype(bool)
    return not ((mask ^ other) & ~(grown & ~shrunk)).any()


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


@native_bf16
def test_bf16_folded_weights_are_folded_once_and_cached():
    model = tiny_model(INFERENCE_PRECISION="bf16")
    image = photo_like_image(64, 64)
    model.detect([image])
    conv1 = model.net.backbone.body.conv1

    def bf16_fold():
        caches = conv1.__dict__["_folded_cache"]
        return next(value for tag, (_, value) in caches.items() if tag[:2] == ("folded", bf16))

    bf16 = torch.bfloat16
    cached = bf16_fold()
    model.detect([image])
    assert bf16_fold()[0] is cached[0], "folded again"
    assert cached[0].dtype == torch.bfloat16
    with torch.no_grad():  # the fold is made in float32, then cast
        weight, bias = conv1.folded_weights()
    assert torch.equal(cached[0], weight.to(torch.bfloat16))
    assert torch.equal(cached[1], bias.to(torch.bfloat16))


@native_bf16
def test_bf16_keeps_box_coordinates_in_float32():
    """bf16 has 8 significant bits: between 256 and 512 px it steps by 2 px. Decoding in
    float32 keeps anchors, proposals and detections off that grid."""
    model = tiny_model(INFERENCE_PRECISION="bf16", IMAGE_MIN_DIM=512, IMAGE_MAX_DIM=512)
    image = photo_like_image(512, 512, seed=4)
    found = {}
    hook = model.net.register_forward_hook(lambda _m, _i, output: found.update(output))
    try:
        model.detect([image])
    finally:
        hook.remove()
    assert found["boxes"].dtype == torch.float32
    # The proposal layer's anchors, as run_stages shows them (the tiny model's random deltas
    # clip most proposals to the image's edges).
    anchors = torch.from_numpy(run_stages(model, image).pre_nms_anchors)
    for boxes in (found["boxes"], anchors):
        far = boxes[boxes > 256]
        assert len(far) > 0 and bool((far % 2 != 0).any()), "coordinates on bf16's 2-px grid"


@native_bf16
def test_inspection_shows_what_bf16_detect_computes():
    """run_stages (mrcnn.inspect), run_graph and detect_molded run the network in the precision
    detect runs it in, so that what they show is what detect found."""
    model = tiny_model(INFERENCE_PRECISION="bf16")
    image = photo_like_image(96, 128, seed=2)
    scores = model.detect([image])[0]["scores"]
    assert not np.array_equal(tiny_model().detect([image])[0]["scores"], scores)  # bf16 shows

    np.testing.assert_array_equal(run_stages(model, image).detections["scores"], scores)
    graph = model.run_graph([image], [("detections", "mrcnn_detection")])["detections"]
    np.testing.assert_array_equal(graph[0, : len(scores), 5], scores)
    molded, metas, _ = model.mold_inputs([image])
    np.testing.assert_array_equal(model.detect_molded(molded, metas)[0]["scores"], scores)


def _says_once_and_runs_fp32(caplog, message: str) -> None:
    precision.autocast_dtype.cache_clear()
    try:
        image = photo_like_image(64, 96, seed=1)
        expected = tiny_model().detect([image])[0]
        model = tiny_model(INFERENCE_PRECISION="bf16")
        with caplog.at_level(logging.WARNING, logger="mrcnn.modeling.precision"):
            first = model.detect([image])[0]
            model.detect([image])
        warnings = [r for r in caplog.records if message in r.getMessage()]
        assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
        np.testing.assert_array_equal(first["boxes"], expected["boxes"])
        np.testing.assert_array_equal(first["masks"], expected["masks"])
    finally:
        precision.autocast_dtype.cache_clear()


def test_without_native_bf16_it_says_so_once_and_runs_fp32(monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    _says_once_and_runs_fp32(caplog, "no native bf16")


def test_avx512_bf16_without_amx_that_is_slower_says_so_once_and_runs_fp32(monkeypatch, caplog):
    """A Xeon here showed avx512_bf16 but no AMX, and its bf16 convolutions took 1.75 times
    float32's time: the flag alone would have made detect 1.57 times slower."""
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    monkeypatch.setattr(precision, "bf16_conv_time_ratio", lambda: 1.75)
    _says_once_and_runs_fp32(caplog, "avx512_bf16 but no AMX, and a bf16 convolution took 1.75")


@pytest.mark.parametrize(
    ("flags", "ratio"),
    [({"avx512_bf16"}, 0.5), ({"avx512_bf16", "amx_bf16", "amx_tile"}, None)],
    ids=["avx512_bf16_measured_faster", "amx_not_measured"],
)
def test_bf16_runs_where_it_is_faster(monkeypatch, flags, ratio):
    def measured() -> float:
        assert ratio is not None, "AMX is trusted without a measurement"
        return ratio

    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
    monkeypatch.setattr(precision, "bf16_conv_time_ratio", measured)
    precision.autocast_dtype.cache_clear()
    try:
        try:
            seen = _dtypes_seen(tiny_model(INFERENCE_PRECISION="bf16"), photo_like_image(64, 96))
        except RuntimeError as error:
            if "bf16 path needs the cpu support" not in str(error):
                raise
            # The flags above are simulated; running bf16 needs the real instructions.
            pytest.skip(f"this CPU cannot run bf16 convolutions (AVX2 only): {error}")
        assert seen["layer1"] == torch.bfloat16
    finally:
        precision.autocast_dtype.cache_clear()


def test_the_bf16_probe_measures_a_time_ratio(monkeypatch):
    convolved, conv2d = [], torch.nn.functional.conv2d

    def recording(x, w, **kwargs):
        out = conv2d(x, w, **kwargs)
        convolved.append(out.dtype)
        return out

    monkeypatch.setattr(torch.nn.functional, "conv2d", recording)
    with torch.autocast("cpu", torch.bfloat16):  # a caller's autocast must not change the runs
        ratio = precision.bf16_conv_time_ratio.__wrapped__(repeats=1)
    assert 0.0 < ratio < float("inf")
    assert convolved == [torch.float32, torch.bfloat16] * 3


def test_float64_network_ignores_half_precision():
    image = photo_like_image(64, 96, seed=2)
    exact = tiny_model().to(torch.float64).detect([image])[0]
    asked = tiny_model(INFERENCE_PRECISION="bf16").to(torch.float64).detect([image])[0]
    np.testing.assert_array_equal(asked["boxes"], exact["boxes"])


def test_unknown_precision_is_refused():
    from mrcnn.config import Config

    with pytest.raises(ValueError, match="INFERENCE_PRECISION='int8'"):
        Config.from_overrides({"INFERENCE_PRECISION": "int8"})


def test_precision_flag_sets_the_config(tmp_path):
    from mrcnn.cli import build_parser
    from mrcnn.commands.common import inference_config
    from tests.helpers.tiny_model import save_tiny_checkpoint

    checkpoint = save_tiny_checkpoint(tmp_path / "tiny.pt")
    for command in ("detect", "splash", "evaluate"):
        assert (
            "--precision"
            in build_parser()._subparsers._group_actions[0].choices[command].format_help()
        )
    args = argparse.Namespace(
        weights=str(checkpoint), config=None, set=[], device=None, precision="bf16", logs="x"
    )
    assert inference_config(args).INFERENCE_PRECISION == "bf16"
    args.precision = None
    assert inference_config(args).INFERENCE_PRECISION == "fp32"

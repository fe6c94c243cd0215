"""bf16 inference: convolutions in bf16 with folded weights cached, coordinates in float32."""

from __future__ import annotations

import argparse
import logging

import numpy as np
import pytest
import torch

from mrcnn.model import precision
from mrcnn.testing import photo_like_image
from tests._tiny_model import tiny_model

native_bf16 = pytest.mark.skipif(
    not precision.cpu_has_native_bf16(), reason="this CPU has no native bf16 (avx512_bf16/amx)"
)


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
def test_bf16_results_keep_the_public_types():
    image = photo_like_image(96, 128, seed=3)
    bf16 = tiny_model(INFERENCE_PRECISION="bf16").detect([image])[0]
    assert len(bf16["scores"]) > 0
    assert bf16["masks"].dtype == bool and bf16["masks"].shape[:2] == image.shape[:2]
    assert bf16["boxes"].dtype == np.float32 and bf16["scores"].dtype == np.float32
    assert bf16["rois"].dtype == np.int32 and bf16["class_ids"].dtype == np.int32


@native_bf16
def test_bf16_folded_weights_are_folded_once_and_cached():
    model = tiny_model(INFERENCE_PRECISION="bf16")
    image = photo_like_image(64, 64)
    model.detect([image])
    conv1 = model.net.backbone.body.conv1
    cached = conv1.__dict__["_folded_cache"][torch.bfloat16]
    model.detect([image])
    assert conv1.__dict__["_folded_cache"][torch.bfloat16][1] is cached[1], "folded again"
    assert cached[1].dtype == torch.bfloat16


def test_without_native_bf16_it_says_so_once_and_runs_fp32(monkeypatch, caplog):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    precision.autocast_dtype.cache_clear()
    try:
        image = photo_like_image(64, 96, seed=1)
        expected = tiny_model().detect([image])[0]
        model = tiny_model(INFERENCE_PRECISION="bf16")
        with caplog.at_level(logging.WARNING, logger="mrcnn.model.precision"):
            first = model.detect([image])[0]
            model.detect([image])
        warnings = [r for r in caplog.records if "no native bf16" in r.getMessage()]
        assert len(warnings) == 1
        np.testing.assert_array_equal(first["boxes"], expected["boxes"])
        np.testing.assert_array_equal(first["masks"], expected["masks"])
    finally:
        precision.autocast_dtype.cache_clear()


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
    from mrcnn.commands.detect import inference_config
    from tests._tiny_model import save_tiny_checkpoint

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

"""ONNX export (mrcnn export, mrcnn.deploy) and the ONNX Runtime path (detect --onnx).

The comparisons export tiny random-weight models whose head weights are scaled down so that
scores spread (unscaled, every score saturates at 1.0 and the order of ties is arbitrary).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mrcnn.cli import main
from mrcnn.config import Config
from mrcnn.deploy import runtime
from mrcnn.deploy.export import (
    check_onnx_dependencies,
    default_input_size,
    export_format,
    export_onnx,
)
from mrcnn.structures.image import mold_batch, paste_masks, plan_resize, unmold_boxes
from mrcnn.testing import photo_like_image
from tests.helpers.exported import (
    CLASS_NAMES,
    MATTERPORT_STYLE,
    TORCHVISION_STYLE,
    assert_same_detections,
    load_checkpoint,
    save_checkpoint,
    spread_scores,
)
from tests.helpers.tiny_model import tiny_model

pytest.importorskip("onnxruntime", reason="onnxruntime is a test extra: pip install -e .[test]")
pytest.importorskip("onnxscript", reason="onnxscript is a test extra: pip install -e .[test]")


@pytest.fixture(scope="module")
def torchvision_export(module_tmp):
    folder = module_tmp.mktemp("onnx_torchvision")
    model = load_checkpoint(save_checkpoint(folder / "tv.pt", **TORCHVISION_STYLE))
    onnx_file = export_onnx(model, folder / "tv.onnx", class_names=["BG", *CLASS_NAMES])
    return model, onnx_file


def test_onnxruntime_matches_pytorch_matterport_style(matterport_export):
    checkpoint, onnx_file = matterport_export
    model = load_checkpoint(checkpoint)
    exported = runtime.OnnxMaskRCNN(onnx_file)
    assert exported.input_size == (128, 128)
    assert exported.class_names == ["BG", *CLASS_NAMES]
    images = [photo_like_image(h, w, seed=h) for h, w in [(100, 140), (128, 128), (90, 60)]]
    assert_same_detections(model.detect(images), exported.detect(images))


@pytest.mark.slow
def test_onnxruntime_matches_pytorch_torchvision_style(torchvision_export):
    model, onnx_file = torchvision_export
    exported = runtime.OnnxMaskRCNN(onnx_file)
    assert exported.input_size == default_input_size(model.config) == (96, 128)
    images = [photo_like_image(h, w, seed=h) for h, w in [(90, 120), (150, 200), (60, 80)]]
    assert_same_detections(model.detect(images), exported.detect(images))


def test_image_larger_than_the_input_is_fitted_with_a_warning(torchvision_export):
    _, onnx_file = torchvision_export
    exported = runtime.OnnxMaskRCNN(onnx_file)
    with pytest.warns(UserWarning, match="--input-size"):
        result = exported.detect([photo_like_image(120, 90)])[0]  # portrait: 128 x 96
    assert result["masks"].shape[:2] == (120, 90)
    assert (result["boxes"][:, [2, 3]] <= [90, 120]).all()


def background_everywhere(onnx_file: Path, target: Path) -> Path:
    """A copy of an exported model whose background logit is raised by 1e4, so that nothing
    is detected: the exported graph's own empty path, without exporting again. The exporter
    drops a zero bias, so the class-logits Gemm gets one (its input C)."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_file))
    weights = "net.box_head.class_logits.weight"
    (gemm,) = [n for n in graph.graph.node if n.op_type == "Gemm" and n.input[1] == weights]
    (weight,) = [i for i in graph.graph.initializer if i.name == weights]
    bias = np.zeros(numpy_helper.to_array(weight).shape[0], dtype=np.float32)
    if len(gemm.input) == 3:
        (old,) = [i for i in graph.graph.initializer if i.name == gemm.input[2]]
        bias = numpy_helper.to_array(old).copy()
        graph.graph.initializer.remove(old)
    bias[0] += 1e4
    graph.graph.initializer.append(numpy_helper.from_array(bias, "background_everywhere"))
    del gemm.input[2:]
    gemm.input.append("background_everywhere")
    onnx.save(graph, str(target))
    return target


def test_no_detections_gives_empty_results(torchvision_export, tmp_path):
    _, onnx_file = torchvision_export
    empty = background_everywhere(onnx_file, tmp_path / "empty.onnx")
    assert runtime.OnnxMaskRCNN(onnx_file).detect([photo_like_image(60, 80)])[0]["scores"].size
    exported = runtime.OnnxMaskRCNN(empty)
    result = exported.detect([photo_like_image(60, 80)])[0]
    assert result["masks"].shape == (60, 80, 0)
    assert result["boxes"].shape == (0, 4) and result["class_ids"].shape == (0,)
    with pytest.raises(ValueError, match="image 1: dtype float32, expected uint8"):
        exported.detect([photo_like_image(60, 80), np.zeros((5, 5, 3), np.float32)])
    with pytest.raises(ValueError, match="empty list of images"):
        exported.detect([])


def threshold_built_in(onnx_file: Path, target: Path, threshold: float) -> Path:
    """A copy of an exported model as files exported before "min_score" was an input are:
    two inputs, the threshold a constant of the graph."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_file))
    (fed,) = [each for each in graph.graph.input if each.name == "min_score"]
    graph.graph.input.remove(fed)
    value = np.asarray([threshold], dtype=np.float32)
    graph.graph.initializer.append(numpy_helper.from_array(value, "min_score"))
    onnx.save(graph, str(target))
    return target


def test_the_threshold_is_fed_and_files_with_it_built_in_still_run(matterport_export, tmp_path):
    _, onnx_file = matterport_export
    image = [photo_like_image(100, 140, seed=100)]
    exported = runtime.OnnxMaskRCNN(onnx_file)
    everything = exported.detect(image)[0]["scores"]
    cut = float(np.median(everything))
    exported.settings.DETECTION_MIN_CONFIDENCE = cut
    assert len(exported.detect(image)[0]["scores"]) == int((everything >= np.float32(cut)).sum())
    older = runtime.OnnxMaskRCNN(threshold_built_in(onnx_file, tmp_path / "old.onnx", cut))
    assert [each.name for each in older.session.get_inputs()] == ["image", "window"]
    older.settings.DETECTION_MIN_CONFIDENCE = 0.0  # cannot bring back what the graph dropped
    np.testing.assert_array_equal(older.detect(image)[0]["scores"], everything[everything >= cut])


@pytest.mark.slow
def test_torch_export_program_matches_the_network(tmp_path):
    from mrcnn.deploy.export import export_program

    model = spread_scores(tiny_model(**MATTERPORT_STYLE))
    path = export_program(model, tmp_path / "tiny.pt2")
    program = torch.export.load(str(path)).module()
    batch, metas = mold_batch([photo_like_image(100, 140)], model.config)
    window = torch.tensor([metas[0].window], dtype=torch.float32)
    with torch.no_grad():
        min_score = torch.tensor([model.config.DETECTION_MIN_CONFIDENCE], dtype=torch.float32)
        boxes, class_ids, scores, masks = program(batch, window, min_score)
        reference = model.net.eval()(batch, window)
    assert len(scores) == len(reference["scores"]) > 0
    torch.testing.assert_close(boxes, reference["boxes"], atol=1e-3, rtol=0)
    assert torch.equal(class_ids, reference["class_ids"])
    torch.testing.assert_close(masks, reference["masks"], atol=1e-2, rtol=0)


# ------------------------------------------------------------------ CLI
def test_detect_onnx_writes_the_same_results_as_pytorch(matterport_export, tmp_path):
    checkpoint, onnx_file = matterport_export
    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image

    Image.fromarray(photo_like_image(100, 140, seed=3)).save(images / "7.png")
    assert main(["detect", "--onnx", str(onnx_file), "--input", str(images), "--output",
                 str(tmp_path / "onnx")]) == 0  # fmt: skip
    assert main(["detect", "--weights", str(checkpoint), "--input", str(images), "--output",
                 str(tmp_path / "torch"), "--device", "cpu"]) == 0  # fmt: skip
    ours = json.loads((tmp_path / "onnx" / "detections.json").read_text())
    reference = json.loads((tmp_path / "torch" / "detections.json").read_text())
    assert len(ours) == len(reference) > 0
    assert (tmp_path / "onnx" / "7.png").is_file()
    assert {e["category_name"] for e in ours} <= set(CLASS_NAMES)
    for entry in reference:
        nearest = min(ours, key=lambda e: np.abs(np.subtract(e["bbox"], entry["bbox"])).max())
        assert nearest["category_id"] == entry["category_id"]
        assert np.abs(np.subtract(nearest["bbox"], entry["bbox"])).max() <= 0.5


def test_detect_onnx_refuses_weights_and_config(matterport_export, tmp_path, capsys):
    checkpoint, onnx_file = matterport_export
    image = tmp_path / "a.png"
    from PIL import Image

    Image.fromarray(photo_like_image(64, 64)).save(image)
    out = str(tmp_path / "out")
    args = ["detect", "--onnx", str(onnx_file), "--input", str(image), "--output", out]
    assert main([*args, "--weights", str(checkpoint)]) == 1
    assert "drop --weights" in capsys.readouterr().err
    assert main(["detect", "--input", str(image), "--output", out]) == 1
    assert "--weights" in capsys.readouterr().err


def test_export_refuses_to_overwrite(matterport_export, tmp_path, capsys):
    checkpoint, _ = matterport_export
    out = tmp_path / "model.onnx"
    out.write_bytes(b"the user's file")
    assert main(["export", "--weights", str(checkpoint), str(out)]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"the user's file"
    with pytest.raises(FileExistsError):
        export_onnx(tiny_model(), out)


def test_export_bad_input_size_opset_and_missing_folder(matterport_export, tmp_path, capsys):
    checkpoint, _ = matterport_export
    args = ["export", "--weights", str(checkpoint)]
    assert main([*args, "--input-size", "128", str(tmp_path / "a.onnx")]) == 1
    assert "HEIGHTxWIDTH" in capsys.readouterr().err
    assert main([*args, str(tmp_path / "missing" / "a.onnx")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main([*args, "--opset", "13", str(tmp_path / "a.onnx")]) == 1
    assert "use 16 or later" in capsys.readouterr().err


def test_export_format_follows_the_file_name():
    assert export_format("model.onnx") == "onnx"
    assert export_format("logs/Model.PT2") == "pt2"
    assert export_format("model", "onnx") == "onnx"  # no extension: the choice stands
    assert export_format("model.pt2", "pt2") == "pt2"
    with pytest.raises(ValueError, match=r"model.pt2 is named as a pt2 file .* model.onnx"):
        export_format("model.pt2", "onnx")
    with pytest.raises(ValueError, match=r"model.bin: .* \.onnx .* \.pt2 .* --format"):
        export_format("model.bin")


def test_export_refuses_a_name_of_the_other_format_before_loading(tmp_path, capsys):
    missing = str(tmp_path / "absent.pt")  # the refusal must come before the weights are read
    assert main(["export", "--weights", missing, str(tmp_path / "model.bin")]) == 1
    assert "name it .onnx (ONNX), .pt2" in capsys.readouterr().err
    args = ["export", "--weights", missing, "--format", "onnx", str(tmp_path / "model.pt2")]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "named as a pt2 file but the format is onnx: name it" in err and "model.onnx" in err
    with pytest.raises(ValueError, match="name it .*model.onnx"):
        export_onnx(tiny_model(), tmp_path / "model.pt2")
    assert not list(tmp_path.iterdir())


def test_export_says_how_to_install_missing_packages(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # makes `import onnxscript` fail
    with pytest.raises(RuntimeError, match="pip install onnx onnxscript onnxruntime"):
        check_onnx_dependencies()
    assert main(["export", "--weights", "coco", str(tmp_path / "a.onnx")]) == 1
    err = capsys.readouterr().err
    assert "error: ONNX export needs onnxscript" in err and "pip install" in err
    assert not (tmp_path / "a.onnx").exists()


def test_an_exporter_failure_is_one_line_naming_torch_and_the_way_out(
    matterport_export, monkeypatch, tmp_path, capsys
):
    """torch 2.11's exporter failed on this graph with pages of text; the user gets one line."""
    checkpoint, _ = matterport_export

    def failing_export(*args, **kwargs):
        try:
            raise OverflowError("Python int too large to convert to C long")
        except OverflowError as cause:
            raise torch.onnx.OnnxExporterError("Failed to convert.\n\nNext steps: ...") from cause

    monkeypatch.setattr(torch.onnx, "export", failing_export)
    out = tmp_path / "model.onnx"
    assert main(["export", "--weights", str(checkpoint), str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"torch {torch.__version__}'s ONNX exporter" in err
    assert "OverflowError: Python int too large to convert to C long" in err
    assert "upgrade torch" in err and str(tmp_path / "model.pt2") in err
    assert not out.exists()


def test_export_help(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = capsys.readouterr().out
    for flag in ("--weights", "--format", "--input-size", "--overwrite", "OUT"):
        assert flag in text


# ------------------------------------------------------------------ runtime pieces (no export)
def test_runtime_does_not_import_torch():
    code = (
        "import sys, mrcnn.deploy.runtime\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("size", [(7, 11), (30, 17), (64, 64), (3, 90)])
def test_resize_bilinear_is_torchs(size):
    array = np.random.default_rng(0).normal(size=(3, 23, 31)).astype(np.float32)
    expected = F.interpolate(
        torch.from_numpy(array)[None], size=size, mode="bilinear", align_corners=False
    )[0].numpy()
    np.testing.assert_allclose(runtime.resize_bilinear(array, size), expected, atol=1e-5)


def test_mold_image_is_mold_batch():
    config = Config.from_overrides(TORCHVISION_STYLE)
    image = photo_like_image(90, 120)
    plan, fitted = runtime.plan_for_input(90, 120, config, (96, 128))
    molded, window = runtime.mold_image(image, config, plan)
    expected, metas = mold_batch([image], config)
    assert not fitted and molded.shape == tuple(expected.shape)
    np.testing.assert_allclose(molded, expected.numpy(), atol=1e-4)
    assert tuple(window[0]) == metas[0].window


def test_plan_for_input_pads_to_the_input_size():
    config = Config.from_overrides({"IMAGE_RESIZE_MODE": "square", "IMAGE_MAX_DIM": 128})
    plan, fitted = runtime.plan_for_input(100, 50, config, (128, 128))
    assert not fitted and plan.output_shape == (128, 128)
    assert plan == plan_resize(100, 50, "square", config.IMAGE_MIN_DIM, 128)


def test_unmold_and_paste_are_the_torch_ones():
    rng = np.random.default_rng(1)
    meta = plan_resize(90, 120, "shortest_side", 96, 160).meta()
    boxes = np.sort(rng.uniform(-5, 130, size=(12, 2, 2)), axis=1).reshape(12, 4)
    boxes = boxes[:, [0, 2, 1, 3]].astype(np.float32)  # x1, y1, x2, y2 with x1 < x2, y1 < y2
    unmolded = runtime.unmold_boxes(boxes, meta)
    expected = unmold_boxes(torch.from_numpy(boxes), meta).numpy()
    np.testing.assert_allclose(unmolded, expected, atol=1e-5)
    masks = rng.uniform(size=(12, 28, 28)).astype(np.float32)
    pasted = runtime.paste_masks(masks, unmolded, (90, 120))
    reference = paste_masks(torch.from_numpy(masks), torch.from_numpy(unmolded), (90, 120))
    assert pasted.shape == (90, 120, 12)
    assert (pasted != reference.numpy()).sum() <= 2  # float rounding at the 0.5 threshold


def test_runtime_errors_name_the_file(tmp_path, monkeypatch):
    import onnx
    from onnx import TensorProto, helper

    with pytest.raises(FileNotFoundError, match="not found"):
        runtime.OnnxMaskRCNN(tmp_path / "missing.onnx")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="cannot load ONNX model"):
        runtime.OnnxMaskRCNN(broken)
    plain = tmp_path / "plain.onnx"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [x])
    graph.output[0].name = "y"
    # IR version 8 (opset 17): old enough for every onnxruntime the requirements admit (onnx
    # writes its newest IR by default, which an onnxruntime older than that onnx refuses).
    model = helper.make_model(graph, ir_version=8, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, plain)
    with pytest.raises(ValueError, match="mrcnn export"):
        runtime.OnnxMaskRCNN(plain)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # not installed
    with pytest.raises(RuntimeError, match="pip install onnxruntime"):
        runtime.OnnxMaskRCNN(plain)


# ------------------------------------------------------------------------------------------------
# Issue 31, rule 15: malformed metadata, an existing folder as OUT
# ------------------------------------------------------------------------------------------------
def _identity_onnx(path: Path, metadata: str | None) -> Path:
    import onnx
    from onnx import TensorProto, helper

    value = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [value], [out])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata is not None:
        helper.set_model_props(model, {runtime.METADATA_KEY: metadata})
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(
    "metadata, said",
    [
        ("{not json", "metadata is not JSON"),
        ("[1, 2]", "metadata is not a JSON object"),
        ('{"format": 1, "config": {}, "input_size": "big"}', "lacks a valid config, input_size"),
        ('{"format": 1, "input_size": [64, 64]}', "lacks a valid config"),
    ],
)
def test_malformed_onnx_metadata_is_one_line_naming_the_file(tmp_path, capsys, metadata, said):
    from PIL import Image

    model = _identity_onnx(tmp_path / "bad.onnx", metadata)
    with pytest.raises(ValueError, match=f"^{model}: .*{said}"):
        runtime.OnnxMaskRCNN(model)
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    argv = ["detect", "--onnx", str(model), "--input", str(tmp_path / "a.png")]
    assert main([*argv, "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(model) in err and said in err


def test_export_onto_an_existing_folder_fails_before_the_export(tmp_path, capsys, monkeypatch):
    from mrcnn.commands import common

    built = []
    monkeypatch.setattr(common, "build_model", lambda args: built.append(1))
    folder = tmp_path / "model.onnx"
    folder.mkdir()
    for extra in ([], ["--overwrite"]):
        assert main(["export", str(folder), "--weights", "coco", *extra]) == 1
        err = capsys.readouterr().err.strip()
        said = f"{folder} is an existing folder; give a file name, or move it away"
        assert err == f"mrcnn export: error: {said}"
    assert not built  # refused before any model work

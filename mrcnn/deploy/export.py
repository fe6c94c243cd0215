"""Export a model's inference network to ONNX (or a ``torch.export`` program) for a fixed size.

:func:`export_onnx` traces :class:`~mrcnn.deploy.graph.InferenceGraph` with ``torch.export``
and translates it with ``torch.onnx.export`` (the dynamo exporter, which needs the ``onnx`` and
``onnxscript`` packages). The file holds the weights and, as metadata, the settings that
:mod:`mrcnn.deploy.runtime` needs to mold images and unmold detections.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from mrcnn.deploy.graph import INPUT_NAMES, OUTPUT_NAMES, InferenceGraph
from mrcnn.deploy.matterport_graph import MatterportInferenceGraph
from mrcnn.deploy.runtime import METADATA_FORMAT, METADATA_KEY
from mrcnn.modeling.backbone import clear_folded_weights
from mrcnn.outputs import OutputError, atomic_output
from mrcnn.structures.resize_plan import MAX_EXPORT_SIDE, plan_resize

#: Config values the runtime reads (molding, unmolding, labelling).
RUNTIME_SETTINGS = (
    "NAME",
    "NUM_CLASSES",
    "IMAGE_RESIZE_MODE",
    "IMAGE_MIN_DIM",
    "IMAGE_MAX_DIM",
    "IMAGE_MIN_SCALE",
    "MEAN_PIXEL",
    "STD_PIXEL",
    "MASK_SHAPE",
    "DETECTION_MIN_CONFIDENCE",
    "DETECTION_MAX_INSTANCES",
    "NETWORK_FLAVOUR",
)

INSTALL_HINT = "pip install onnx onnxscript onnxruntime (or pip install 'mrcnn[onnx]')"

#: The torch release whose ONNX exporter the tests pass with. torch 2.11's could not convert
#: the graph (an OverflowError on a size bound near 2**65); .pt2 export worked there.
EXPORT_TESTED_TORCH = "2.14.1"

#: The export formats by the file extension they are written with.
FORMAT_SUFFIXES = {"onnx": ".onnx", "pt2": ".pt2", "openvino": ".xml"}


def export_format(path: str | os.PathLike, chosen: str | None = None) -> str:
    """The format to write ``path`` in: ``chosen``, else the one its extension names.

    Why: a file named for one format but holding the other fails later in a tool that trusts
    the name (ONNX Runtime on a .pt2, ``torch.export.load`` on a .onnx), far from the cause.

    Raises:
        ValueError: ``chosen`` contradicts the extension, or neither names a format.
    """
    suffix = Path(path).suffix.lower()
    named = next((name for name, ext in FORMAT_SUFFIXES.items() if ext == suffix), None)
    if chosen is not None and chosen not in FORMAT_SUFFIXES:
        raise ValueError(f"format {chosen!r} is not one of {', '.join(FORMAT_SUFFIXES)}")
    if chosen is not None and named is not None and chosen != named:
        raise ValueError(
            f"{path} is named as {'an' if named == 'onnx' else 'a'} {named} file but the format "
            f"is {chosen}: "
            f"name it {Path(path).with_suffix(FORMAT_SUFFIXES[chosen])}, or write {named}"
        )
    if chosen is None and named is None:
        raise ValueError(
            f"{path}: the extension does not say the format; name it .onnx (ONNX), .pt2 "
            "(torch.export program) or .xml (OpenVINO IR), or give --format"
        )
    return chosen or named


def check_onnx_dependencies() -> None:
    """Raise RuntimeError, saying how to install them, when onnx or onnxscript is missing."""
    missing = []
    for name in ("onnx", "onnxscript"):
        try:
            __import__(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise RuntimeError(f"ONNX export needs {' and '.join(missing)}: {INSTALL_HINT}")


#: RoiAlign's coordinate_transformation_mode (needed for aligned ROIAlign) came in opset 16.
MIN_OPSET = 16


def check_opset(opset: int | None) -> None:
    """Raise ValueError for an opset too old for the graph (None: the exporter's default)."""
    if opset is not None and int(opset) < MIN_OPSET:
        raise ValueError(
            f"--opset {opset}: use {MIN_OPSET} or later (RoiAlign's "
            "coordinate_transformation_mode, which aligned ROIAlign needs, came in opset 16)"
        )


def default_input_size(config) -> tuple[int, int]:
    """(H, W) network input the export is made for, when none is given.

    The molded size every image gets in the fixed-size modes ("square": IMAGE_MAX_DIM square;
    "pad64" and "crop": IMAGE_SHAPE, i.e. IMAGE_MAX_DIM square rounded up to 64); for
    "shortest_side", the molded size of a 4:3 landscape photo (800 x 1088 for torchvision's
    800/1333). "none" keeps every image's size, so it needs an explicit size.
    """
    mode = config.IMAGE_RESIZE_MODE
    side = int(config.IMAGE_MAX_DIM)
    if mode == "square":
        return side, side
    if mode in ("pad64", "crop"):
        side = -(-side // 64) * 64
        return side, side
    if mode == "shortest_side":
        min_dim = int(config.IMAGE_MIN_DIM)
        plan = plan_resize(min_dim * 3, min_dim * 4, mode, min_dim, side)
        return plan.output_shape
    raise ValueError(
        f"IMAGE_RESIZE_MODE={mode!r} keeps each image's size: give the input size to export "
        "for (--input-size HxW)"
    )


def runtime_settings(config) -> dict:
    """The :data:`RUNTIME_SETTINGS` of a config as JSON-ready values."""

    def plain(value):
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, (np.generic,)):
            return value.item()
        if isinstance(value, tuple):
            return list(value)
        return value

    return {key: plain(getattr(config, key)) for key in RUNTIME_SETTINGS}


@contextlib.contextmanager
def _fresh_folded_weights(net: torch.nn.Module) -> Iterator[None]:
    """Tracing must neither read nor leave behind the folded-BatchNorm cache (it would hold the
    tracer's fake tensors), so it is cleared on both sides."""
    clear_folded_weights(net)
    try:
        yield
    finally:
        clear_folded_weights(net)


def graph_class(net) -> type[InferenceGraph]:
    """The export graph of ``net``'s NETWORK_FLAVOUR (chosen once, at export)."""
    graphs = {"torchvision": InferenceGraph, "matterport": MatterportInferenceGraph}
    if net.flavour.name not in graphs:
        raise ValueError(
            f"exporting NETWORK_FLAVOUR={net.flavour.name!r} is not supported (its stages are "
            "not in the export graph); run it in PyTorch"
        )
    return graphs[net.flavour.name]


def inference_graph(model, input_size: Sequence[int] | None = None):
    """(graph, example inputs) for a MaskRCNN facade: the network on CPU in float32, eval mode.

    Raises ValueError for a model that is not on the CPU in float32.
    """
    net = model.net
    parameter = next(net.parameters())
    if parameter.device.type != "cpu" or parameter.dtype != torch.float32:
        raise ValueError(
            f"export runs on a float32 CPU model, this one is {parameter.dtype} on "
            f"{parameter.device}: use model.to('cpu').to(torch.float32) (or --device cpu)"
        )
    height, width = (int(s) for s in (input_size or default_input_size(model.config)))
    if height < 64 or width < 64:
        raise ValueError(f"input size {height}x{width} is too small: at least 64x64")
    if max(height, width) > MAX_EXPORT_SIDE:
        raise ValueError(
            f"input size {height}x{width} is too large: at most {MAX_EXPORT_SIDE} pixels a side "
            "(the network is traced on an input of that size); give a smaller input_size"
        )
    net.eval()
    graph = graph_class(net)(net, (height, width)).eval()
    example = (
        torch.zeros((1, 3, height, width)),
        torch.tensor([[0.0, 0.0, float(width), float(height)]]),
        torch.tensor([float(model.config.DETECTION_MIN_CONFIDENCE)]),
    )
    return graph, example


def export_onnx(
    model,
    path: str | os.PathLike,
    input_size: Sequence[int] | None = None,
    class_names: Sequence[str] | None = None,
    overwrite: bool = False,
    opset: int | None = None,
) -> Path:
    """Write ``model``'s inference network as an ONNX file for inputs of ``input_size``.

    Args:
        model: a :class:`mrcnn.model.MaskRCNN` (float32, CPU).
        path: the .onnx file to write (atomically).
        input_size: (H, W) network input; default :func:`default_input_size`.
        class_names: names by class id, "BG" first, stored for the runtime.
        overwrite: replace an existing file.
        opset: ONNX opset (default: the exporter's).
    Returns:
        the path written. The graph's inputs are "image" [1, 3, H, W] float32 (molded),
        "window" [1, 4] float32 (x1, y1, x2, y2) and "min_score" [1] float32 (the detection
        threshold, the config's DETECTION_MIN_CONFIDENCE unless a run changes it); its outputs
        "boxes" [D, 4] (x1, y1, x2, y2), "class_ids" int64 [D], "scores" [D], "masks"
        [D, M, M]; see :mod:`mrcnn.deploy.runtime`.
    Raises:
        FileExistsError: ``path`` exists and not ``overwrite``.
        ValueError: ``opset`` below 16, or ``path`` ends in .pt2.
        RuntimeError: onnx or onnxscript is not installed (the message says how to install).
    """
    path = Path(path)
    _check_target(path, overwrite, "onnx")
    check_opset(opset)
    check_onnx_dependencies()
    graph, example = inference_graph(model, input_size)
    metadata = {
        "format": METADATA_FORMAT,
        "input_size": list(example[0].shape[-2:]),
        "config": runtime_settings(model.config),
        "class_names": list(class_names) if class_names else None,
    }
    with _fresh_folded_weights(model.net), torch.no_grad(), _quiet_exporter():
        try:
            program = torch.onnx.export(
                graph,
                example,
                dynamo=True,
                input_names=list(INPUT_NAMES),
                output_names=list(OUTPUT_NAMES),
                opset_version=opset,
                verbose=False,
            )
        except torch.onnx.OnnxExporterError as error:
            raise RuntimeError(exporter_failure(error, path)) from error
    program.model.metadata_props[METADATA_KEY] = json.dumps(metadata)
    with atomic_output(path) as temporary:
        program.save(temporary, external_data=False)  # one file: a data file would keep the
        # temporary's name
    return path


def exporter_failure(error: BaseException, path: Path) -> str:
    """One line for an ONNX exporter failure: torch's version, the root cause (the exporter's
    own message runs to pages) and what to do."""
    cause = error
    while cause.__cause__ is not None:
        cause = cause.__cause__
    reason = " ".join(f"{type(cause).__name__}: {cause}".split())[:300]
    return (
        f"torch {torch.__version__}'s ONNX exporter could not convert the network ({reason}); "
        f"mrcnn export is tested with torch {EXPORT_TESTED_TORCH}: upgrade torch "
        f"(pip install -U torch), or write a torch.export program ({path.with_suffix('.pt2')})"
    )


def export_program(
    model, path: str | os.PathLike, input_size: Sequence[int] | None = None, overwrite=False
) -> Path:
    """Write the same graph as a ``torch.export`` program (``.pt2``), for PyTorch runtimes
    (``torch.export.load(path).module()(image, window, min_score)``, inputs as for
    :func:`export_onnx`; torchvision must be importable)."""
    path = Path(path)
    _check_target(path, overwrite, "pt2")
    graph, example = inference_graph(model, input_size)
    with _fresh_folded_weights(model.net), torch.no_grad(), _quiet_exporter():
        program = torch.export.export(graph, example, strict=False)
    with atomic_output(path) as temporary, _quiet_exporter():
        torch.export.save(program, temporary)
    return path


def _check_target(path: Path, overwrite: bool, format: str) -> None:
    """Refuse, before any tracing, an output that could not be written at the end."""
    export_format(path, format)  # a name of the other format is refused
    if path.is_dir():
        raise OutputError(f"{path} is an existing folder; give a file name, or move it away")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists: choose another name or pass --overwrite")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"folder {path.parent} does not exist: create it first")


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's notes that are not the user's business (a deprecation inside
    torchvision's NMS registration; attributes set while tracing, which are cleared after;
    torch.export.save's note on weights that share storage, all on the CPU here)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*create_unbacked_symint.*")
        warnings.filterwarnings("ignore", message=".*were assigned during export.*")
        warnings.filterwarnings("ignore", message=".*No complete tensor found in the group.*")
        yield

"""``mrcnn export``: write a model's inference network as ONNX, OpenVINO IR (fp32 or int8) or a
torch.export program.

The graph takes one image of a fixed network-input size (``--input-size``, default the config's
molded size); ``mrcnn detect --onnx FILE`` and :class:`mrcnn.deploy.runtime.OnnxMaskRCNN` do the
molding, unmolding and mask pasting around it. ``--int8 --calibrate SPEC`` quantizes the OpenVINO
graph on the user's images (:mod:`mrcnn.deploy.int8`) and caches it where ``--backend openvino
--precision int8`` runs it. See docs/deploy.md.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from mrcnn.commands import common
from mrcnn.commands.common import add_class_names_argument, add_config_arguments, class_names_for
from mrcnn.outputs import check_new_outputs, write_output
from mrcnn.structures.resize_plan import MAX_EXPORT_SIDE

HELP = (
    "export the inference network to ONNX, OpenVINO IR (fp32, or int8 calibrated on your "
    "images) or a torch.export program"
)

FORMATS = ("onnx", "openvino", "pt2")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "output",
        metavar="OUT",
        help="the file to write: model.onnx (ONNX), model.xml (OpenVINO IR, with model.bin "
        "beside it) or model.pt2 (torch.export program)",
    )
    parser.add_argument(
        "--weights",
        required=True,
        metavar="W",
        help="a checkpoint or state-dict file, 'coco' or 'last' (newest checkpoint under --logs)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="onnx (needs onnx and onnxscript: pip install onnx onnxscript onnxruntime), "
        "openvino (also needs openvino: pip install 'mrcnn[openvino]') or pt2 (a torch.export "
        "program); default: the one OUT's extension names",
    )
    parser.add_argument(
        "--input-size",
        metavar="HxW",
        help="network input size the graph is made for (default: the config's molded size, "
        "e.g. IMAGE_MAX_DIM square for IMAGE_RESIZE_MODE=square)",
    )
    parser.add_argument(
        "--opset", type=int, help="ONNX opset version, 16 or later (default: the exporter's)"
    )
    parser.add_argument(
        "--int8",
        action="store_true",
        help="quantize the OpenVINO graph to int8 (OUT must be .xml; needs --calibrate and NNCF: "
        "pip install 'mrcnn[openvino]'). The graph is also cached beside the weights, where "
        "--backend openvino --precision int8 runs it; its accuracy against fp32 is printed and "
        "written to OUT's .int8.json",
    )
    parser.add_argument(
        "--calibrate",
        metavar="SPEC",
        help="dataset spec of your own images (with masks) for --int8, e.g. via:data/balloon: "
        "its train subset calibrates, its val subset (or a --holdout part of train) checks the "
        "accuracy",
    )
    parser.add_argument(
        "--holdout",
        metavar="N|SHARE",
        help="check int8's accuracy on this part of the train subset instead of the val subset "
        "(a count, or a share such as 0.25; used anyway when there is no val subset, at 0.25)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    parser.add_argument(
        "--logs", default="logs", metavar="DIR", help="folder of run folders (default: logs)"
    )
    add_class_names_argument(parser)
    add_config_arguments(parser)


def parse_size(text: str | None) -> tuple[int, int] | None:
    """ "800x1088" -> (800, 1088) (height x width); None stays None."""
    if text is None:
        return None
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"--input-size {text!r}: use HEIGHTxWIDTH, e.g. 800x1088")
    height, width = int(match.group(1)), int(match.group(2))
    if max(height, width) > MAX_EXPORT_SIDE or min(height, width) < 64:
        raise ValueError(
            f"--input-size {text.strip()}: each side must be 64 to {MAX_EXPORT_SIDE} pixels "
            "(the network is traced on an input of that size); give a smaller HxW, "
            "e.g. 800x1088"
        )
    return height, width


def run(args: argparse.Namespace) -> int:
    # why here: the exporter imports the network (torchvision): start-up time of `mrcnn --help`.
    from mrcnn.deploy import export as exporting

    out = Path(args.output)
    args.format = exporting.export_format(out, args.format)
    if out.is_dir():
        raise ValueError(f"{out} is an existing folder; give a file name, or move it away")
    if out.exists() and not args.overwrite:
        raise ValueError(f"{out} exists: choose another name or pass --overwrite")
    if not out.parent.is_dir():
        raise ValueError(f"folder {out.parent} does not exist: create it first")
    weights = [args.weights] if Path(str(args.weights)).is_file() else []
    outputs = [out, out.with_suffix(".bin")] if args.format == "openvino" else [out]
    outputs += [out.with_suffix(".int8.json")] if args.int8 else []
    check_new_outputs(outputs, weights, args.overwrite, "OUT")
    size = parse_size(args.input_size)
    holdout = _check_int8_arguments(args)
    if args.format in ("onnx", "openvino"):
        exporting.check_opset(args.opset)
        exporting.check_onnx_dependencies()
    args.device = "cpu"  # the graph is traced on the CPU in float32
    model = common.build_model(args)
    if args.format == "openvino":
        return _openvino(
            args, model, out, size or exporting.default_input_size(model.config), holdout
        )
    names = class_names_for(model, args.weights, args.class_names)
    try:
        if args.format == "onnx":
            exporting.export_onnx(
                model, out, size, names, overwrite=args.overwrite, opset=args.opset
            )
        else:
            exporting.export_program(model, out, size, overwrite=args.overwrite)
    except FileExistsError as error:
        raise ValueError(str(error)) from error
    height, width = size or exporting.default_input_size(model.config)
    mib = out.stat().st_size / 2**20
    print(f"wrote {out} ({args.format}, input {height}x{width}, {mib:.1f} MiB)")
    if args.format == "onnx":
        print(f"run it: mrcnn detect --onnx {out} --input IMAGES --output DIR", file=sys.stderr)
    return 0


def _check_int8_arguments(args: argparse.Namespace) -> float | int | None:
    """The --holdout value; one-line errors for --int8/--calibrate/--holdout that do not fit."""
    if args.int8 and args.format != "openvino":
        raise ValueError(
            "--int8 makes an OpenVINO graph: name OUT model.xml (or --format openvino)"
        )
    if args.int8 and not args.calibrate:
        raise ValueError("--int8 needs --calibrate SPEC: your images (with masks) to calibrate on")
    if not args.int8 and (args.calibrate or args.holdout):
        raise ValueError("--calibrate and --holdout are for --int8: add --int8, or drop them")
    if args.format == "openvino":
        # why here: OpenVINO is an optional extra
        from mrcnn.deploy.openvino_backend import openvino_module

        openvino_module()
    if not args.int8:
        return None
    # why here: NNCF is an optional extra
    from mrcnn.deploy.int8 import nncf_module, parse_holdout

    nncf_module()
    return None if args.holdout is None else parse_holdout(args.holdout)


def _openvino(args, model, out: Path, size: tuple[int, int], holdout) -> int:
    """Write OUT.xml/.bin from the backend's cache: fp32 (exported now if not cached), or
    int8 made now (:func:`mrcnn.deploy.int8.make_int8_graph`) with its accuracy report."""
    # why here: OpenVINO and NNCF are optional (the openvino extra)
    from mrcnn.deploy import int8
    from mrcnn.deploy.openvino_backend import OpenVinoMaskRCNN, copy_graph, default_cache_dir

    cache = default_cache_dir(args.weights)
    if args.int8:
        calibration, check = int8.calibration_sets(args.calibrate, holdout)
        holdout = int8.DEFAULT_HOLDOUT if holdout is None else holdout
        folder, report = int8.make_int8_graph(model, calibration, cache, size, check, holdout)
        print("\n".join(report.lines()))
        write_output(out.with_suffix(".int8.json"), int8.report_json(report))
    else:
        folder = OpenVinoMaskRCNN(model, cache, "fp32").graph_folder(size)
    copy_graph(folder, out)
    precision = "int8" if args.int8 else "fp32"
    print(
        f"wrote {out} and {out.with_suffix('.bin').name} (OpenVINO IR, {precision}, input "
        f"{size[0]}x{size[1]}); cached in {folder}"
    )
    run_it = "--backend openvino" + (" --precision int8" if args.int8 else "")
    print(
        f"run it: mrcnn detect --weights {args.weights} {run_it} --input IMAGES --output DIR",
        file=sys.stderr,
    )
    return 0

"""``mrcnn export``: write a model's inference network as ONNX (or a torch.export program).

The graph takes one image of a fixed network-input size (``--input-size``, default the config's
molded size); ``mrcnn detect --onnx FILE`` and :class:`mrcnn.deploy.runtime.OnnxMaskRCNN` do the
molding, unmolding and mask pasting around it. See docs/deploy.md.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from mrcnn.commands import common
from mrcnn.commands.common import add_class_names_argument, add_config_arguments, class_names_for
from mrcnn.outputs import check_new_outputs
from mrcnn.structures.resize_plan import MAX_EXPORT_SIDE

HELP = "export the inference network to ONNX (for ONNX Runtime) or a torch.export program"

FORMATS = ("onnx", "pt2")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "output",
        metavar="OUT",
        help="the file to write: model.onnx (ONNX) or model.pt2 (torch.export program)",
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
        help="onnx (needs onnx and onnxscript: pip install onnx onnxscript onnxruntime) or "
        "pt2 (a torch.export program); default: the one OUT's extension names",
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
    check_new_outputs([out], weights, args.overwrite, "OUT")
    size = parse_size(args.input_size)
    if args.format == "onnx":
        exporting.check_opset(args.opset)
        exporting.check_onnx_dependencies()
    args.device = "cpu"  # the graph is traced on the CPU in float32
    model = common.build_model(args)
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

"""The ``mrcnn`` command line: one entry point with a subcommand per job.

Each subcommand lives in ``mrcnn/commands/<name>.py`` and provides ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. This module only wires them together and
holds the flags they share.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import warnings
from collections.abc import Sequence

from mrcnn import __version__

#: subcommand name -> module under mrcnn.commands
COMMANDS = {
    "train": "train",
    "detect": "detect",
    "splash": "splash",
    "evaluate": "evaluate",
    "inspect-data": "inspect_data",
    "demo": "demo",
    "serve": "serve",
    "export": "export",
    "convert": "convert",
}


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """--config and --set, shared by every command that builds a model or reads data."""
    parser.add_argument(
        "--config",
        metavar="SPEC",
        help="a Config subclass as module:Class (or file.py:Class), or a YAML/JSON file of "
        "KEY: value pairs",
    )
    parser.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override one config value, e.g. --set DETECTION_MIN_CONFIDENCE=0.8 (repeatable)",
    )


def add_dataset_argument(parser: argparse.ArgumentParser, note: str = "") -> None:
    """--dataset SPEC, for the commands that read a dataset (``note`` ends its help)."""
    parser.add_argument(
        "--dataset",
        required=True,
        metavar="SPEC",
        help="via:PATH, via3:FILE, labelme:PATH, cvat:XML[:IMAGES], coco:ANNOTATIONS[:IMAGES], "
        f"masks:PATH, labels:IMAGES:MASKS or shapes[:COUNT[:SIZE]] (see docs/datasets.md){note}",
    )


def add_model_arguments(parser: argparse.ArgumentParser, weights_required: bool = True) -> None:
    """--weights, --device and --logs, shared by the commands that run a model."""
    parser.add_argument(
        "--weights",
        required=weights_required,
        metavar="W",
        help="a checkpoint (.pt, .safetensors), state-dict or Matterport .h5 file (the "
        "settings it carries are the config's defaults), 'coco' (torchvision's COCO Mask "
        "R-CNN), 'imagenet' (backbone only), 'last' (newest checkpoint under --logs) or, for "
        "train, 'none' (random initialisation)",
    )
    parser.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:1, ... (default: CUDA when available)"
    )
    parser.add_argument(
        "--logs", default="logs", metavar="DIR", help="folder of run folders (default: logs)"
    )


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    """--precision, for the commands that run inference (sets INFERENCE_PRECISION)."""
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16"),
        default=None,
        help="inference precision: bf16 on GPUs and on CPUs where it is faster (AMX, or "
        "AVX512_BF16 measured once; else fp32), "
        "fp16 on GPUs; box decoding, NMS and mask pasting stay fp32 (default: the config's "
        "INFERENCE_PRECISION, fp32)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mrcnn",
        description="Mask R-CNN instance segmentation: train on your own photos, detect, "
        "evaluate, and apply the color splash filter to images and video.",
    )
    parser.add_argument("--version", action="version", version=f"mrcnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        try:
            module = importlib.import_module(f"mrcnn.commands.{module_name}")
        except ModuleNotFoundError as error:
            if error.name != f"mrcnn.commands.{module_name}":
                raise
            continue  # not built yet
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(command)
        command.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    # The commands print the datasets' summary lines themselves; the library's log of the same
    # line would repeat it.
    datasets_log = logging.getLogger("mrcnn.datasets")
    if not datasets_log.handlers:
        datasets_log.addHandler(logging.NullHandler())
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as error:
        print(f"mrcnn {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 1


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one line: "warning: <message>" (no file name, no source line)."""
    kind = "" if issubclass(category, UserWarning) else f"{category.__name__}: "
    text = " ".join(str(message).split())
    tqdm_write = getattr(sys.modules.get("tqdm"), "tqdm", None)
    if tqdm_write is not None:
        tqdm_write.write(f"warning: {kind}{text}", file=file or sys.stderr)  # below any bar
    else:
        print(f"warning: {kind}{text}", file=file or sys.stderr)


def _one_line(error: BaseException) -> str:
    """The error's message on one line (OS errors as "reason: path")."""
    if isinstance(error, OSError) and error.strerror and error.filename:
        return f"{error.strerror}: {error.filename}"
    return " ".join(str(error).split())


if __name__ == "__main__":
    sys.exit(main())

"""The ``mrcnn`` command line: one entry point with a subcommand per job.

Each subcommand lives in ``mrcnn/commands/<name>.py`` and provides ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. This module only wires them together and
holds the flags they share.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import sys
import warnings
from collections.abc import Sequence

from mrcnn.outputs import forget_inputs

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
    "annotate": "annotate",
    "rank": "rank",
}


def _version() -> str:
    """The installed distribution's version (the commands sit below the package's face, so they
    do not import ``mrcnn.__version__``)."""
    try:
        return importlib.metadata.version("mrcnn")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that is not installed
        return "(not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mrcnn",
        description="Mask R-CNN instance segmentation: train on your own photos, detect, "
        "evaluate, and apply the color splash filter to images and video.",
    )
    parser.add_argument("--version", action="version", version=f"mrcnn {_version()}")
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
    forget_inputs()  # the inputs of an earlier command run in this process are not this one's
    datasets_log = logging.getLogger("mrcnn.datasets")
    if not datasets_log.handlers:
        datasets_log.addHandler(logging.NullHandler())
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning
            return int(args.handler(args) or 0)
    except KeyboardInterrupt as interrupt:
        # A command that stops part-way says what it wrote in the interrupt's message.
        said = " ".join(str(interrupt).split())
        print(f"interrupted{': ' + said if said else ''}", file=sys.stderr)
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

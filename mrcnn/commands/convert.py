"""``mrcnn convert``: a Matterport Keras .h5 model as a .safetensors checkpoint.

The checkpoint holds the weights of the matterport-flavour network and the config they need
(NETWORK_FLAVOUR, BACKBONE, NUM_CLASSES, Matterport's conventions), so it loads without h5py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mrcnn.commands.common import add_config_arguments

HELP = "convert a Matterport Keras .h5 model to a .safetensors checkpoint (no h5py needed)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="MODEL.h5", help="the Matterport Keras .h5 file")
    parser.add_argument("output", metavar="OUT.safetensors", help="the checkpoint to write")
    parser.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    add_config_arguments(parser)
    parser.epilog = (
        "Without --config, BACKBONE (resnet50/101) and NUM_CLASSES are read from the file's "
        "shapes and every other value is the base Config's (Matterport's defaults)."
    )


def run(args: argparse.Namespace) -> int:
    # why here: start-up time of `mrcnn --help` (these import torch)
    from mrcnn.config import load_config
    from mrcnn.weights.convert import convert_h5

    if Path(args.output).suffix != ".safetensors":
        raise ValueError(f"{args.output}: the output must end in .safetensors")
    config = load_config(args.config, args.set) if (args.config or args.set) else None
    config, notes = convert_h5(args.source, args.output, config, overwrite=args.overwrite)
    for note in notes:
        print(note, file=sys.stderr)
    mib = Path(args.output).stat().st_size / 2**20
    print(
        f"wrote {args.output} ({config.BACKBONE}, NUM_CLASSES={config.NUM_CLASSES}, "
        f"NETWORK_FLAVOUR={config.NETWORK_FLAVOUR}, {mib:.1f} MiB)"
    )
    return 0

"""Shapes: train Mask R-CNN on generated squares, circles and triangles, then detect.

The toy dataset needs no download; with small images, small anchors and a ResNet-18 backbone
(:class:`mrcnn.demo.ShapesDemoConfig`) it trains to a useful model in a few minutes on a CPU::

    python samples/shapes.py train --seconds 300          # time-boxed training from scratch
    python samples/shapes.py detect --output shapes_out/  # newest checkpoint on val scenes

``--set KEY=VALUE`` overrides any config value.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mrcnn.config import parse_overrides
from mrcnn.demo import DEMO_IMAGE_SIZE, ShapesDemoConfig


class ShapesConfig(ShapesDemoConfig):
    """The demo's small network, under the sample's own run-folder name."""

    NAME = "shapes"


def build_parser() -> argparse.ArgumentParser:
    """The command line: ``train`` or ``detect`` and their options."""
    parser = argparse.ArgumentParser(
        prog="shapes.py", description="Train and run Mask R-CNN on the synthetic shapes dataset."
    )
    parser.add_argument("command", choices=("train", "detect"), help="'train' or 'detect'")
    parser.add_argument("--logs", default="logs", metavar="DIR", help="run folders (default logs)")
    parser.add_argument(
        "--seconds", type=float, default=300.0, help="training budget, seconds (default 300)"
    )
    parser.add_argument("--epochs", type=int, default=1000, help="epoch limit (default 1000)")
    parser.add_argument(
        "--images", type=int, default=500, help="training images; val gets a tenth (default 500)"
    )
    parser.add_argument(
        "--weights", default=None, metavar="W", help="start from / detect with: last or a file"
    )
    parser.add_argument("--count", type=int, default=8, help="val scenes to detect (default 8)")
    parser.add_argument("--output", default="shapes_detections", help="detect: output folder")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default cpu)")
    parser.add_argument(
        "--set", metavar="KEY=VALUE", action="append", default=[], help="config override"
    )
    return parser


def make_config(args: argparse.Namespace) -> ShapesConfig:
    """ShapesConfig with the ``--set`` and ``--device`` overrides."""
    values = parse_overrides(list(args.set))
    if args.device:
        values["DEVICE"] = args.device
    return ShapesConfig.from_overrides(values)


def datasets(images: int, config: ShapesConfig):
    """(train, val) shapes datasets at the config's image size; val has a tenth as many."""
    from mrcnn.datasets import from_spec

    size = int(config.IMAGE_MAX_DIM) if config.IMAGE_MAX_DIM else DEMO_IMAGE_SIZE
    spec = f"shapes:{images}:{size}"
    return from_spec(spec, "train"), from_spec(spec, "val")


def train(args: argparse.Namespace) -> int:
    """Train all layers from random weights (or ``--weights``) within ``--seconds``."""
    from mrcnn.model import MaskRCNN

    config = make_config(args)
    dataset_train, dataset_val = datasets(args.images, config)
    if args.weights:
        model = MaskRCNN.from_checkpoint(
            args.weights, config=config, mode="training", model_dir=args.logs
        )
    else:
        model = MaskRCNN("training", config, model_dir=args.logs)
    model.train(
        dataset_train,
        dataset_val,
        float(config.LEARNING_RATE),
        epochs=args.epochs,
        layers="all",
        max_seconds=args.seconds,
    )
    print(f"trained to epoch {model.epoch}; checkpoints in {model.log_dir}")
    return 0


def detect(args: argparse.Namespace) -> int:
    """Detect on ``--count`` val scenes, write pictures and print the mask mAP@0.5."""
    import cv2

    from mrcnn import visualize
    from mrcnn.evaluation import evaluate_dataset
    from mrcnn.model import MaskRCNN

    config = make_config(args)
    _, dataset_val = datasets(max(10 * args.count, 10), config)
    model = MaskRCNN.from_checkpoint(args.weights or "last", config=config, model_dir=args.logs)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    ids = list(dataset_val.image_ids[: args.count])
    images = [dataset_val.load_image(int(i)) for i in ids]
    for image_id, image, r in zip(ids, images, model.detect(images), strict=True):
        drawn = visualize.draw_instances(
            image, r["rois"], r["masks"], r["class_ids"], dataset_val.class_names, r["scores"]
        )
        cv2.imwrite(str(out / f"shapes_{image_id}.png"), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
    result = evaluate_dataset(model, dataset_val, ids, progress=False, coco_results=False)
    print(f"mask mAP@0.5 on {len(ids)} val scenes: {result.map50:.3f}; pictures in {out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; errors are printed with what to do, exit status 1."""
    from mrcnn.weights import WeightsError

    args = build_parser().parse_args(argv)
    try:
        return train(args) if args.command == "train" else detect(args)
    except (ValueError, FileNotFoundError, WeightsError) as error:
        print(f"shapes.py {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

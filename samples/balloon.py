"""Balloon color splash: train Mask R-CNN on the balloon dataset and splash photos or videos.

The workflow of the color splash blog post, on this library::

    # train the heads from torchvision's COCO weights (downloaded once)
    python samples/balloon.py train --dataset=data/balloon --weights=coco
    # go on from the newest checkpoint
    python samples/balloon.py train --dataset=data/balloon --weights=last --layers=all --epochs=40
    # splash a photo or a video with the newest checkpoint
    python samples/balloon.py splash --weights=last --image=photo.jpg
    python samples/balloon.py splash --weights=last --video=clip.mp4

Loading COCO (or ImageNet) weights adopts torchvision's conventions into BalloonConfig and
prints each change: ImageNet mean/std input normalisation, anchor rounding, RPN box coding,
per-level proposals and ROIAlign rules (see docs/training.md). The checkpoints keep them, so
``splash --weights=last`` computes what training computed.

The dataset is the blog post's VIA layout: ``PATH/train/via_region_data.json`` and
``PATH/val/via_region_data.json`` next to the images. ``--set KEY=VALUE`` overrides any config
value (e.g. ``--set IMAGES_PER_GPU=1`` on a small GPU).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from mrcnn.config import Config, parse_overrides


class BalloonConfig(Config):
    """Balloons (one class) on a ResNet-50 FPN, so that torchvision's COCO weights apply.

    It sets no normalisation or box coding of its own: loading COCO weights adopts theirs.
    """

    NAME = "balloon"
    NUM_CLASSES = 1 + 1  # background + balloon
    BACKBONE = "resnet50"
    IMAGES_PER_GPU = 2
    STEPS_PER_EPOCH = 100
    DETECTION_MIN_CONFIDENCE = 0.9


def build_parser() -> argparse.ArgumentParser:
    """The command line: ``train`` or ``splash`` and their options."""
    parser = argparse.ArgumentParser(
        prog="balloon.py",
        description="Train Mask R-CNN to find balloons, and apply the color splash filter.",
    )
    parser.add_argument("command", choices=("train", "splash"), help="'train' or 'splash'")
    parser.add_argument(
        "--dataset", metavar="PATH", help="balloon folder with train/ and val/ (train only)"
    )
    parser.add_argument(
        "--weights",
        required=True,
        metavar="W",
        help="coco, imagenet, last, none (random, train only) or a checkpoint file",
    )
    parser.add_argument("--logs", default="logs", metavar="DIR", help="run folders (default logs)")
    parser.add_argument("--epochs", type=int, default=30, help="final epoch number (default 30)")
    parser.add_argument(
        "--layers",
        default=None,
        help="heads, 3+, 4+, 5+ or all (default: heads from coco weights, otherwise all)",
    )
    parser.add_argument("--augment", action="store_true", help="flips, rotations, jitter")
    parser.add_argument("--image", metavar="P", help="image to splash")
    parser.add_argument("--video", metavar="P", help="video to splash")
    parser.add_argument("--output", metavar="O", help="splash output file or folder")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA if any)")
    parser.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override a config value, e.g. --set STEPS_PER_EPOCH=10 (repeatable)",
    )
    return parser


def make_config(overrides: Sequence[str], device: str | None, inference: bool) -> BalloonConfig:
    """BalloonConfig with ``KEY=VALUE`` overrides; one image per batch for inference."""
    values = parse_overrides(list(overrides))
    if inference:
        values.setdefault("IMAGES_PER_GPU", 1)
    if device:
        values["DEVICE"] = device
    return BalloonConfig.from_overrides(values)


def print_note(note: str) -> None:
    """Print a note of :meth:`MaskRCNN.load_weights` (what loading adapted or skipped)."""
    print(f"weights: {note}")


def train(args: argparse.Namespace) -> int:
    """Train on ``--dataset``'s train subset, validating on val."""
    from mrcnn.datasets import from_spec
    from mrcnn.model import MaskRCNN
    from mrcnn.training.augment import default_augmentation

    if not args.dataset:
        raise ValueError("train needs --dataset=PATH (the folder holding train/ and val/)")
    config = make_config(args.set, args.device, inference=False)
    # The weights before the data: fail fast on bad weights.
    model = MaskRCNN.from_checkpoint(
        args.weights, config=config, mode="training", model_dir=args.logs, on_note=print_note
    )
    dataset_train = from_spec(f"via:{args.dataset}", "train", class_name="balloon")
    dataset_val = from_spec(f"via:{args.dataset}", "val", class_name="balloon")
    print(f"train: {dataset_train.load_report.summary()}")
    print(f"val: {dataset_val.load_report.summary()}")
    layers = args.layers or ("heads" if args.weights == "coco" else "all")
    augmentation = default_augmentation() if args.augment else None
    print(f"training {layers} up to epoch {args.epochs}")
    model.train(
        dataset_train, dataset_val, float(config.LEARNING_RATE), args.epochs, layers, augmentation
    )
    print(f"checkpoints in {model.log_dir}")
    return 0


def splash(args: argparse.Namespace) -> int:
    """Splash ``--image`` or ``--video`` with the trained model."""
    from mrcnn.model import MaskRCNN
    from mrcnn.splash import detect_and_color_splash

    if bool(args.image) == bool(args.video):
        raise ValueError("splash needs exactly one of --image=P and --video=P")
    if args.weights.lower() == "none":
        raise ValueError("splash needs trained weights: --weights=last or a checkpoint file")
    config = make_config(args.set, args.device, inference=True)
    model = MaskRCNN.from_checkpoint(
        args.weights, config=config, mode="inference", model_dir=args.logs, on_note=print_note
    )
    written = detect_and_color_splash(
        model, image_path=args.image, video_path=args.video, out=args.output
    )
    print(f"wrote {written}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; errors are printed with what to do, exit status 1."""
    from mrcnn.weights import WeightsError

    args = build_parser().parse_args(argv)
    try:
        return train(args) if args.command == "train" else splash(args)
    except WeightsError as error:
        print(f"balloon.py {args.command}: cannot load weights {args.weights!r}: {error}")
        if args.weights in ("coco", "imagenet"):
            print("offline? fetch the file named above, or start with --weights=none")
        return 1
    except (ValueError, FileNotFoundError) as error:
        print(f"balloon.py {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

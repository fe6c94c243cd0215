"""``mrcnn train``: train on a dataset spec, starting from COCO, ImageNet, a file, or the last run.

Runs under ``torchrun`` for multi-GPU / multi-node training (one process per device); see
docs/training.md.
"""

from __future__ import annotations

import argparse

from mrcnn.checkpoint import RunLock, check_same_architecture, find_last, read_config, run_dir_of
from mrcnn.cli import add_config_arguments, add_dataset_argument, add_model_arguments
from mrcnn.config import load_config
from mrcnn.outputs import check_writable_dir
from mrcnn.training.distributed import info

HELP = "train Mask R-CNN on a dataset (Matterport's model.train), resumable with --weights last"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_argument(parser, "; its 'train' and 'val' subsets are used")
    parser.add_argument(
        "--layers",
        default="heads",
        help="layers to train: heads, 2+, 3+, 4+, 5+, all, or a regular expression over "
        "parameter names (default: heads)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=30,
        metavar="N",
        help="final epoch number; a resumed run continues up to it (default 30)",
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        metavar="LR",
        help="SGD learning rate (default: the config's LEARNING_RATE)",
    )
    parser.add_argument(
        "--augment",
        action="store_true",
        help="augment with flips, 90-degree rotations, scale and colour jitter",
    )
    parser.add_argument(
        "--new-run",
        action="store_true",
        help="start a new run folder at epoch 1 from --weights, even when they are a "
        "checkpoint of an earlier run (default: resume that run)",
    )
    add_config_arguments(parser)
    add_model_arguments(parser, weights_required=True)


def run(args: argparse.Namespace) -> int:
    # why here: these imports (torchvision) are start-up time for every `mrcnn --help`.
    from mrcnn.datasets import from_spec
    from mrcnn.maskrcnn import MaskRCNN
    from mrcnn.training.augment import default_augmentation

    overrides = list(args.set) + ([f"DEVICE={args.device}"] if args.device else [])
    if args.learning_rate is not None:  # validated with the config, before any work
        overrides.append(f"LEARNING_RATE={args.learning_rate!r}")
    config = load_config(args.config, overrides)
    check_writable_dir(args.logs, "--logs")
    if args.weights == "last":  # resolve now, so a run in use is refused before any work
        args.weights = str(find_last(args.logs, (config.NAME or "").lower() or None))
    resumed_run = None if args.new_run else run_dir_of(args.weights)
    if resumed_run is not None:
        with RunLock(resumed_run):  # raises RunFolderLocked when another process trains there
            pass
        check_same_architecture(read_config(args.weights), config, args.weights)
    train_set = from_spec(args.dataset, "train")
    if train_set.load_report.regions_loaded == 0:
        raise ValueError(
            f"the training images of {args.dataset} have no annotated regions (see the warnings "
            "above); there is nothing to learn from: check the annotation file"
        )
    val_set = from_spec(args.dataset, "val")
    main = info().is_main
    if main:
        print(f"train: {train_set.load_report.summary()}")
        print(f"val: {val_set.load_report.summary()}")
    if train_set.num_classes != int(config.NUM_CLASSES):
        raise ValueError(
            f"the dataset {args.dataset} has {train_set.num_classes} classes including the "
            f"background ({', '.join(train_set.class_names)}) but NUM_CLASSES = "
            f"{config.NUM_CLASSES}; add --set NUM_CLASSES={train_set.num_classes}"
        )
    exclude = ["class-specific"] if args.weights == "coco" and config.NUM_CLASSES != 91 else None
    notes: list[str] = []
    model = MaskRCNN.from_checkpoint(
        args.weights,
        config=config,
        mode="training",
        model_dir=args.logs,
        exclude=exclude,
        on_note=notes.append,
    )
    if args.new_run:
        model.start_new_run()
    if main:
        if exclude:
            print(
                f"coco weights: class-specific layers (class logits, box deltas, mask predictor) "
                f"skipped, NUM_CLASSES = {config.NUM_CLASSES} differs from COCO's 91"
            )
        for note in notes:
            print(f"weights: {note}")
    learning_rate = float(config.LEARNING_RATE)
    augmentation = default_augmentation() if args.augment else None
    model.train(train_set, val_set, learning_rate, args.epochs, args.layers, augmentation)
    return 0

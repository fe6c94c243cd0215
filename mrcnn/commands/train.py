"""``mrcnn train``: train on a dataset spec, starting from COCO, ImageNet, a file, or the last run.

Runs under ``torchrun`` for multi-GPU / multi-node training (one process per device); see
docs/training.md.
"""

from __future__ import annotations

import argparse

from mrcnn.commands.common import add_config_arguments, add_dataset_argument, add_model_arguments
from mrcnn.config import load_config, parse_overrides
from mrcnn.datasets.base import describe_classes
from mrcnn.outputs import check_writable_dir
from mrcnn.training.distributed import info
from mrcnn.weights.checkpoint import RunLock, check_same_architecture, find_last, run_dir_of
from mrcnn.weights.loading import COCO_BACKBONE
from mrcnn.weights.resolve import carried_num_classes, config_for_weights, read_config

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
    parser.epilog = (
        "The config: --config, else the settings the --weights file carries (a checkpoint's, "
        "or a Matterport .h5's backbone and head sizes), else the base Config; --set on top. "
        "Unless chosen, NUM_CLASSES comes from the dataset and, with --weights coco, BACKBONE "
        "is resnet50. Resuming a run keeps its network; a new run from weights of other "
        "classes starts their class-specific layers from scratch (docs/training.md)."
    )


def run(args: argparse.Namespace) -> int:
    # why here: these imports (torchvision) are start-up time for every `mrcnn --help`.
    from mrcnn.datasets import from_spec
    from mrcnn.maskrcnn import MaskRCNN
    from mrcnn.training.augment import default_augmentation

    overrides = list(args.set) + ([f"DEVICE={args.device}"] if args.device else [])
    if args.learning_rate is not None:  # validated with the config, before any work
        overrides.append(f"LEARNING_RATE={args.learning_rate!r}")
    config = load_config(args.config, overrides)
    overrides += _coco_backbone(args, overrides, config.BACKBONE)
    check_writable_dir(args.logs, "--logs")
    if args.weights == "last":  # resolve now, so a run in use is refused before any work
        args.weights = str(find_last(args.logs, (config.NAME or "").lower() or None))
    config = _training_config(args, overrides)
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
    config = _with_dataset_classes(config, train_set, args, overrides, resumed_run)
    skipped = _class_specific_skip(args.weights, int(config.NUM_CLASSES))
    exclude = ["class-specific"] if skipped else None
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
        if skipped:
            print(
                f"{skipped[0]}: class-specific layers (class logits, box deltas, mask predictor) "
                f"skipped, NUM_CLASSES = {config.NUM_CLASSES} differs from {skipped[1]}"
            )
        for note in notes:
            print(f"weights: {note}")
    learning_rate = float(config.LEARNING_RATE)
    augmentation = default_augmentation() if args.augment else None
    model.train(train_set, val_set, learning_rate, args.epochs, args.layers, augmentation)
    return 0


def _coco_backbone(args: argparse.Namespace, overrides: list[str], backbone: str) -> list[str]:
    """["BACKBONE=resnet50"] when --weights coco meets a backbone nobody chose (the base
    Config's is Matterport's ResNet-101), else []. A chosen other backbone is refused now,
    before the dataset loads."""
    if args.weights != "coco" or backbone == COCO_BACKBONE:
        return []
    if args.config or "BACKBONE" in parse_overrides(overrides):
        raise ValueError(
            f"--weights coco are torchvision's {COCO_BACKBONE} Mask R-CNN, but BACKBONE = "
            f"{backbone!r} (from {'--config' if args.config else '--set'}); use --set "
            f"BACKBONE={COCO_BACKBONE}, or --weights imagenet for a {backbone} backbone"
        )
    if info().is_main:
        print(f"BACKBONE = {COCO_BACKBONE}, the backbone of the coco weights")
    return [f"BACKBONE={COCO_BACKBONE}"]


def _training_config(args: argparse.Namespace, overrides: list[str]):
    """--config with --set on top; without --config, what the weights carry (a checkpoint's
    stored settings, or a Matterport .h5's backbone and head sizes) with --set on top. For
    "coco" that is the base Config: TorchvisionCocoConfig holds COCO's inference settings."""
    if args.config or args.weights == "coco":
        return load_config(args.config, overrides)
    return config_for_weights(args.weights, overrides)


def _with_dataset_classes(config, train_set, args, overrides, resumed_run):
    """``config`` with NUM_CLASSES from the dataset when nothing chose it: neither --config,
    nor --set NUM_CLASSES, nor the checkpoint of a resumed run (a new run from a checkpoint of
    other classes takes the dataset's, and its class-specific layers are skipped). A count that
    was chosen must match the dataset's."""
    count = int(train_set.num_classes)
    if count == int(config.NUM_CLASSES):
        return config
    classes = describe_classes(train_set)
    if args.config or "NUM_CLASSES" in parse_overrides(overrides):
        raise ValueError(
            f"the dataset {args.dataset} has {classes} but NUM_CLASSES = {config.NUM_CLASSES}; "
            f"add --set NUM_CLASSES={count}"
        )
    if resumed_run is not None:  # the count is the checkpoint's
        raise ValueError(
            f"cannot resume {args.weights} on {args.dataset}: its model has NUM_CLASSES = "
            f"{config.NUM_CLASSES}, the dataset {classes}; resume it on its own dataset, or "
            "start a new run from it on this one (--new-run)"
        )
    if info().is_main:
        print(f"NUM_CLASSES = {count}, from the dataset: {classes}")
    return _training_config(args, [*overrides, f"NUM_CLASSES={count}"])


def _class_specific_skip(weights: str, num_classes: int):
    """(weights' label, what they have) when their class-specific layers cannot be loaded into
    a network of ``num_classes``, else None."""
    if weights == "coco" and num_classes != 91:
        return "coco weights", "COCO's 91"
    theirs = carried_num_classes(weights)
    if theirs is not None and theirs != num_classes:
        return "weights", f"the file's {theirs}"
    return None

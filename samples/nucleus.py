"""Nucleus segmentation for the 2018 Data Science Bowl (stage 1 layout).

Layout: ``PATH/<subset>/<image_id>/images/<image_id>.png`` and, for annotated subsets,
``PATH/<subset>/<image_id>/masks/*.png`` (one file per nucleus). Images are grayscale, RGB or
RGBA microscopy with many small instances, hence small anchors and many proposals::

    python samples/nucleus.py train --dataset=data/nucleus --subset=stage1_train --weights=imagenet
    python samples/nucleus.py detect --dataset=data/nucleus --subset=stage1_test --weights=last

``train`` splits the annotated subset ~90/10 into train and val by folder name (or uses its
``train/`` and ``val/`` folders when present). ``detect`` writes the competition's submission
file: ``ImageId,EncodedPixels`` with one run-length-encoded instance per row.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from mrcnn.config import Config, parse_overrides


class NucleusConfig(Config):
    """Training: random 512 x 512 crops, small anchors, many instances per image."""

    NAME = "nucleus"
    NUM_CLASSES = 1 + 1  # background + nucleus
    BACKBONE = "resnet50"
    IMAGES_PER_GPU = 4
    STEPS_PER_EPOCH = 150
    VALIDATION_STEPS = 10
    IMAGE_RESIZE_MODE = "crop"
    IMAGE_MIN_DIM = 512
    IMAGE_MAX_DIM = 512
    IMAGE_MIN_SCALE = 0
    # No MEAN_PIXEL of its own (Matterport's sample set the dataset's mean, ~[43.5, 39.6, 48.3]):
    # with --weights=imagenet or coco the pretrained backbone must see its own normalisation,
    # which loading adopts; from random weights the library default serves as well.
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    RPN_NMS_THRESHOLD = 0.9
    RPN_TRAIN_ANCHORS_PER_IMAGE = 64
    POST_NMS_ROIS_TRAINING = 1000
    POST_NMS_ROIS_INFERENCE = 2000
    TRAIN_ROIS_PER_IMAGE = 128
    MINI_MASK_SHAPE = (56, 56)
    MAX_GT_INSTANCES = 200
    DETECTION_MAX_INSTANCES = 400
    DETECTION_MIN_CONFIDENCE = 0.0


class NucleusInferenceConfig(NucleusConfig):
    """Detection: whole images, upscaled 2x and padded to multiples of 64, one at a time."""

    IMAGES_PER_GPU = 1
    IMAGE_RESIZE_MODE = "pad64"
    IMAGE_MIN_SCALE = 2.0
    RPN_NMS_THRESHOLD = 0.7


# ------------------------------------------------------------------------------------------------
# Run-length encoding of the submission file
# ------------------------------------------------------------------------------------------------
def rle_encode(mask: np.ndarray) -> str:
    """Encode one bool [H, W] mask as the competition's run-length string.

    Pixels are numbered from 1, top to bottom then left to right (column-major); the string
    is ``"start length start length ..."``, empty for an empty mask.
    """
    flat = np.asarray(mask, dtype=bool).flatten(order="F").astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flat, [0]])))
    starts, ends = edges[0::2], edges[1::2]
    return " ".join(f"{s + 1} {e - s}" for s, e in zip(starts, ends, strict=True))


def rle_decode(text: str, shape: tuple[int, int]) -> np.ndarray:
    """Decode a run-length string (see :func:`rle_encode`) into a bool [H, W] mask."""
    values = [int(v) for v in text.split()]
    if len(values) % 2:
        raise ValueError(f"run-length string has an odd number of values: {text[:60]!r}")
    flat = np.zeros(shape[0] * shape[1], dtype=bool)
    for start, length in zip(values[0::2], values[1::2], strict=True):
        if start < 1 or start - 1 + length > flat.size:
            raise ValueError(f"run {start} {length} falls outside a {shape} image")
        flat[start - 1 : start - 1 + length] = True
    return flat.reshape(shape, order="F")


def exclusive_masks(masks: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Resolve overlaps so that each pixel belongs to at most one instance.

    Args:
        masks: bool [H, W, N]; scores: float [N].
    Returns:
        bool [H, W, K]: best score first, each instance losing the pixels a better one holds;
        instances left with no pixel are dropped (K <= N).
    """
    order = np.argsort(-np.asarray(scores), kind="stable")
    taken = np.zeros(masks.shape[:2], dtype=bool)
    kept = []
    for index in order:
        own = masks[:, :, index] & ~taken
        if own.any():
            kept.append(own)
            taken |= own
    if not kept:
        return np.zeros((*masks.shape[:2], 0), dtype=bool)
    return np.stack(kept, axis=2)


def submission_rows(image_id: str, masks: np.ndarray, scores: np.ndarray) -> list[list[str]]:
    """``[ImageId, EncodedPixels]`` rows of one image: one per instance after overlap
    resolution, or a single row with empty EncodedPixels when nothing was found."""
    exclusive = exclusive_masks(masks, scores)
    rows = [[image_id, rle_encode(exclusive[:, :, k])] for k in range(exclusive.shape[2])]
    return rows or [[image_id, ""]]


def write_submission(path: Path, rows: Iterable[list[str]]) -> Path:
    """Write the submission CSV (header ``ImageId,EncodedPixels``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["ImageId", "EncodedPixels"])
        writer.writerows(rows)
    return path


# ------------------------------------------------------------------------------------------------
# Commands
# ------------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The command line: ``train`` or ``detect`` and their options."""
    parser = argparse.ArgumentParser(
        prog="nucleus.py", description="Mask R-CNN for nuclei (2018 Data Science Bowl)."
    )
    parser.add_argument("command", choices=("train", "detect"), help="'train' or 'detect'")
    parser.add_argument("--dataset", required=True, metavar="PATH", help="the dataset root")
    parser.add_argument(
        "--subset",
        default=None,
        help="folder under PATH (default: stage1_train for train, stage1_test for detect)",
    )
    parser.add_argument(
        "--weights", required=True, metavar="W", help="imagenet, coco, last, none or a file"
    )
    parser.add_argument("--logs", default="logs", metavar="DIR", help="run folders (default logs)")
    parser.add_argument("--epochs", type=int, default=40, help="final epoch number (default 40)")
    parser.add_argument("--layers", default=None, help="default: heads from coco, else all")
    parser.add_argument("--no-augment", action="store_true", help="no flips/rotations/jitter")
    parser.add_argument(
        "--output", default=None, metavar="CSV", help="detect: submission file path"
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA if any)")
    parser.add_argument(
        "--set", metavar="KEY=VALUE", action="append", default=[], help="config override"
    )
    return parser


def make_config(cls: type[Config], args: argparse.Namespace) -> Config:
    """``cls`` with the ``--set`` and ``--device`` overrides."""
    values = parse_overrides(list(args.set))
    if args.device:
        values["DEVICE"] = args.device
    return cls.from_overrides(values)


def subset_path(args: argparse.Namespace, default: str) -> Path:
    """``PATH/<subset>``, checked to exist."""
    path = Path(args.dataset) / (args.subset or default)
    if not path.is_dir():
        raise FileNotFoundError(
            f"{path} does not exist: --dataset is the folder holding the subset folders "
            f"(e.g. {default}/), --subset names one of them"
        )
    return path


def print_note(note: str) -> None:
    """Print a note of :meth:`MaskRCNN.load_weights` (what loading adapted or skipped)."""
    print(f"weights: {note}")


def train(args: argparse.Namespace) -> int:
    """Train on the subset's train split, validating on its val split."""
    from mrcnn.datasets import from_spec
    from mrcnn.model import MaskRCNN
    from mrcnn.training.augment import default_augmentation

    config = make_config(NucleusConfig, args)
    root = subset_path(args, "stage1_train")
    dataset_train = from_spec(f"masks:{root}", "train", class_name="nucleus")
    dataset_val = from_spec(f"masks:{root}", "val", class_name="nucleus")
    print(f"train: {dataset_train.load_report.summary()}")
    print(f"val: {dataset_val.load_report.summary()}")
    model = MaskRCNN.from_checkpoint(
        args.weights, config=config, mode="training", model_dir=args.logs, on_note=print_note
    )
    layers = args.layers or ("heads" if args.weights == "coco" else "all")
    augmentation = None if args.no_augment else default_augmentation()
    model.train(
        dataset_train, dataset_val, float(config.LEARNING_RATE), args.epochs, layers, augmentation
    )
    print(f"checkpoints in {model.log_dir}")
    return 0


def detect(args: argparse.Namespace) -> int:
    """Detect on every image of the subset and write the submission CSV."""
    from tqdm import tqdm

    from mrcnn.datasets import from_spec
    from mrcnn.model import MaskRCNN

    if args.weights.lower() == "none":
        raise ValueError("detect needs trained weights: --weights=last or a checkpoint file")
    config = make_config(NucleusInferenceConfig, args)
    root = subset_path(args, "stage1_test")
    dataset = from_spec(f"masks:{root}", None, class_name="nucleus", keep_empty=True)
    model = MaskRCNN.from_checkpoint(
        args.weights, config=config, mode="inference", model_dir=args.logs, on_note=print_note
    )
    rows: list[list[str]] = []
    for image_id in tqdm(dataset.image_ids, desc="detecting", unit="image"):
        r = model.detect([dataset.load_image(int(image_id))])[0]
        rows += submission_rows(str(dataset.image_info[image_id]["id"]), r["masks"], r["scores"])
    default = Path(args.logs) / f"submit_{time.strftime('%Y%m%dT%H%M%S')}.csv"
    output = write_submission(Path(args.output) if args.output else default, rows)
    print(f"wrote {len(rows)} rows for {len(dataset.image_ids)} images to {output}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; errors are printed with what to do, exit status 1."""
    from mrcnn.weights import WeightsError

    args = build_parser().parse_args(argv)
    try:
        return train(args) if args.command == "train" else detect(args)
    except (ValueError, FileNotFoundError, WeightsError) as error:
        print(f"nucleus.py {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

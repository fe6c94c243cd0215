"""MS COCO: train Mask R-CNN on COCO, or evaluate a model with COCO's metrics.

Standard layout under ``--dataset``::

    annotations/instances_train2017.json   train2017/*.jpg
    annotations/instances_val2017.json     val2017/*.jpg

Commands::

    # torchvision's pretrained COCO model on the first 500 val images (bbox and segm AP)
    python samples/coco.py evaluate --dataset=data/coco --year=2017 --weights=coco --limit=500
    # train from ImageNet weights; --limit keeps the first N images of each split
    python samples/coco.py train --dataset=data/coco --year=2017 --weights=imagenet

With ``--weights=coco`` evaluation uses :class:`mrcnn.config.TorchvisionCocoConfig` (the
settings torchvision's weights were trained with); its category ids are mapped to the
dataset's class ids.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from mrcnn.config import Config, TorchvisionCocoConfig, parse_overrides


class CocoConfig(Config):
    """Training on COCO's 80 classes with a ResNet-50 FPN."""

    NAME = "coco"
    NUM_CLASSES = 1 + 80
    BACKBONE = "resnet50"
    IMAGES_PER_GPU = 2
    STEPS_PER_EPOCH = 1000


class CocoInferenceConfig(CocoConfig):
    """Evaluation of a model trained with :class:`CocoConfig`: one image at a time, every
    detection kept for the AP ranking."""

    IMAGES_PER_GPU = 1
    DETECTION_MIN_CONFIDENCE = 0.0


class CocoIdModel:
    """Wraps a model predicting COCO category ids (torchvision's 91-class head) so that
    ``detect`` returns the dataset's contiguous class ids; other categories are dropped."""

    def __init__(self, model, dataset) -> None:
        self.model = model
        self.config = model.config
        self.to_dataset = {
            int(dataset.get_source_class_id(c, "coco")): c for c in range(1, dataset.num_classes)
        }

    def detect(self, images: Sequence[np.ndarray], verbose: int = 0) -> list[dict]:
        """``model.detect`` with class ids mapped (see the class docstring)."""
        results = self.model.detect(images, verbose=verbose)
        return [self._map(r) for r in results]

    def _map(self, r: dict) -> dict:
        mapped = np.array([self.to_dataset.get(int(c), 0) for c in r["class_ids"]], np.int32)
        keep = mapped > 0
        out = {k: v[keep] for k, v in r.items() if k != "masks"}
        out["class_ids"] = mapped[keep]
        out["masks"] = r["masks"][:, :, keep]
        return out


def coco_dataset(root: str, split: str, year: str, limit: int | None):
    """The prepared COCO ``split`` (train or val) of ``year`` under ``root``."""
    from mrcnn.datasets import from_spec

    annotations = Path(root) / "annotations" / f"instances_{split}{year}.json"
    images = Path(root) / f"{split}{year}"
    if not annotations.is_file():
        raise FileNotFoundError(
            f"{annotations} not found: --dataset must hold annotations/instances_{split}{year}"
            f".json and {split}{year}/ (download them from cocodataset.org)"
        )
    options = {"max_images": limit} if limit else {}
    return from_spec(f"coco:{annotations}:{images}", None, **options)


def build_parser() -> argparse.ArgumentParser:
    """The command line: ``train`` or ``evaluate`` and their options."""
    parser = argparse.ArgumentParser(prog="coco.py", description="Mask R-CNN on MS COCO.")
    parser.add_argument("command", choices=("train", "evaluate"), help="'train' or 'evaluate'")
    parser.add_argument("--dataset", required=True, metavar="COCO_DIR", help="the COCO root")
    parser.add_argument("--year", default="2017", help="dataset year (default 2017)")
    parser.add_argument("--limit", type=int, default=None, help="first N images of each split")
    parser.add_argument(
        "--weights", default="coco", metavar="W", help="coco (default), imagenet, last, none, file"
    )
    parser.add_argument("--logs", default="logs", metavar="DIR", help="run folders (default logs)")
    parser.add_argument("--epochs", type=int, default=40, help="final epoch number (default 40)")
    parser.add_argument("--layers", default=None, help="default: heads from coco, else all")
    parser.add_argument("--output", default=None, metavar="JSON", help="evaluate: results file")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: CUDA if any)")
    parser.add_argument(
        "--set", metavar="KEY=VALUE", action="append", default=[], help="config override"
    )
    return parser


def make_config(cls: type[Config], args: argparse.Namespace, num_classes: int) -> Config:
    """``cls`` with the dataset's NUM_CLASSES (unless set) and the ``--set`` overrides."""
    values = parse_overrides(list(args.set))
    if cls is not TorchvisionCocoConfig:
        values.setdefault("NUM_CLASSES", num_classes)
    if args.device:
        values["DEVICE"] = args.device
    return cls.from_overrides(values)


def print_note(note: str) -> None:
    """Print a note of :meth:`MaskRCNN.load_weights` (what loading adapted or skipped)."""
    print(f"weights: {note}")


def train(args: argparse.Namespace) -> int:
    """Train on train{year}, validating on val{year}."""
    from mrcnn.model import MaskRCNN
    from mrcnn.training.augment import default_augmentation

    dataset_train = coco_dataset(args.dataset, "train", args.year, args.limit)
    dataset_val = coco_dataset(args.dataset, "val", args.year, args.limit)
    print(f"train: {dataset_train.load_report.summary()}")
    print(f"val: {dataset_val.load_report.summary()}")
    config = make_config(CocoConfig, args, dataset_train.num_classes)
    model = MaskRCNN.from_checkpoint(
        args.weights, config=config, mode="training", model_dir=args.logs, on_note=print_note
    )
    layers = args.layers or ("heads" if args.weights == "coco" else "all")
    augmentation = default_augmentation(rotations=False, scale=None)
    model.train(
        dataset_train, dataset_val, float(config.LEARNING_RATE), args.epochs, layers, augmentation
    )
    print(f"checkpoints in {model.log_dir}")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """Matterport mAP and COCO's bbox/segm AP on val{year} (first ``--limit`` images)."""
    from mrcnn.evaluation import COCO_STAT_NAMES, coco_evaluate, evaluate_dataset
    from mrcnn.model import MaskRCNN

    dataset = coco_dataset(args.dataset, "val", args.year, args.limit)
    print(dataset.load_report.summary())
    torchvision_ids = args.weights == "coco"
    cls = TorchvisionCocoConfig if torchvision_ids else CocoInferenceConfig
    model = MaskRCNN.from_checkpoint(
        args.weights,
        config=make_config(cls, args, dataset.num_classes),
        mode="inference",
        model_dir=args.logs,
        on_note=print_note,
    )
    runner = CocoIdModel(model, dataset) if torchvision_ids else model
    result = evaluate_dataset(runner, dataset, limit=args.limit, iou_thresholds=(0.5, 0.75))
    print("\n".join(result.summary()))
    for iou_type in ("bbox", "segm"):
        stats = coco_evaluate(dataset, result.coco_results, result.image_ids, iou_type)
        print(f"COCO {iou_type}: " + ", ".join(f"{n} {stats[n]:.3f}" for n in COCO_STAT_NAMES[:6]))
    output = Path(args.output or Path(args.logs) / f"coco_val{args.year}_results.json")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result.coco_results))
    print(f"wrote {len(result.coco_results)} detections to {output}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; errors are printed with what to do, exit status 1."""
    from mrcnn.weights import WeightsError

    args = build_parser().parse_args(argv)
    try:
        return train(args) if args.command == "train" else evaluate(args)
    except WeightsError as error:
        print(f"coco.py {args.command}: cannot load weights {args.weights!r}: {error}")
        return 1
    except (ValueError, FileNotFoundError) as error:
        print(f"coco.py {args.command}: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())

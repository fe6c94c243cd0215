"""``mrcnn evaluate``: measure a model's AP on a dataset.

Prints Matterport-style mAP (the mean of per-image APs) and the dataset-level AP at the
requested IoU thresholds and over 0.50:0.95; with ``--coco`` also COCO's AP table (bbox and
segm) through pycocotools; with ``--bootstrap N`` a confidence interval beside each figure
(and for COCO's AP, AP50, AP75) from N resamples of the images. The detections are written in
COCO's results format to ``--output`` (default ``<logs>/evaluation_<YYYYmmddTHHMMSS>.json``),
the figures (and intervals) to ``--metrics`` (default: beside it, ``<stem>.metrics.json``).

NUM_CLASSES: from ``--config`` or ``--set NUM_CLASSES=...``, else as the weights file gives it
(a checkpoint's stored config, a Matterport .h5's shapes), else from the dataset. It must equal
the dataset's class count (background included); a mismatch is refused naming where the count
came from.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from mrcnn.commands.common import (
    add_backend_argument,
    add_config_arguments,
    add_dataset_argument,
    add_model_arguments,
    add_precision_argument,
    config_overrides,
    with_backend,
)
from mrcnn.config import parse_overrides
from mrcnn.datasets.base import describe_classes
from mrcnn.evaluation import (
    COCO_STAT_NAMES,
    Bootstrap,
    coco_evaluate,
    coco_evaluate_with_intervals,
    evaluate_dataset,
)
from mrcnn.evaluation.bootstrap import parse_confidence, parse_resamples, parse_seed
from mrcnn.outputs import check_new_outputs, check_writable_dir, spec_files, write_output
from mrcnn.weights.resolve import carried_num_classes, config_for_weights, resolve_weights

HELP = "evaluate a model on a dataset: Matterport mAP and (with --coco) COCO AP"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_argument(parser)
    parser.add_argument(
        "--subset", default="val", help="subset to evaluate: val, train, ... or all (default: val)"
    )
    parser.add_argument(
        "--limit", type=int, default=0, metavar="N", help="evaluate the first N images (0: all)"
    )
    parser.add_argument(
        "--iou",
        type=float,
        nargs="+",
        default=[0.5],
        metavar="T",
        help="IoU thresholds for the mAP table (default: 0.5; 0.50:0.95 is always reported)",
    )
    parser.add_argument(
        "--boxes",
        action="store_true",
        help="match on box IoU instead of mask IoU for the mAP table",
    )
    parser.add_argument(
        "--coco", action="store_true", help="also run pycocotools' COCOeval (bbox and segm)"
    )
    _add_bootstrap_arguments(parser)
    parser.add_argument(
        "--output",
        metavar="FILE",
        help="detections in COCO's results format (default: <logs>/evaluation_<time>.json)",
    )
    parser.add_argument(
        "--metrics",
        metavar="FILE",
        help="the figures (and intervals) as JSON (default: beside --output, <stem>.metrics.json)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --output file (never an input file); default: refuse",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_config_arguments(parser)
    add_model_arguments(parser)
    add_precision_argument(parser)
    add_backend_argument(parser)


def _add_bootstrap_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--bootstrap",
        type=_checked(parse_resamples),
        default=0,
        metavar="N",
        help="confidence intervals of every figure from N resamples of the images (e.g. 1000; "
        "default: none)",
    )
    parser.add_argument(
        "--confidence",
        type=_checked(parse_confidence),
        default=0.95,
        metavar="LEVEL",
        help="level of the --bootstrap intervals, in (0, 1) (default: 0.95)",
    )
    parser.add_argument(
        "--bootstrap-seed",
        type=_checked(parse_seed),
        default=0,
        metavar="SEED",
        help="seed of the --bootstrap draws; the same seed gives the same intervals (default: 0)",
    )


def _checked(parse):
    """An argparse type from a library parser that raises ValueError."""

    def checked(text: str):
        try:
            return parse(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    return checked


def run(args: argparse.Namespace) -> int:
    # why here: these imports (torchvision) are start-up time for every `mrcnn --help`.
    from mrcnn.datasets import from_spec
    from mrcnn.maskrcnn import MaskRCNN

    output, metrics = _outputs(args)
    subset = None if args.subset.lower() in ("all", "none") else args.subset
    dataset = from_spec(args.dataset, subset)
    print(dataset.load_report.summary())
    config = _config_for(dataset, args)
    model = MaskRCNN.from_checkpoint(
        args.weights, config=config, model_dir=args.logs, on_note=lambda n: print(f"weights: {n}")
    )
    model = with_backend(model, args)
    bootstrap = None
    if args.bootstrap:
        bootstrap = Bootstrap(args.bootstrap, args.confidence, args.bootstrap_seed)
    evaluation = evaluate_dataset(
        model,
        dataset,
        limit=args.limit or None,
        iou_thresholds=args.iou,
        use_masks=not args.boxes,
        progress=not args.quiet,
        bootstrap=bootstrap,
    )
    for line in evaluation.summary():
        print(line)
    coco_stats, coco_intervals = _coco(dataset, evaluation, bootstrap) if args.coco else ({}, {})

    output.parent.mkdir(parents=True, exist_ok=True)
    write_output(output, json.dumps(evaluation.coco_results))
    print(f"wrote {len(evaluation.coco_results)} detections to {output}")
    metrics.parent.mkdir(parents=True, exist_ok=True)
    report = evaluation.metrics(coco_stats, coco_intervals) | {"detections_file": str(output)}
    write_output(metrics, json.dumps(report, indent=1))
    print(f"wrote the figures to {metrics}")
    return 0


def _outputs(args: argparse.Namespace) -> tuple[Path, Path]:
    """The detections file and the figures file, checked before any work."""
    output = Path(args.output) if args.output else _default_output(args.logs)
    if output.is_dir():
        raise ValueError(f"--output {output} is a folder; give a file name such as {output}/x.json")
    metrics = (
        Path(args.metrics) if args.metrics else output.with_name(f"{output.stem}.metrics.json")
    )
    if metrics.is_dir():
        raise ValueError(f"--metrics {metrics} is a folder; give a file name")
    if metrics.resolve() == output.resolve():
        raise ValueError(f"--metrics {metrics} is the --output file; give another name")
    check_writable_dir(output.parent, "--output" if args.output else "--logs")
    check_writable_dir(metrics.parent, "--metrics" if args.metrics else "--output")
    # The annotation file and the weights are inputs: never written over.
    weights = [str(args.weights)] if Path(str(args.weights)).is_file() else []
    check_new_outputs([output, metrics], [*spec_files(args.dataset), *weights], args.overwrite)
    return output, metrics


def _coco(dataset, evaluation, bootstrap: Bootstrap | None) -> tuple[dict, dict]:
    """COCOeval's bbox and segm figures (and their intervals), printed as a table."""
    stats, intervals = {}, {}
    for iou_type in ("bbox", "segm"):
        results, ids = evaluation.coco_results, evaluation.image_ids
        if bootstrap is None:
            stats[iou_type] = coco_evaluate(dataset, results, ids, iou_type)
        else:
            stats[iou_type], intervals[iou_type] = coco_evaluate_with_intervals(
                dataset, results, ids, iou_type, bootstrap
            )
    print(f"{'COCO':>6}  " + "  ".join(f"{name:>6}" for name in COCO_STAT_NAMES[:6]))
    for iou_type, values in stats.items():
        shown = "  ".join(f"{values[name]:>6.3f}" for name in COCO_STAT_NAMES[:6])
        print(f"{iou_type:>6}  {shown}")
    if bootstrap is not None:
        level = f"{bootstrap.confidence * 100:g}% interval"
        for iou_type, by_name in intervals.items():
            shown = "  ".join(f"{name} {interval}" for name, interval in by_name.items())
            print(f"{iou_type:>6}  {level}: {shown}")
    return stats, intervals


def _config_for(dataset, args: argparse.Namespace):
    """The config (as ``mrcnn detect`` picks it: --config, else the checkpoint's own), with
    NUM_CLASSES from the dataset when neither the user nor the checkpoint chose one."""
    overrides = config_overrides(args)
    user_set_classes = "NUM_CLASSES" in parse_overrides(overrides)
    args.weights = resolve_weights(args.weights, args.logs, args.set)
    chosen = args.config or user_set_classes or carried_num_classes(args.weights) is not None
    if not chosen:
        overrides.append(f"NUM_CLASSES={dataset.num_classes}")
    config = config_for_weights(args.weights, overrides, args.config)
    if int(config.NUM_CLASSES) != int(dataset.num_classes):
        classes = f"the dataset {args.dataset} has {describe_classes(dataset)}"
        if not (args.config or user_set_classes):
            raise ValueError(
                f"the model {args.weights} has NUM_CLASSES={config.NUM_CLASSES} (as the file "
                f"gives it) but {classes}; evaluate it on a dataset of its classes, or give "
                "weights trained on this one"
            )
        where = f"--config {args.config}" if args.config else "--set NUM_CLASSES"
        raise ValueError(
            f"NUM_CLASSES={config.NUM_CLASSES} (from {where}) but {classes}; use a config for "
            f"this dataset or --set NUM_CLASSES={dataset.num_classes}"
        )
    return config


def _default_output(logs: str) -> Path:
    return Path(logs) / f"evaluation_{time.strftime('%Y%m%dT%H%M%S')}.json"

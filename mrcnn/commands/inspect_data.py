"""``mrcnn inspect-data``: look at a dataset before training on it.

Writes ``samples.png`` (images with their masks, boxes and classes), ``statistics.png``
(instance sizes against the anchor scales, instances per image, classes, best anchor IoUs) and
``anchors.png`` (one molded image with its ground truths, their best anchors and the anchors of
every scale and ratio), and prints the share of ground-truth boxes that some anchor covers at
IoU >= 0.5 and >= 0.7. The numbers come from :mod:`mrcnn.datasets.stats`, so notebooks can
compute them too.

Every analysed image is loaded (``load_image`` and ``load_mask``); those that raise are listed,
one line each with the error, as training would skip them, and the command then exits with 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from mrcnn.commands.common import add_config_arguments, add_dataset_argument
from mrcnn.config import load_config
from mrcnn.outputs import check_new_outputs, check_writable_dir, spec_files

if TYPE_CHECKING:
    from mrcnn.datasets.failures import ImageFailure

HELP = "check a dataset before training: sample sheet, instance statistics, anchor coverage"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_dataset_argument(parser)
    parser.add_argument(
        "--subset",
        default="train",
        help="subset to inspect: train, val, ... or all (default: train)",
    )
    parser.add_argument(
        "--out",
        "--output",  # the name the other commands use
        dest="out",
        default="inspect",
        metavar="DIR",
        help="folder for the figures (default: inspect)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace figures an earlier run left in --out (never an input file); default: refuse",
    )
    parser.add_argument(
        "--limit",
        type=int,
        default=1000,
        metavar="N",
        help="compute statistics over at most N images, spread evenly (0: all; default 1000)",
    )
    parser.add_argument(
        "--samples", type=int, default=8, metavar="N", help="images on the sample sheet (default 8)"
    )
    add_config_arguments(parser)


def run(args: argparse.Namespace) -> int:
    # why here: matplotlib and the datasets (torchvision) are start-up time of `mrcnn --help`.
    from mrcnn.datasets import from_spec
    from mrcnn.datasets import stats as dstats
    from mrcnn.drawing import dataset_figures

    config = load_config(args.config, args.set)
    check_writable_dir(args.out, "--out")
    subset = None if args.subset.lower() in ("all", "none") else args.subset
    dataset = from_spec(args.dataset, subset)
    out = Path(args.out)
    written = [out / "samples.png", out / "statistics.png", out / "anchors.png"]
    inputs = [info["path"] for info in dataset.image_info if info.get("path")]
    inputs += spec_files(args.dataset)
    check_new_outputs(written, inputs, args.overwrite, "--out")
    print(dataset.load_report.summary())
    names = ", ".join(dataset.class_names[1:])
    plural = "class" if dataset.num_classes == 2 else "classes"
    print(f"{dataset.num_images} images, {dataset.num_classes - 1} {plural}: {names}")

    ids = dstats.sample_image_ids(dataset, args.limit or None)
    records = dstats.collect_instances(dataset, ids, progress=True, load_images=True)
    for line in _failure_lines(records.failures, len(ids), args.dataset, subset):
        print(line)
    if not len(records.analysed_ids):
        raise ValueError(
            f"none of the {len(ids)} images read could be loaded (listed above); fix the "
            "dataset's load_image / load_mask first"
        )
    stats = dstats.instance_statistics(records, dataset.class_names)
    coverage = dstats.anchor_coverage(records, config)
    for line in _statistics_lines(stats, len(dataset.image_ids)):
        print(line)
    for line in coverage.summary():
        print(line)

    out.mkdir(parents=True, exist_ok=True)
    sample_ids = dstats.spread_ids(records.analysed_ids, max(1, args.samples))
    dataset_figures.display_dataset_samples(dataset, sample_ids, path=written[0])
    dataset_figures.plot_dataset_statistics(stats, coverage, path=written[1])
    _anchor_figure(dataset, records, coverage, config, written[2])
    print("wrote " + ", ".join(str(p) for p in written))
    return 1 if records.failures else 0


def _failure_lines(
    failures: list[ImageFailure], read: int, spec: str, subset: str | None
) -> list[str]:
    """The images that failed to load: a heading, one line each, and how to see a traceback."""
    # why here: the training package imports torch, start-up time of `mrcnn --help`.
    from mrcnn.training.bad_images import MAX_BAD_SHARE

    if not failures:
        return []
    first = failures[0]
    call = f"from_spec({spec!r}, {subset!r}).{first.method}({first.image_id})"
    return [
        f"{len(failures)} of {read} images failed to load; training skips them, and stops when "
        f"the images it reads show that more than {100 * MAX_BAD_SHARE:g}% fail:",
        *(f"  {failure.describe()}" for failure in failures),
        f'to see a traceback: python -c "from mrcnn.datasets import from_spec; {call}"',
    ]


def _statistics_lines(stats: dict, total_images: int) -> list[str]:
    analysed = stats["images"]
    scope = f"{analysed} images" + (f" (of {total_images})" if analysed < total_images else "")
    lines = [
        f"instances: {stats['instances']} in {scope}"
        + (f", plus {stats['crowd']} crowd regions" if stats["crowd"] else "")
        + (f"; {stats['empty_images']} images without instances" if stats["empty_images"] else "")
    ]
    if stats["instances"]:
        per_image = stats["per_image"]
        p5, p50, p95 = np.percentile(stats["sizes"], [5, 50, 95])
        lines.append(
            f"instances per image: median {np.median(per_image):g}, max {per_image.max()}; "
            f"size sqrt(mask area) in image pixels: 5% {p5:.0f}, median {p50:.0f}, 95% {p95:.0f}"
        )
        counts = ", ".join(f"{name} {n}" for name, n in stats["class_counts"].items())
        lines.append(f"classes: {counts}")
    return lines


def _anchor_figure(dataset, records, coverage, config, path: Path) -> None:
    """anchors.png for the analysed image with the most instances."""
    # why here: as in run().
    from mrcnn.datasets import stats as dstats
    from mrcnn.drawing import dataset_figures

    per_image = np.bincount(coverage.image_index, minlength=len(records.analysed_ids))
    k = int(per_image.argmax()) if len(per_image) else 0
    image_id = int(records.analysed_ids[k])
    image = dataset.load_image(image_id)
    plan = dstats.image_plan(image.shape[0], image.shape[1], config)
    preview = dstats.molded_preview(image, plan)
    rows = coverage.image_index == k
    x1, y1, x2, y2 = plan.meta().window
    reference, _ = dstats.reference_anchors(config, ((x1 + x2) / 2, (y1 + y2) / 2))
    dataset_figures.display_anchor_coverage(
        preview,
        coverage.gt_boxes[rows],
        coverage.best_anchors[rows],
        coverage.best_iou[rows],
        reference,
        title=f"{Path(dataset.image_reference(image_id)).name} as the network sees it\n"
        "green: ground truth; best anchor yellow (IoU >= 0.7) or red (below); "
        "thin: every anchor scale and ratio at the centre",
        path=path,
    )

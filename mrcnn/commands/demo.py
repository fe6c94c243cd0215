"""``mrcnn demo``: the offline demo on generated data."""

from __future__ import annotations

import argparse

from mrcnn.outputs import prepare_demo_folder

HELP = (
    "run the offline demo: train a small model on generated shapes, evaluate it, and splash "
    "images and a video (no download; a few minutes on a laptop CPU)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        "--output",  # the name the other commands use
        dest="out",
        default="demo_output",
        help="output folder (default demo_output): new, empty, or an earlier demo's output, "
        "which is replaced; any other folder is refused",
    )
    parser.add_argument(
        "--train-epochs",
        type=int,
        default=None,
        help="epochs of 50 steps to train (default: the number measured to reach mask "
        "mAP@0.5 >= 0.9, see benchmarks/RESULTS.md)",
    )
    parser.add_argument(
        "--train-seconds",
        type=float,
        default=None,
        help="safety limit on training, seconds (default 3600): training stops before an "
        "epoch expected to end past it, and the demo then says the model is not trained enough",
    )
    parser.add_argument("--train-images", type=int, default=1000, help="generated training images")
    parser.add_argument("--val-images", type=int, default=50, help="generated validation images")
    parser.add_argument("--seed", type=int, default=0, help="seed of the generated data")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    # why here: the demo imports the model and training: start-up time of `mrcnn --help`.
    from mrcnn.demo import DEMO_EPOCHS, DEMO_TIME_CAP, ShapesDemoConfig, run_demo

    prepare_demo_folder(args.out)  # refuse a folder the demo did not write, before any work
    epochs = DEMO_EPOCHS if args.train_epochs is None else args.train_epochs
    cap = DEMO_TIME_CAP if args.train_seconds is None else args.train_seconds
    if epochs < 1 or not cap > 0:
        raise ValueError(f"--train-epochs {epochs}, --train-seconds {cap}: both must be > 0")
    report = run_demo(
        args.out,
        epochs,
        cap,
        args.train_images,
        args.val_images,
        args.seed,
        progress=not args.quiet,
    )
    print(f"mask mAP@0.5 on {args.val_images} validation images: {report.map50:.3f}")
    print(
        f"total {report.seconds['total']:.0f} s; report: {(report.out_dir / 'report.md').resolve()}"
    )
    problem = report.shortfall(int(ShapesDemoConfig.STEPS_PER_EPOCH))
    if problem:
        print(f"not trained enough: {problem}")
        return 1
    return 0

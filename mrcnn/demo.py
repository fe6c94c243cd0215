"""The offline demo: the whole job on generated data, on a fresh machine, in a few minutes.

It generates the shapes dataset, trains a small model from scratch for a fixed number of epochs
(measured to reach mask mAP@0.5 >= 0.9; a time cap is only a safety limit), evaluates it, runs
detection and the color splash on validation scenes and on a short generated video, and writes
everything with a ``report.md`` into one folder. Nothing is downloaded.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from mrcnn.config import Config
from mrcnn.datasets.shapes import ShapesDataset
from mrcnn.drawing.render import draw_instances
from mrcnn.evaluation import evaluate_dataset
from mrcnn.maskrcnn import MaskRCNN
from mrcnn.modeling.cpu_threads import CpuThreads
from mrcnn.outputs import atomic_output, prepare_demo_folder, write_output
from mrcnn.splash.filter import color_splash, splash_video, write_image

#: Side of the generated images, pixels.
DEMO_IMAGE_SIZE = 128
#: Epochs (of ShapesDemoConfig.STEPS_PER_EPOCH steps) the demo trains: the first epoch at
#: which it reached mask mAP@0.5 >= DEMO_TARGET_MAP50, plus a margin (benchmarks/RESULTS.md,
#: "demo").
DEMO_EPOCHS = 10
#: Mask mAP@0.5 on the validation scenes that a fully trained demo model reaches at least.
DEMO_TARGET_MAP50 = 0.9
#: Safety limit on training, seconds: an hour, 15 times what the epochs take on a quiet
#: 2-core CPU, so that only a machine far slower than that stops early.
DEMO_TIME_CAP = 3600.0


class ShapesDemoConfig(Config):
    """A small network for 128 x 128 images of squares, circles and triangles.

    Small anchors (the objects are 16-64 pixels), few proposals and ROIs, narrow heads: it
    trains from random weights to a useful model in minutes on two CPU cores.
    """

    NAME = "shapes_demo"
    NUM_CLASSES = 1 + 3
    BACKBONE = "resnet18"
    TRAIN_BN = True  # from random weights BatchNorm must learn its statistics
    IMAGES_PER_GPU = 4
    IMAGE_RESIZE_MODE = "square"
    IMAGE_MIN_DIM = DEMO_IMAGE_SIZE
    IMAGE_MAX_DIM = DEMO_IMAGE_SIZE
    RPN_ANCHOR_SCALES = (8, 16, 32, 64, 128)
    RPN_TRAIN_ANCHORS_PER_IMAGE = 128
    PRE_NMS_LIMIT = 1000
    POST_NMS_ROIS_TRAINING = 128
    POST_NMS_ROIS_INFERENCE = 100
    TRAIN_ROIS_PER_IMAGE = 32
    TOP_DOWN_PYRAMID_SIZE = 64
    MASK_HEAD_CHANNELS = 64
    FPN_CLASSIF_FC_LAYERS_SIZE = 128
    MINI_MASK_SHAPE = (28, 28)
    MAX_GT_INSTANCES = 8
    DETECTION_MAX_INSTANCES = 10
    DETECTION_MIN_CONFIDENCE = 0.7
    DETECTION_NMS_THRESHOLD = 0.3
    STEPS_PER_EPOCH = 50
    VALIDATION_STEPS = 5
    OPTIMIZER = "adamw"
    LEARNING_RATE = 0.002
    WARMUP_STEPS = 50
    WORKERS = 1
    DEVICE = "cpu"


@dataclass
class DemoReport:
    """What the demo did and measured."""

    out_dir: Path
    epochs_planned: int = DEMO_EPOCHS
    time_cap: float = DEMO_TIME_CAP
    seconds: dict[str, float] = field(default_factory=dict)
    epochs: list[dict] = field(default_factory=list)
    map50: float = float("nan")
    map50_95: float = float("nan")
    images: list[str] = field(default_factory=list)
    video: str | None = None
    video_fps: float = float("nan")

    @property
    def stopped_early(self) -> bool:
        """Whether the time cap ended training before the planned epochs."""
        return len(self.epochs) < self.epochs_planned

    def step_seconds(self, steps_per_epoch: int) -> float:
        """Measured seconds per training step (validation included)."""
        return self.seconds.get("train", float("nan")) / max(1, len(self.epochs) * steps_per_epoch)

    def shortfall(self, steps_per_epoch: int) -> str | None:
        """One line saying the model is not trained enough and what to do, or None."""
        if self.map50 >= DEMO_TARGET_MAP50:
            return None
        figure = f"mask mAP@0.5 {self.map50:.3f} is below the {DEMO_TARGET_MAP50} a trained demo "
        if not self.stopped_early:
            return (
                figure + f"model reaches, after all {self.epochs_planned} epochs: unexpected; "
                "please report it with report.md"
            )
        step = self.step_seconds(steps_per_epoch)
        needed = step * self.epochs_planned * steps_per_epoch * 1.25 + 60
        return (
            figure + f"model reaches: the {self.time_cap:.0f} s time cap stopped training after "
            f"{len(self.epochs)} of {self.epochs_planned} epochs ({step:.2f} s a step on this "
            f"machine); run again with --train-seconds {math.ceil(needed / 60) * 60}"
        )

    def markdown(self, config: Config) -> str:
        problem = self.shortfall(int(config.STEPS_PER_EPOCH))
        lines = [
            "# mrcnn offline demo",
            "",
            *([f"**Not trained enough:** {problem}.", ""] if problem else []),
            f"Synthetic shapes ({DEMO_IMAGE_SIZE} x {DEMO_IMAGE_SIZE}, 3 classes), "
            f"{config.BACKBONE} from random weights, trained on the CPU. With no pretrained "
            "weights there are no conventions to adopt: the config's own normalisation, "
            "anchors and box coding are used (pretrained weights bring theirs, see "
            "docs/training.md).",
            "",
            "## Results",
            "",
            f"- mask mAP@0.5 on the validation images: **{self.map50:.3f}**",
            f"- trained {len(self.epochs)} of {self.epochs_planned} planned epochs"
            + (f" (the {self.time_cap:.0f} s time cap stopped it)" if self.stopped_early else ""),
            f"- mask mAP@[0.5:0.95]: {self.map50_95:.3f}",
            f"- video splash: {self.video_fps:.1f} frames/s",
            "",
            "## Timings",
            "",
            "| stage | seconds |",
            "|---|---:|",
            *[f"| {name} | {value:.1f} |" for name, value in self.seconds.items()],
            "",
            "## Training losses",
            "",
            "| epoch | loss | val loss | rpn_class | rpn_bbox | mrcnn_class | mrcnn_bbox | "
            "mrcnn_mask |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in self.epochs:
            parts = [row.get(k, float("nan")) for k in _LOSS_COLUMNS]
            lines.append(f"| {row['epoch']} | " + " | ".join(f"{v:.3f}" for v in parts) + " |")
        lines += ["", "## Pictures", ""]
        lines += [f"![{name}]({name})" for name in self.images]
        if self.video:
            lines += ["", f"Video: [{self.video}]({self.video})"]
        return "\n".join(lines) + "\n"


_LOSS_COLUMNS = (
    "loss",
    "val_loss",
    "rpn_class_loss",
    "rpn_bbox_loss",
    "mrcnn_class_loss",
    "mrcnn_bbox_loss",
    "mrcnn_mask_loss",
)


def run_demo(
    out_dir: str | Path = "demo_output",
    train_epochs: int = DEMO_EPOCHS,
    max_train_seconds: float = DEMO_TIME_CAP,
    train_images: int = 1000,
    val_images: int = 50,
    seed: int = 0,
    progress: bool = True,
    overrides: dict | None = None,
) -> DemoReport:
    """Run the demo and write ``out_dir/report.md``.

    ``out_dir`` may be missing, empty, or a folder an earlier demo wrote (it carries
    :data:`mrcnn.outputs.DEMO_MARKER` and is replaced); anything else raises
    :class:`mrcnn.outputs.OutputError` and nothing is deleted.

    Args:
        train_epochs: epochs to train (:data:`DEMO_EPOCHS` reaches mask mAP@0.5 >= 0.9).
        max_train_seconds: safety limit: training stops before an epoch expected to end past
            it (at least one epoch runs); :meth:`DemoReport.shortfall` then says so.
        train_images, val_images: sizes of the generated datasets.
        overrides: config values to change (e.g. a smaller STEPS_PER_EPOCH for a quick run).
    Returns:
        the :class:`DemoReport` (also written as ``report.md`` and ``report.json``).
    """
    out = prepare_demo_folder(out_dir)  # replaces only a folder an earlier demo wrote
    report = DemoReport(out, int(train_epochs), float(max_train_seconds))
    config = ShapesDemoConfig.from_overrides(overrides or {})
    start = time.perf_counter()

    train = _shapes(ShapesDataset, train_images, "train", seed)
    val = _shapes(ShapesDataset, val_images, "val", seed)
    report.seconds["generate datasets"] = time.perf_counter() - start

    model = MaskRCNN("training", config, model_dir=out / "logs")
    report.seconds["train"] = _train_for(model, train, val, report)

    threads = CpuThreads()  # training picks its own; the later stages the same way
    threads.adapt()
    tick = time.perf_counter()
    evaluation = _evaluate(model, val, progress)
    report.map50, report.map50_95 = evaluation.map50, evaluation.map50_95
    report.seconds["evaluate"] = time.perf_counter() - tick

    tick = time.perf_counter()
    report.images = _pictures(model, val, out)
    report.seconds["detect + splash pictures"] = time.perf_counter() - tick

    threads.adapt()
    tick = time.perf_counter()
    report.video, report.video_fps = _video(model, val, out, seed, progress)
    threads.restore()
    report.seconds["video splash"] = time.perf_counter() - tick
    report.seconds["total"] = time.perf_counter() - start

    write_output(out / "report.md", report.markdown(config))
    summary = {k: v for k, v in report.__dict__.items() if k != "out_dir"}
    write_output(out / "report.json", json.dumps(summary, indent=2, default=str))
    return report


def _shapes(dataset_class, count: int, subset: str, seed: int):
    dataset = dataset_class()
    dataset.load_shapes(count, DEMO_IMAGE_SIZE, DEMO_IMAGE_SIZE, seed=seed, subset=subset)
    dataset.prepare()
    return dataset


def _train_for(model, train, val, report: DemoReport) -> float:
    """Train all layers for the report's planned epochs, within its time cap; record each
    epoch's losses."""
    start = time.perf_counter()
    model.train(
        train,
        val,
        model.config.LEARNING_RATE,
        epochs=report.epochs_planned,
        layers="all",
        max_seconds=report.time_cap,
    )
    report.epochs = [_epoch_losses(Path(model.log_dir), e) for e in range(1, model.epoch + 1)]
    return time.perf_counter() - start


def _epoch_losses(run_dir: Path, epoch: int) -> dict:
    """Mean training losses and the validation loss of one epoch, from metrics.jsonl."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    mine = [r for r in rows if r.get("epoch") == epoch]
    train = [r for r in mine if "step" in r and "val_loss" not in r]
    result = {"epoch": epoch}
    for key in _LOSS_COLUMNS:
        values = [r[key] for r in train if key in r]
        if values:
            result[key] = float(np.mean(values))
    for r in mine:
        if "val_loss" in r:
            result["val_loss"] = float(r["val_loss"])
    return result


def _evaluate(model, val, progress: bool):
    return evaluate_dataset(
        model, val, iou_thresholds=(0.5,), progress=progress, coco_results=False
    )


def _pictures(model, val, out: Path, count: int = 4) -> list[str]:
    names = []
    ids = list(val.image_ids[:count])
    images = [val.load_image(i) for i in ids]
    for image_id, image, r in zip(ids, images, model.detect(images), strict=True):
        scale = 3  # the scenes are small; enlarge them so the pictures are readable
        big = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
        masks = _enlarge_masks(r["masks"], scale)
        picture = draw_instances(
            big, r["rois"] * scale, masks, r["class_ids"], val.class_names, r["scores"]
        )
        name = f"detections_{image_id}.png"
        write_image(out / name, picture)
        splash = color_splash(big, masks)
        splash_name = f"splash_{image_id}.png"
        write_image(out / splash_name, splash)
        names += [name, splash_name]
    return names


def _enlarge_masks(masks: np.ndarray, scale: int) -> np.ndarray:
    """bool [H, W, N] -> bool [H * scale, W * scale, N] (nearest neighbour)."""
    return masks.repeat(scale, axis=0).repeat(scale, axis=1)


def _video(model, val, out: Path, seed: int, progress: bool) -> tuple[str, float]:
    """Generate a short clip of drifting shapes, splash it, return (file name, frames/s)."""
    source = out / "shapes_clip.mp4"
    write_shapes_clip(val, source, frames=48, seed=seed)
    tick = time.perf_counter()
    video = splash_video(
        model, source, out / "shapes_clip_splash.mp4", overwrite=True, progress=progress
    )
    return video.output.name, video.frames_written / (time.perf_counter() - tick)


def write_shapes_clip(
    dataset, path: Path, frames: int = 48, fps: float = 12.0, seed: int = 0
) -> Path:
    """Write a clip in which a validation scene slides across the frame.

    Each frame shifts the scene by a few pixels (wrapping around), so the shapes move and
    sometimes cross the border; the frame size is the scene's size.
    """
    rng = np.random.default_rng(seed)
    scene = dataset.load_image(dataset.image_ids[int(rng.integers(len(dataset.image_ids)))])
    height, width = scene.shape[:2]
    with atomic_output(path) as temporary:
        fourcc = cv2.VideoWriter_fourcc(*"mp4v")
        writer = cv2.VideoWriter(str(temporary), fourcc, fps, (width, height))
        try:
            for index in range(frames):
                frame = np.roll(scene, (index * 2, index * 3), axis=(0, 1))
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
    return path

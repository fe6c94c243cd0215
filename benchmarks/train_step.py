"""Seconds per training step, ours against torchvision's Mask R-CNN, on the same batch.

Both models: ResNet-50-FPN from random weights with trainable BatchNorm, the same images
(synthetic shapes at ``--size`` px), batch size, RPN/ROI sampling sizes and head widths, all
layers trained with SGD. Steps alternate between the two models; prints the median step
time of each and the ratio ours / torchvision::

    python benchmarks/train_step.py --size 256 --batch 2 --steps 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mrcnn.config import Config  # noqa: E402


def matched_config(size: int, batch: int, device: str) -> Config:
    """Our config doing the work torchvision's defaults do (sample sizes, head widths)."""
    return Config.from_overrides(
        {
            "NAME": "step_bench",
            "NUM_CLASSES": 4,
            "BACKBONE": "resnet50",
            "IMAGES_PER_GPU": batch,
            "IMAGE_MIN_DIM": size,
            "IMAGE_MAX_DIM": size,
            "RPN_ANCHOR_SCALES": (32, 64, 128, 256, 512),
            "RPN_TRAIN_ANCHORS_PER_IMAGE": 256,
            "PRE_NMS_LIMIT": 2000,
            "POST_NMS_ROIS_TRAINING": 2000,
            "TRAIN_ROIS_PER_IMAGE": 512,
            "ROI_POSITIVE_RATIO": 0.25,
            "TRAIN_BN": True,
            "WORKERS": 0,
            "DEVICE": device,
        }
    )


def shapes_batch(config: Config, count: int):
    from mrcnn.datasets import ShapesDataset
    from mrcnn.training.data import TrainingSamples, collate

    size = int(config.IMAGE_MAX_DIM)
    dataset = ShapesDataset()
    dataset.load_shapes(count, size, size, seed=3)
    dataset.prepare()
    return dataset, collate([TrainingSamples(dataset, config)[i] for i in range(count)])


def time_steps(steps_by_name: dict, steps: int, device: str) -> dict[str, float]:
    """Median seconds per step of each named step function, alternating them step by step so
    that a change in machine load hits every model alike."""

    def timed(step) -> float:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        step()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start

    for step in steps_by_name.values():
        step()  # warm-up: allocations, kernel selection
    times: dict[str, list[float]] = {name: [] for name in steps_by_name}
    for _ in range(steps):
        for name, step in steps_by_name.items():
            times[name].append(timed(step))
    return {name: statistics.median(values) for name, values in times.items()}


def ours_step(config: Config, batch):
    from mrcnn.model import MaskRCNN
    from mrcnn.model.losses import training_losses, weighted_total
    from mrcnn.training.trainer import build_optimizer, set_train_mode, set_trainable

    model = MaskRCNN("training", config, "unused")
    set_trainable(model.net, "all")
    set_train_mode(model.net, True)
    optimizer = build_optimizer(model.net, 0.001, 0.9, 1e-4)
    batch = batch.to(model.device)

    def step():
        losses = training_losses(model.net, batch.images, batch.windows, batch.gt)
        optimizer.zero_grad()
        weighted_total(losses, config.LOSS_WEIGHTS).backward()
        optimizer.step()

    return step


def torchvision_step(config: Config, dataset, device: str):
    import numpy as np
    import torchvision

    size = int(config.IMAGE_MAX_DIM)
    model = torchvision.models.detection.maskrcnn_resnet50_fpn(
        weights=None, weights_backbone=None, num_classes=4, min_size=size, max_size=size
    ).to(device)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9, weight_decay=1e-4)
    images, targets = [], []
    for image_id in dataset.image_ids:
        images.append(
            torch.from_numpy(dataset.load_image(image_id)).permute(2, 0, 1).float().to(device) / 255
        )
        masks, class_ids = dataset.load_mask(image_id)
        boxes = dataset.extract_bboxes(masks)[:, [1, 0, 3, 2]]
        targets.append(
            {
                "boxes": torch.as_tensor(boxes, dtype=torch.float32, device=device),
                "labels": torch.as_tensor(class_ids, dtype=torch.int64, device=device),
                "masks": torch.from_numpy(masks.transpose(2, 0, 1).astype(np.uint8)).to(device),
            }
        )

    def step():
        loss = sum(model(images, targets).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = matched_config(args.size, args.batch, args.device)
    dataset, batch = shapes_batch(config, args.batch)
    torch.manual_seed(0)
    ours_fn = ours_step(config, batch)
    torch.manual_seed(0)
    theirs_fn = torchvision_step(config, dataset, args.device)
    medians = time_steps({"ours": ours_fn, "torchvision": theirs_fn}, args.steps, args.device)
    ours, theirs = medians["ours"], medians["torchvision"]
    print(f"ours:        {ours:.3f} s/step")
    print(f"torchvision: {theirs:.3f} s/step")
    print(
        f"ratio ours/torchvision: {ours / theirs:.2f} ({args.size} px, batch {args.batch}, "
        f"{args.device}, {torch.get_num_threads()} threads)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

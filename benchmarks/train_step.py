"""Seconds per training step, ours against torchvision's Mask R-CNN, on the same batch.

Both models: ResNet-50-FPN from random weights with trainable BatchNorm, the same images
(synthetic shapes at ``--size`` px), batch size, RPN/ROI sampling sizes and head widths, all
layers trained with SGD. Ours is set to torchvision's conventions where they change the work:
2000 pre-NMS proposals per pyramid level with NMS per level (RPN_PROPOSALS_PER_LEVEL), full
resolution mask targets (USE_MINI_MASK=False), rounded anchors and torchvision's ROI level
rule. Neither timed step includes preprocessing: ours gets its molded batch and torchvision
the output of its own ``model.transform`` (normalise, resize, batch), both made once before
timing; ``--with-preprocessing`` adds each one's preprocessing of the loaded images and masks
to every step instead. Steps alternate between the two models; prints the median step time of
each and the ratio ours / torchvision::

    python -m benchmarks.train_step --size 256 --batch 2 --steps 5
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from mrcnn.config import Config


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
            # torchvision's training RPN: 2000 per level before NMS, NMS per level, 2000 after.
            "RPN_PROPOSALS_PER_LEVEL": True,
            "PRE_NMS_LIMIT": 2000,
            "POST_NMS_ROIS_TRAINING": 2000,
            "RPN_ANCHOR_ROUND": True,
            "ROI_LEVEL_ROUNDING": "floor",
            # torchvision crops its mask targets from the full-resolution masks.
            "USE_MINI_MASK": False,
            "TRAIN_ROIS_PER_IMAGE": 512,
            "ROI_POSITIVE_RATIO": 0.25,
            "TRAIN_BN": True,
            "WORKERS": 0,
            "DEVICE": device,
        }
    )


def shapes_dataset(config: Config, count: int):
    from mrcnn.datasets import ShapesDataset

    size = int(config.IMAGE_MAX_DIM)
    dataset = ShapesDataset()
    dataset.load_shapes(count, size, size, seed=3)
    dataset.prepare()
    return dataset


class PreloadedSamples:
    """The dataset's images and masks loaded once (as a data loader would deliver them), so
    that timed preprocessing starts from arrays in memory for both models."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset
        self.images = {i: dataset.load_image(i) for i in dataset.image_ids}
        self.masks = {i: dataset.load_mask(i) for i in dataset.image_ids}

    def __getattr__(self, name):
        return getattr(self.dataset, name)

    def load_image(self, image_id):
        return self.images[image_id]

    def load_mask(self, image_id):
        return self.masks[image_id]


def ours_preprocess(config: Config, samples: PreloadedSamples):
    """Mold the loaded images and masks into our training batch."""
    from mrcnn.training.data import TrainingSamples, collate

    molder = TrainingSamples(samples, config)
    return collate([molder[i] for i in range(len(samples.image_ids))])


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


def ours_step(config: Config, samples: PreloadedSamples, with_preprocessing: bool):
    from mrcnn.model import MaskRCNN
    from mrcnn.modeling.losses import training_losses, weighted_total
    from mrcnn.training.layers import build_optimizer, set_train_mode, set_trainable

    model = MaskRCNN("training", config, "unused")
    set_trainable(model.net, "all")
    set_train_mode(model.net, True)
    optimizer = build_optimizer(model.net, 0.001, 0.9, 1e-4)
    molded = ours_preprocess(config, samples).to(model.device)

    def step():
        batch = ours_preprocess(config, samples).to(model.device) if with_preprocessing else molded
        losses = training_losses(model.net, batch.images, batch.windows, batch.gt)
        optimizer.zero_grad()
        weighted_total(losses, config.LOSS_WEIGHTS).backward()
        optimizer.step()

    return step


def torchvision_step(config: Config, dataset, device: str, with_preprocessing: bool):
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

    def losses_after_transform(images_t, targets_t) -> dict:
        """GeneralizedRCNN.forward in training, less its transform."""
        features = model.backbone(images_t.tensors)
        proposals, rpn_losses = model.rpn(images_t, features, targets_t)
        _, head_losses = model.roi_heads(features, proposals, images_t.image_sizes, targets_t)
        return {**rpn_losses, **head_losses}

    transformed = model.transform(images, [dict(t) for t in targets])

    def step():
        if with_preprocessing:
            loss = sum(model(images, targets).values())
        else:
            loss = sum(losses_after_transform(*transformed).values())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.train_step", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument(
        "--with-preprocessing",
        action="store_true",
        help="time each model's preprocessing of the loaded images and masks in every step",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = matched_config(args.size, args.batch, args.device)
    dataset = shapes_dataset(config, args.batch)
    samples = PreloadedSamples(dataset)
    torch.manual_seed(0)
    ours_fn = ours_step(config, samples, args.with_preprocessing)
    torch.manual_seed(0)
    theirs_fn = torchvision_step(config, samples, args.device, args.with_preprocessing)
    medians = time_steps({"ours": ours_fn, "torchvision": theirs_fn}, args.steps, args.device)
    ours, theirs = medians["ours"], medians["torchvision"]
    print(f"ours:        {ours:.3f} s/step")
    print(f"torchvision: {theirs:.3f} s/step")
    print(
        f"ratio ours/torchvision: {ours / theirs:.2f} ({args.size} px, batch {args.batch}, "
        f"{args.device}, {torch.get_num_threads()} threads, preprocessing "
        f"{'timed' if args.with_preprocessing else 'excluded'} for both)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

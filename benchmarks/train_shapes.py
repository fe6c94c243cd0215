"""Train on synthetic shapes from random weights for a fixed wall-clock budget; print mask mAP.

Our trainer and torchvision's Mask R-CNN (random weights; the same ResNet-FPN backbone,
anchors, image size, batch size and budget) each train for ``--minutes`` and are then scored
with mask mAP@0.5 (mrcnn.evaluation.compute_ap, averaged over ``--val`` validation images).
torchvision's model is trained with its reference recipe (SGD, momentum 0.9, learning rate
0.02 x batch / 16, weight decay 1e-4) or, with ``--torchvision-recipe ours``, with our
optimiser and learning rate (AdamW 2e-3); both use our warm-up and gradient clipping::

    python benchmarks/train_shapes.py --minutes 10 [--device cuda]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time

import numpy as np
import torch

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))

from mrcnn.config import Config  # noqa: E402
from mrcnn.datasets import ShapesDataset  # noqa: E402
from mrcnn.demo import ShapesDemoConfig  # noqa: E402


class ShapesTrainConfig(ShapesDemoConfig):
    """The demo's config (ResNet-18 FPN, 128 px, AdamW), without validation losses."""

    NAME = "shapes_bench"
    STEPS_PER_EPOCH = 50
    VALIDATION_STEPS = 0


def datasets(size: int, train_count: int, val_count: int) -> tuple[ShapesDataset, ShapesDataset]:
    train, val = ShapesDataset(), ShapesDataset()
    train.load_shapes(train_count, size, size, subset="train")
    val.load_shapes(val_count, size, size, subset="val")
    train.prepare()
    val.prepare()
    return train, val


def mask_map(predict, dataset) -> float:
    """Mean over images of compute_ap at IoU 0.5 (masks); ``predict(image)`` returns
    (boxes (y1, x1, y2, x2), class_ids, scores, masks [H, W, N])."""
    from mrcnn.evaluation import compute_ap  # written alongside; imported when needed

    scores = []
    for image_id in dataset.image_ids:
        image = dataset.load_image(image_id)
        masks, class_ids = dataset.load_mask(image_id)
        gt_boxes = dataset.extract_bboxes(masks)
        boxes, pred_ids, pred_scores, pred_masks = predict(image)
        ap = compute_ap(gt_boxes, class_ids, masks, boxes, pred_ids, pred_scores, pred_masks, 0.5)[
            0
        ]
        scores.append(0.0 if math.isnan(ap) else ap)
    return float(np.mean(scores))


def run_ours(train, val, minutes: float, config: Config) -> tuple[float, int]:
    from mrcnn.model import MaskRCNN
    from mrcnn.training.trainer import train as train_loop

    with tempfile.TemporaryDirectory() as logs:
        model = MaskRCNN("training", config, logs)
        start = time.monotonic()
        train_loop(
            model, train, None, config.LEARNING_RATE, 10_000, "all", max_seconds=minutes * 60
        )
        print(f"ours: {model.global_step} steps in {time.monotonic() - start:.0f} s")
        model.mode = "inference"

        def predict(image):
            r = model.detect([image])[0]
            return r["rois"], r["class_ids"], r["scores"], r["masks"]

        return mask_map(predict, val), model.global_step


def torchvision_batches(train, batch_size: int, device: torch.device, seed: int = 0):
    rng = np.random.default_rng(seed)
    while True:
        ids = rng.choice(train.image_ids, batch_size, replace=False)
        images, targets = [], []
        for image_id in ids:
            image = torch.from_numpy(train.load_image(image_id)).to(device)
            image = image.permute(2, 0, 1).float() / 255
            masks, class_ids = train.load_mask(image_id)
            boxes = train.extract_bboxes(masks)[:, [1, 0, 3, 2]]
            images.append(image)
            targets.append(
                {
                    "boxes": torch.as_tensor(boxes, dtype=torch.float32, device=device),
                    "labels": torch.as_tensor(class_ids, dtype=torch.int64, device=device),
                    "masks": torch.from_numpy(masks.transpose(2, 0, 1).astype(np.uint8)).to(device),
                }
            )
        yield images, targets


def run_torchvision(train, val, minutes: float, config: Config, recipe: str) -> tuple[float, int]:
    import torchvision
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    size = int(config.IMAGE_MAX_DIM)
    # The same backbone (trainable BatchNorm), anchors, image size and optimiser as ours.
    backbone = resnet_fpn_backbone(
        backbone_name=config.BACKBONE,
        weights=None,
        trainable_layers=5,
        norm_layer=torch.nn.BatchNorm2d,
    )
    anchors = AnchorGenerator(tuple((s,) for s in config.RPN_ANCHOR_SCALES), ((0.5, 1.0, 2.0),) * 5)
    model = torchvision.models.detection.MaskRCNN(
        backbone,
        num_classes=int(config.NUM_CLASSES),
        min_size=size,
        max_size=size,
        rpn_anchor_generator=anchors,
    )
    device = torch.device(config.DEVICE)
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    groups = [
        {"params": decay, "weight_decay": config.WEIGHT_DECAY},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    # torchvision's detection reference trains at lr 0.02 for 16 images, with SGD.
    reference = recipe == "reference"
    learning_rate = 0.02 * int(config.IMAGES_PER_GPU) / 16 if reference else config.LEARNING_RATE
    if not reference and str(config.OPTIMIZER).lower() == "adamw":
        optimizer = torch.optim.AdamW(
            groups, lr=learning_rate, betas=(config.LEARNING_MOMENTUM, 0.999)
        )
    else:
        optimizer = torch.optim.SGD(groups, lr=learning_rate, momentum=0.9)
    print(f"torchvision: {type(optimizer).__name__}, learning rate {learning_rate:g} ({recipe})")
    model.train()
    deadline, step, recent = time.monotonic() + minutes * 60, 0, []
    for images, targets in torchvision_batches(train, int(config.IMAGES_PER_GPU), device):
        if time.monotonic() > deadline:
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate * min(1.0, (step + 1) / config.WARMUP_STEPS)
        loss = sum(model(images, targets).values())
        if not torch.isfinite(loss):
            print(f"torchvision: non-finite loss at step {step}; stopping")
            break
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.GRADIENT_CLIP_NORM)
        optimizer.step()
        recent = [*recent[-19:], float(loss.detach())]
        step += 1
    print(f"torchvision: {step} steps, mean loss of the last {len(recent)}: {np.mean(recent):.3f}")
    model.eval()

    @torch.no_grad()
    def predict(image):
        tensor = torch.from_numpy(image).to(device).permute(2, 0, 1).float() / 255
        out = {name: value.cpu() for name, value in model([tensor])[0].items()}
        keep = out["scores"] >= config.DETECTION_MIN_CONFIDENCE
        seen.append((int(keep.sum()), float(out["scores"].max()) if len(keep) else 0.0))
        boxes = out["boxes"][keep].numpy()[:, [1, 0, 3, 2]]
        masks = (out["masks"][keep, 0] >= 0.5).numpy().transpose(1, 2, 0)
        return boxes, out["labels"][keep].numpy(), out["scores"][keep].numpy(), masks

    seen: list[tuple[int, float]] = []
    score = mask_map(predict, val)
    print(
        f"torchvision: {sum(n for n, _ in seen)} detections kept on {len(seen)} validation "
        f"images (score >= {config.DETECTION_MIN_CONFIDENCE}); highest score "
        f"{max((s for _, s in seen), default=0.0):.3f}"
    )
    return score, step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per model")
    parser.add_argument("--val", type=int, default=50, help="validation images")
    parser.add_argument("--train-images", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--skip-torchvision", action="store_true")
    parser.add_argument("--skip-ours", action="store_true")
    parser.add_argument(
        "--torchvision-recipe",
        choices=("reference", "ours"),
        default="reference",
        help="torchvision's optimiser: its reference SGD recipe (default) or ours",
    )
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, ...")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = ShapesTrainConfig.from_overrides({"DEVICE": args.device})
    train, val = datasets(int(config.IMAGE_MAX_DIM), args.train_images, args.val)
    if not args.skip_ours:
        torch.manual_seed(0)
        ours, ours_steps = run_ours(train, val, args.minutes, config)
        print(f"ours:        mask mAP@0.5 = {ours:.3f} on {args.val} images ({ours_steps} steps)")
    if not args.skip_torchvision:
        torch.manual_seed(0)
        recipe = args.torchvision_recipe
        theirs, their_steps = run_torchvision(train, val, args.minutes, config, recipe)
        print(
            f"torchvision: mask mAP@0.5 = {theirs:.3f} on {args.val} images ({their_steps} steps)"
        )
    print(
        f"budget {args.minutes:g} min per model, {args.device}, {torch.get_num_threads()} threads, "
        f"{config.IMAGE_MAX_DIM} px, batch {config.IMAGES_PER_GPU}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

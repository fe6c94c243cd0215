"""Train on synthetic shapes from random weights for a fixed wall-clock budget; print mask mAP.

Our trainer and torchvision's Mask R-CNN (random weights; the same ResNet-FPN backbone,
anchors, image size, batch size and budget) each train for ``--minutes`` and are then scored
with mask mAP@0.5 (mrcnn.evaluation.compute_ap, averaged over ``--val`` validation images).
torchvision's model is trained with its reference recipe (SGD, momentum 0.9, learning rate
0.02 x batch / 16, weight decay 1e-4) or, with ``--torchvision-recipe ours``, with our
optimiser and learning rate (AdamW 2e-3); both use our warm-up and gradient clipping.

Two torchvision models are trained: one with its default heads and sampling sizes (256-channel
pyramid and mask head, 1024-wide box head, 2000 proposals, 512 ROIs per image) and one with
those sized like ours ("torchvision, our head sizes"), which separates what our trainer does
from what our smaller default heads buy. AP ranks detections, so every model is scored at one
low score threshold (``--low-threshold``, torchvision's default 0.05) and at its own default
(ours: DETECTION_MIN_CONFIDENCE 0.7; torchvision: box_score_thresh 0.05)::

    python -m benchmarks.train_shapes --minutes 10 [--device cuda]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time

import numpy as np
import torch

from mrcnn.config import Config
from mrcnn.datasets import ShapesDataset
from mrcnn.demo import ShapesDemoConfig


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


def predictions(predict, dataset) -> list[tuple]:
    """``predict(image)`` on every image: (boxes (y1, x1, y2, x2), class_ids, scores,
    masks [H, W, N]) each."""
    return [predict(dataset.load_image(image_id)) for image_id in dataset.image_ids]


def mask_map(predicted: list[tuple], dataset, threshold: float) -> float:
    """Mean over images of compute_ap at IoU 0.5 (masks), keeping the predictions that score
    at least ``threshold``."""
    from mrcnn.evaluation import compute_ap

    scores = []
    for image_id, (boxes, pred_ids, pred_scores, pred_masks) in zip(
        dataset.image_ids, predicted, strict=True
    ):
        masks, class_ids = dataset.load_mask(image_id)
        gt_boxes = dataset.extract_bboxes(masks)
        keep = np.asarray(pred_scores) >= threshold
        ap = compute_ap(
            gt_boxes,
            class_ids,
            masks,
            boxes[keep],
            pred_ids[keep],
            pred_scores[keep],
            pred_masks[:, :, keep],
            0.5,
        )[0]
        scores.append(0.0 if math.isnan(ap) else ap)
    return float(np.mean(scores))


def scores_at(predicted: list[tuple], dataset, thresholds: dict[str, float]) -> dict[str, float]:
    """{name: mask mAP@0.5 at that score threshold}."""
    return {name: mask_map(predicted, dataset, t) for name, t in thresholds.items()}


def run_ours(train, val, minutes: float, config: Config, low: float) -> tuple[dict, int]:
    """Train ours; return ({"low": mAP, "default": mAP}, steps)."""
    from mrcnn.model import MaskRCNN

    with tempfile.TemporaryDirectory() as logs:
        model = MaskRCNN("training", config, logs)
        start = time.monotonic()
        model.train(train, None, config.LEARNING_RATE, 10_000, "all", max_seconds=minutes * 60)
        print(f"ours: {model.global_step} steps in {time.monotonic() - start:.0f} s")
        # Detect at the lower of the two thresholds; each score keeps what passes its own.
        floor = min(low, float(config.DETECTION_MIN_CONFIDENCE))
        scoring = MaskRCNN(
            "inference",
            type(config).from_overrides({"DETECTION_MIN_CONFIDENCE": floor}),
            logs,
        )
        scoring.net.load_state_dict(model.net.state_dict())

        def predict(image):
            r = scoring.detect([image])[0]
            return r["rois"], r["class_ids"], r["scores"], r["masks"]

        thresholds = {"low": low, "default": float(config.DETECTION_MIN_CONFIDENCE)}
        return scores_at(predictions(predict, val), val, thresholds), model.global_step


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


def torchvision_model(config: Config, our_heads: bool):
    """torchvision's MaskRCNN with our backbone, anchors and image size; its default heads and
    sampling sizes, or (``our_heads``) those of ``config``: pyramid width, box head width,
    mask head channels, proposals, sampled anchors and ROIs, detections per image."""
    import torchvision
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import BackboneWithFPN, resnet_fpn_backbone
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor

    size = int(config.IMAGE_MAX_DIM)
    # The same backbone (trainable BatchNorm), anchors and image size as ours.
    anchors = AnchorGenerator(tuple((s,) for s in config.RPN_ANCHOR_SCALES), ((0.5, 1.0, 2.0),) * 5)
    common = {
        "min_size": size,
        "max_size": size,
        "rpn_anchor_generator": anchors,
    }
    if not our_heads:
        backbone = resnet_fpn_backbone(
            backbone_name=config.BACKBONE,
            weights=None,
            trainable_layers=5,
            norm_layer=torch.nn.BatchNorm2d,
        )
        return torchvision.models.detection.MaskRCNN(
            backbone, num_classes=int(config.NUM_CLASSES), **common
        )
    resnet = getattr(torchvision.models, config.BACKBONE)(weights=None)
    widths = [resnet.fc.in_features // 2 ** (3 - i) for i in range(4)]  # layer1..layer4
    channels = int(config.TOP_DOWN_PYRAMID_SIZE)
    backbone = BackboneWithFPN(
        resnet,
        return_layers={f"layer{i + 1}": str(i) for i in range(4)},
        in_channels_list=widths,
        out_channels=channels,
    )
    hidden, mask_channels = int(config.FPN_CLASSIF_FC_LAYERS_SIZE), int(config.MASK_HEAD_CHANNELS)
    pool, classes = int(config.POOL_SIZE), int(config.NUM_CLASSES)
    return torchvision.models.detection.MaskRCNN(
        backbone,
        box_head=TwoMLPHead(channels * pool * pool, hidden),
        box_predictor=FastRCNNPredictor(hidden, classes),
        mask_head=MaskRCNNHeads(channels, (mask_channels,) * 4, 1),
        mask_predictor=MaskRCNNPredictor(mask_channels, mask_channels, classes),
        rpn_pre_nms_top_n_train=int(config.PRE_NMS_LIMIT),
        rpn_pre_nms_top_n_test=int(config.PRE_NMS_LIMIT),
        rpn_post_nms_top_n_train=int(config.POST_NMS_ROIS_TRAINING),
        rpn_post_nms_top_n_test=int(config.POST_NMS_ROIS_INFERENCE),
        rpn_batch_size_per_image=int(config.RPN_TRAIN_ANCHORS_PER_IMAGE),
        box_batch_size_per_image=int(config.TRAIN_ROIS_PER_IMAGE),
        box_detections_per_img=int(config.DETECTION_MAX_INSTANCES),
        **common,
    )


def run_torchvision(
    train, val, minutes: float, config: Config, recipe: str, low: float, our_heads: bool = False
) -> tuple[dict, int]:
    """Train a torchvision model; return ({"low": mAP, "default": mAP}, steps)."""
    model = torchvision_model(config, our_heads)
    name = "torchvision, our head sizes" if our_heads else "torchvision"
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
    print(f"{name}: {type(optimizer).__name__}, learning rate {learning_rate:g} ({recipe})")
    model.train()
    deadline, step, recent = time.monotonic() + minutes * 60, 0, []
    for images, targets in torchvision_batches(train, int(config.IMAGES_PER_GPU), device):
        if time.monotonic() > deadline:
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate * min(1.0, (step + 1) / config.WARMUP_STEPS)
        loss = sum(model(images, targets).values())
        if not torch.isfinite(loss):
            print(f"{name}: non-finite loss at step {step}; stopping")
            break
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, config.GRADIENT_CLIP_NORM)
        optimizer.step()
        recent = [*recent[-19:], float(loss.detach())]
        step += 1
    print(f"{name}: {step} steps, mean loss of the last {len(recent)}: {np.mean(recent):.3f}")
    model.eval()
    # torchvision's own default threshold is its box_score_thresh (0.05).
    default = float(model.roi_heads.score_thresh)
    model.roi_heads.score_thresh = min(low, default)

    @torch.no_grad()
    def predict(image):
        tensor = torch.from_numpy(image).to(device).permute(2, 0, 1).float() / 255
        out = {key: value.cpu() for key, value in model([tensor])[0].items()}
        seen.append((len(out["scores"]), float(out["scores"].max()) if len(out["scores"]) else 0))
        boxes = out["boxes"].numpy()[:, [1, 0, 3, 2]]
        masks = (out["masks"][:, 0] >= 0.5).numpy().transpose(1, 2, 0)
        return boxes, out["labels"].numpy(), out["scores"].numpy(), masks

    seen: list[tuple[int, float]] = []
    predicted = predictions(predict, val)
    print(
        f"{name}: {sum(n for n, _ in seen)} detections on {len(seen)} validation images "
        f"(score >= {min(low, default)}); highest score {max((s for _, s in seen), default=0):.3f}"
    )
    return scores_at(predicted, val, {"low": low, "default": default}), step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.train_shapes", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per model")
    parser.add_argument("--val", type=int, default=50, help="validation images")
    parser.add_argument("--train-images", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument(
        "--steps-per-epoch",
        type=int,
        default=ShapesTrainConfig.STEPS_PER_EPOCH,
        help="our trainer's epoch length; it stops at the end of an epoch (small: quick checks)",
    )
    parser.add_argument("--skip-torchvision", action="store_true")
    parser.add_argument(
        "--skip-torchvision-our-heads",
        action="store_true",
        help="skip torchvision with head and sampling sizes matched to ours",
    )
    parser.add_argument("--skip-ours", action="store_true")
    parser.add_argument(
        "--low-threshold",
        type=float,
        default=0.05,
        help="the one score threshold every model is scored at (default 0.05, torchvision's)",
    )
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
    config = ShapesTrainConfig.from_overrides(
        {"DEVICE": args.device, "STEPS_PER_EPOCH": args.steps_per_epoch}
    )
    train, val = datasets(int(config.IMAGE_MAX_DIM), args.train_images, args.val)
    low, rows = args.low_threshold, []
    if not args.skip_ours:
        torch.manual_seed(0)
        scores, steps = run_ours(train, val, args.minutes, config, low)
        rows.append(("ours", steps, scores, float(config.DETECTION_MIN_CONFIDENCE)))
    for skip, our_heads in (
        (args.skip_torchvision, False),
        (args.skip_torchvision_our_heads, True),
    ):
        if skip:
            continue
        torch.manual_seed(0)
        recipe = args.torchvision_recipe
        scores, steps = run_torchvision(train, val, args.minutes, config, recipe, low, our_heads)
        name = "torchvision, our head sizes" if our_heads else "torchvision"
        rows.append((name, steps, scores, 0.05))
    print(f"\nmask mAP@0.5 on {args.val} validation images")
    print(f"{'model':<28} {'steps':>6} {'at ' + format(low, 'g'):>8} {'at its default':>16}")
    for name, steps, scores, default in rows:
        at_default = f"{scores['default']:.3f} ({default:g})"
        print(f"{name:<28} {steps:>6} {scores['low']:>8.3f} {at_default:>16}")
    print(
        f"budget {args.minutes:g} min per model, {args.device}, {torch.get_num_threads()} threads, "
        f"{config.IMAGE_MAX_DIM} px, batch {config.IMAGES_PER_GPU}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CPU inference: our network against torchvision's Mask R-CNN, same weights, same input.

Prints ms/image for both on an 800x1066 image in float32 (median of --repeats runs after a
warm-up), their ratio, the peak resident memory of each (each model runs in its own process),
whether the detections agree (in float32 as sets, and exactly in a float64 run of both), and the
lower bound the machine's convolution throughput puts on the time. Both models keep every
detection (score threshold 0), so the mask head and the mask pasting run on 100 instances as
they would on a busy photo.

    .venv/bin/python -m benchmarks.infer_cpu [--repeats 3] [--threads 2] [--precision bf16]

With ``--precision bf16`` our model runs with INFERENCE_PRECISION="bf16" (torchvision stays in
float32, its default), and two agreement checks are added: the share of torchvision's
random-weight detections that ours pairs with the same class and mask IoU >= 0.9, and the mask
mAP@0.5 of a trained shapes model (the demo's configuration, trained for --train-seconds, or
--checkpoint) on 50 validation images in bf16 against fp32.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks._common import measure_bf16_as_asked, peak_rss_mib
from mrcnn.testing import pair_by_class, photo_like_image, randomised_torchvision_maskrcnn

REPO = Path(__file__).resolve().parents[1]

HEIGHT, WIDTH = 800, 1066


def torchvision_result(out: dict, masks_to_host=lambda t: t.cpu().numpy()) -> dict:
    """One image's torchvision output as host arrays: boxes (x1, y1, x2, y2), labels, scores,
    masks [N, H, W] bool (copied by ``masks_to_host``: ``.cpu()``, as its users write)."""
    return {
        "boxes": out["boxes"].float().cpu().numpy(),  # (half precision under autocast)
        "labels": out["labels"].cpu().numpy(),
        "scores": out["scores"].float().cpu().numpy(),
        "masks": masks_to_host(out["masks"][:, 0] > 0.5),
    }


def our_result(r: dict) -> dict:
    """One image's ``detect`` result in :func:`torchvision_result`'s form."""
    masks = np.moveaxis(r["masks"], 2, 0)
    return {"boxes": r["boxes"], "labels": r["class_ids"], "scores": r["scores"], "masks": masks}


def run_torchvision(weights: Path, image: np.ndarray):
    model = randomised_torchvision_maskrcnn(box_score_thresh=0.0)
    model.load_state_dict(torch.load(weights, weights_only=True))
    tensor = torch.from_numpy(image).permute(2, 0, 1).float() / 255.0

    def infer():
        with torch.inference_mode():
            return torchvision_result(model([tensor])[0])

    return infer


def run_ours(weights: Path, image: np.ndarray, precision: str = "fp32"):
    from mrcnn.config import TorchvisionCocoConfig
    from mrcnn.model import MaskRCNN

    config = TorchvisionCocoConfig.from_overrides(
        {"DETECTION_MIN_CONFIDENCE": 0.0, "DEVICE": "cpu", "INFERENCE_PRECISION": precision}
    )
    model = MaskRCNN("inference", config)
    model.load_weights(str(weights))

    def infer():
        return our_result(model.detect([image])[0])

    return infer


def worker(which: str, weights: Path, threads: int, out: Path, precision: str) -> None:
    """Serve timed runs: one inference per "run" line on stdin, then save and report on EOF.

    The parent alternates the two workers run by run, so that a change in machine load hits
    both models alike.
    """
    torch.set_num_threads(threads)
    image = photo_like_image(HEIGHT, WIDTH)
    if which == "ours" and precision == "bf16":  # (torchvision's worker runs fp32 anyway)
        measure_bf16_as_asked()
    if which == "ours":
        infer = run_ours(weights, image, precision)
    else:
        infer = run_torchvision(weights, image)
    result = infer()  # warm-up (allocator, anchor cache, oneDNN primitives)
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        start = time.perf_counter()
        result = infer()
        print(json.dumps({"ms": (time.perf_counter() - start) * 1000}), flush=True)
    np.savez(out, **result)
    print(json.dumps({"peak_rss_mib": peak_rss_mib()}), flush=True)


def conv_throughput(threads: int, dtype: torch.dtype = torch.float32) -> float:
    """GFLOP/s of a 3x3 256->256 convolution on a 200x272 map, the FPN's largest level."""
    torch.set_num_threads(threads)
    conv = torch.nn.Conv2d(256, 256, 3, padding=1).to(
        dtype=dtype, memory_format=torch.channels_last
    )
    x = torch.randn(1, 256, 200, 272).to(dtype=dtype, memory_format=torch.channels_last)
    flops = 2 * 256 * 256 * 9 * 200 * 272
    with torch.inference_mode():
        conv(x)
        start = time.perf_counter()
        for _ in range(3):
            conv(x)
        seconds = (time.perf_counter() - start) / 3
    return flops / seconds / 1e9


def network_gflop() -> float:
    """FLOPs of one forward of our network at this size, counted by torch's FlopCounterMode.

    Plain ``mm`` is left out: where it appears it is ROIAlign's sparse sampling product (the
    linear layers are ``addmm``; inference samples with ``embedding_bag``, which the counter
    does not count), priced as a dense matrix product of its full shape; its real cost, 16
    multiply-adds per output value, is negligible here. The count runs with autograd on (and
    nothing requiring gradients): the counter does not know the fused convolution-and-ReLU op
    inference takes otherwise (:mod:`mrcnn.modeling.conv_fusion`), and would miss most of the
    network.
    """
    from torch.utils.flop_counter import FlopCounterMode

    from mrcnn.config import TorchvisionCocoConfig
    from mrcnn.model import MaskRCNN
    from mrcnn.structures.image import mold_batch

    config = TorchvisionCocoConfig.from_overrides(
        {"DETECTION_MIN_CONFIDENCE": 0.0, "DEVICE": "cpu"}
    )
    model = MaskRCNN("inference", config)
    model.net.requires_grad_(False)
    batch, metas = mold_batch([photo_like_image(HEIGHT, WIDTH)], config)
    windows = torch.tensor([m.window for m in metas], dtype=torch.float32)
    counter = FlopCounterMode(display=False)
    with torch.enable_grad(), counter:
        model.net(batch, windows)
    counts = counter.get_flop_counts()["Global"]
    return sum(n for op, n in counts.items() if op is not torch.ops.aten.mm) / 1e9


def pair(ours: dict, reference: dict) -> list[tuple[int, int, float, float]]:
    """Match detections in :func:`torchvision_result`'s form one to one (same class, nearest
    box; :func:`mrcnn.testing.pair_by_class`): (i ours, j reference, largest box difference
    in px, mask IoU) per pair."""

    def detect_style(r: dict) -> dict:
        return {
            "class_ids": r["labels"],
            "boxes": r["boxes"],
            "masks": np.moveaxis(r["masks"], 0, 2),
        }

    return pair_by_class(detect_style(ours), detect_style(reference))


def compare(ours: dict, reference: dict) -> str:
    """Summarise the differences of two sets of detections matched by :func:`pair`.

    In float32 many random-weight detections have nearly equal scores, so the two models may
    list them in a different order; matching compares them as sets.
    """
    n_ours, n_ref = len(ours["scores"]), len(reference["scores"])
    pairs = pair(ours, reference)
    box_diffs = [p[2] for p in pairs]
    score_diffs = [
        abs(float(ours["scores"][i]) - float(reference["scores"][j])) for i, j, *_ in pairs
    ]
    ious = [p[3] for p in pairs]
    close = sum(d < 0.01 for d in box_diffs)
    good = sum(iou >= 0.9 for iou in ious)
    return (
        f"{n_ours} ours vs {n_ref} torchvision; {close} matched within 0.01 px "
        f"(max box difference {max(box_diffs, default=0):.2e} px, max score difference "
        f"{max(score_diffs, default=0):.2e}, lowest mask IoU {min(ious, default=1.0):.4f}); "
        f"paired with the same class and mask IoU >= 0.9: {good}/{n_ref} "
        f"({100 * good / max(n_ref, 1):.0f}%)"
    )


def trained_agreement(checkpoint: Path | None, train_seconds: float) -> str:
    """Mask mAP@0.5 on 50 shapes validation images of a trained model in fp32 and in bf16.

    The model is ``checkpoint`` (trained with the demo's ShapesDemoConfig), else the demo's
    configuration trained here for ``train_seconds``.
    """
    from mrcnn.datasets.shapes import ShapesDataset
    from mrcnn.demo import ShapesDemoConfig, _shapes, run_demo
    from mrcnn.evaluation import evaluate_dataset
    from mrcnn.model import MaskRCNN
    from mrcnn.weights.checkpoint import find_last

    with tempfile.TemporaryDirectory() as tmp:
        if checkpoint is None:
            run_demo(
                Path(tmp) / "demo",
                train_epochs=10_000,  # as many as fit in the time
                max_train_seconds=train_seconds,
                progress=False,
            )
            checkpoint = Path(find_last(Path(tmp) / "demo" / "logs"))
        val = _shapes(ShapesDataset, 50, "val", 0)
        images = [val.load_image(image_id) for image_id in val.image_ids]
        scores, detections = {}, {}
        for precision in ("fp32", "bf16"):
            config = ShapesDemoConfig.from_overrides(
                {"INFERENCE_PRECISION": precision, "DEVICE": "cpu"}
            )
            model = MaskRCNN("inference", config, tmp)
            model.load_weights(str(checkpoint))
            result = evaluate_dataset(model, val, progress=False, coco_results=False)
            scores[precision] = result.map50
            detections[precision] = [our_result(model.detect([image])[0]) for image in images]
    pairs = [pair(b, f) for b, f in zip(detections["bf16"], detections["fp32"], strict=True)]
    total = sum(len(f["scores"]) for f in detections["fp32"])
    good = sum(p[3] >= 0.9 and p[2] <= 1.0 for image_pairs in pairs for p in image_pairs)
    return (
        f"trained shapes model ({checkpoint.name if checkpoint else 'demo'}): mask mAP@0.5 "
        f"fp32 {scores['fp32']:.4f}, bf16 {scores['bf16']:.4f}, difference "
        f"{abs(scores['bf16'] - scores['fp32']):.4f}; fp32 detections paired in bf16 with the "
        f"same class, box within 1 px and mask IoU >= 0.9: {good}/{total} "
        f"({100 * good / max(total, 1):.1f}%)"
    )


def float64_agreement(weights: Path, device: str = "cpu") -> str:
    """Both models once in float64 on the benchmark image: do the detections agree exactly?

    float64 takes rounding out of the comparison (float32 rounding reorders the near-tied
    scores of random weights); the criteria are those of
    tests/modeling/test_torchvision_equivalence.py.
    """
    from mrcnn.config import TorchvisionCocoConfig
    from mrcnn.model import MaskRCNN

    image = photo_like_image(HEIGHT, WIDTH)
    reference = randomised_torchvision_maskrcnn(box_score_thresh=0.0).double()
    reference.load_state_dict(torch.load(weights, weights_only=True))
    reference.to(device)
    tensor = torch.from_numpy(image).to(device).permute(2, 0, 1).double() / 255.0
    with torch.inference_mode():
        out = {name: value.cpu() for name, value in reference([tensor])[0].items()}
    config = TorchvisionCocoConfig.from_overrides(
        {"DETECTION_MIN_CONFIDENCE": 0.0, "DEVICE": device}
    )
    ours = MaskRCNN("inference", config)
    ours.load_weights(str(weights))
    r = ours.to(torch.float64).detect([image])[0]
    if len(r["scores"]) != len(out["scores"]):
        return f"DIFFERENT counts: {len(r['scores'])} vs {len(out['scores'])}"
    box = float(np.abs(r["boxes"] - out["boxes"].numpy()).max())
    score = float(np.abs(r["scores"] - out["scores"].numpy()).max())
    theirs = (out["masks"][:, 0] > 0.5).numpy()
    ious = [  # two empty masks (degenerate boxes) agree
        np.logical_and(a, b).sum() / np.logical_or(a, b).sum() if np.logical_or(a, b).any() else 1.0
        for a, b in zip(np.moveaxis(r["masks"], 2, 0), theirs, strict=True)
    ]
    same = (r["class_ids"] == out["labels"].numpy()).all() and box < 1e-3 and score < 1e-5
    verdict = "identical" if same and min(ious, default=1) >= 0.99 else "DIFFERENT"
    return (
        f"{verdict}: {len(r['scores'])} detections in the same order, same classes "
        f"{bool((r['class_ids'] == out['labels'].numpy()).all())}, max box difference "
        f"{box:.1e} px, max score difference {score:.1e}, lowest mask IoU {min(ious):.4f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.infer_cpu", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument(
        "--train-seconds",
        type=float,
        default=240.0,
        help="bf16 only: training budget of the shapes model for the mAP agreement",
    )
    parser.add_argument(
        "--checkpoint", type=Path, help="bf16 only: a trained demo checkpoint instead of training"
    )
    parser.add_argument("--worker", choices=["ours", "torchvision"], help=argparse.SUPPRESS)
    parser.add_argument("--weights", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.weights, args.threads, args.out, args.precision)
        return
    bf16_note = measure_bf16_as_asked() if args.precision == "bf16" else None

    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "weights.pth"
        torch.save(randomised_torchvision_maskrcnn().state_dict(), weights)
        workers, outs = {}, {}
        for which in ("torchvision", "ours"):
            outs[which] = Path(tmp) / f"{which}.npz"
            command = [
                sys.executable,
                "-m",
                "benchmarks.infer_cpu",
                "--worker",
                which,
                "--weights",
                str(weights),
                "--threads",
                str(args.threads),
                "--out",
                str(outs[which]),
                "--precision",
                args.precision,
            ]
            workers[which] = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO
            )
            assert workers[which].stdout.readline().strip() == "ready"
        stats = {which: {"ms": []} for which in workers}
        for _ in range(args.repeats):
            for which, process in workers.items():
                process.stdin.write("run\n")
                process.stdin.flush()
                stats[which]["ms"].append(json.loads(process.stdout.readline())["ms"])
        outputs = {}
        for which, process in workers.items():
            process.stdin.close()
            stats[which].update(json.loads(process.stdout.readline()))
            process.wait()
            outputs[which] = dict(np.load(outs[which]))
        agreement64 = float64_agreement(weights) if args.precision == "fp32" else None

    tv_ms = statistics.median(stats["torchvision"]["ms"])
    our_ms = statistics.median(stats["ours"]["ms"])
    gflop = network_gflop()
    dtype = torch.bfloat16 if args.precision == "bf16" else torch.float32
    conv_rate = conv_throughput(args.threads, dtype)
    print(
        f"input {WIDTH}x{HEIGHT}, ours in {args.precision}, torchvision in fp32, "
        f"{args.threads} threads, median of {args.repeats}"
    )
    if bf16_note:
        print(bf16_note)
    print(
        f"torchvision maskrcnn_resnet50_fpn: {tv_ms:8.0f} ms/image  "
        f"peak RSS {stats['torchvision']['peak_rss_mib']:.0f} MiB"
    )
    print(
        f"mrcnn (TorchvisionCocoConfig):     {our_ms:8.0f} ms/image  "
        f"peak RSS {stats['ours']['peak_rss_mib']:.0f} MiB"
    )
    print(
        f"time ratio ours/torchvision: {our_ms / tv_ms:.3f}   memory ratio: "
        f"{stats['ours']['peak_rss_mib'] / stats['torchvision']['peak_rss_mib']:.3f}"
    )
    print(
        f"detections ({args.precision} vs fp32): {compare(outputs['ours'], outputs['torchvision'])}"
    )
    if agreement64 is not None:
        print(f"detections in float64: {agreement64}")
    else:
        print(trained_agreement(args.checkpoint, args.train_seconds))
    print(
        f"network cost {gflop:.0f} GFLOP; 3x3-conv throughput here in {args.precision} "
        f"{conv_rate:.0f} GFLOP/s; lower bound at that rate {gflop / conv_rate * 1000:.0f} ms/image"
    )


if __name__ == "__main__":
    main()

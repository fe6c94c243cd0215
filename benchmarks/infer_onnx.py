"""CPU inference: the exported ONNX model in ONNX Runtime against our PyTorch model.

Same weights (torchvision's Mask R-CNN ResNet-50 FPN layout, random), same 800x1066 photo-like
image, TorchvisionCocoConfig with every detection kept (score threshold 0, so the mask head and
the pasting run on 100 instances). Exports the model once (printing how long that took), then
times ``MaskRCNN.detect`` and ``OnnxMaskRCNN.detect`` alternately (median of --repeats after a
warm-up, same thread count), splits ONNX Runtime's time into the graph and the numpy pre- and
post-processing, and checks that the two agree by the test's criteria.

    .venv/bin/python -m benchmarks.infer_onnx [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks._common import peak_rss_mib
from mrcnn.testing import pair_by_class, photo_like_image, randomised_torchvision_maskrcnn

HEIGHT, WIDTH = 800, 1066


def our_model(weights: Path):
    from mrcnn.config import TorchvisionCocoConfig
    from mrcnn.model import MaskRCNN

    config = TorchvisionCocoConfig.from_overrides(
        {"DETECTION_MIN_CONFIDENCE": 0.0, "DEVICE": "cpu"}
    )
    model = MaskRCNN("inference", config)
    model.load_weights(str(weights))
    return model


def agreement(ours: dict, exported: dict, runtime: str = "ONNX Runtime") -> str:
    """Pairs (same class, nearest box) and how close they are, as the test measures it; for
    the pairs that are not close, the highest score involved (near-tied low scores at the
    DETECTION_MAX_INSTANCES cut are where float rounding swaps detections)."""
    pairs = pair_by_class(ours, exported)
    box_diffs, ious = [p[2] for p in pairs], [p[3] for p in pairs]
    scores = [max(float(ours["scores"][i]), float(exported["scores"][j])) for i, j, *_ in pairs]
    close = [d <= 0.5 and iou >= 0.98 for d, iou in zip(box_diffs, ious, strict=True)]
    off = [
        (s, d, iou) for s, d, iou, c in zip(scores, box_diffs, ious, close, strict=True) if not c
    ]
    close_diffs = [d for d, c in zip(box_diffs, close, strict=True) if c]
    close_ious = [iou for iou, c in zip(ious, close, strict=True) if c]
    text = (
        f"{len(ours['scores'])} PyTorch vs {len(exported['scores'])} {runtime} detections, "
        f"{len(box_diffs)} paired by class; {sum(close)} with box within 0.5 px and mask IoU "
        f">= 0.98 (among those: largest box difference {max(close_diffs, default=0):.2e} px, "
        f"lowest mask IoU {min(close_ious, default=1.0):.4f})"
    )
    if off:
        listed = ", ".join(f"score {s:.4f}: {d:.2f} px, IoU {iou:.3f}" for s, d, iou in off)
        text += (
            f"; the {len(off)} others ({listed}; all scores run "
            f"{float(ours['scores'].min()):.4f}..{float(ours['scores'].max()):.4f})"
        )
    return text


class TimedSession:
    """An onnxruntime session that records how long each run took (ms)."""

    def __init__(self, session) -> None:
        self.session, self.ms = session, []

    def run(self, *args, **kwargs):
        start = time.perf_counter()
        out = self.session.run(*args, **kwargs)
        self.ms.append((time.perf_counter() - start) * 1000)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.infer_onnx", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from mrcnn.deploy.export import export_onnx
    from mrcnn.deploy.runtime import OnnxMaskRCNN

    image = photo_like_image(HEIGHT, WIDTH)
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "weights.pth"
        torch.save(randomised_torchvision_maskrcnn().state_dict(), weights)
        model = our_model(weights)
        start = time.perf_counter()
        onnx_file = export_onnx(model, Path(tmp) / "model.onnx")
        export_s = time.perf_counter() - start
        size_mib = onnx_file.stat().st_size / 2**20
        exported = OnnxMaskRCNN(onnx_file, threads=args.threads)
        exported.session = timed = TimedSession(exported.session)

        runs = {
            "pytorch": lambda: model.detect([image])[0],
            "onnx": lambda: exported.detect([image])[0],
        }
        results = {which: infer() for which, infer in runs.items()}  # warm-up
        times: dict[str, list[float]] = {which: [] for which in runs}
        graph_ms = []
        for _ in range(args.repeats):
            for which, infer in runs.items():
                start = time.perf_counter()
                results[which] = infer()
                times[which].append((time.perf_counter() - start) * 1000)
            graph_ms.append(timed.ms[-1])

    ours, onnx = statistics.median(times["pytorch"]), statistics.median(times["onnx"])
    graph = statistics.median(graph_ms)
    outside = statistics.median(t - g for t, g in zip(times["onnx"], graph_ms, strict=True))
    print(
        f"input {WIDTH}x{HEIGHT} (network input {exported.input_size[1]}x"
        f"{exported.input_size[0]}), float32, {args.threads} threads, median of {args.repeats}"
    )
    print(f"export: {export_s:.0f} s, {size_mib:.0f} MiB .onnx file")
    print(f"mrcnn PyTorch (TorchvisionCocoConfig): {ours:8.0f} ms/image")
    print(
        f"ONNX Runtime (mrcnn.deploy.runtime):   {onnx:8.0f} ms/image "
        f"(graph {graph:.0f} ms, numpy molding + pasting {outside:.0f} ms)"
    )
    print(f"time ratio ONNX Runtime / PyTorch: {onnx / ours:.3f}")
    print(f"peak RSS of this process (both models): {peak_rss_mib():.0f} MiB")
    print(f"detections: {agreement(results['pytorch'], results['onnx'])}")


if __name__ == "__main__":
    main()

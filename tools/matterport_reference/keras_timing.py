"""Times Matterport's Keras `detect` on one image; ``benchmarks.infer_matterport`` runs it in a
subprocess with the side environment's python, so the benchmark never imports TensorFlow. From
the repository root:

    TF_USE_LEGACY_KERAS=1 /work/tfenv/bin/python -m tools.matterport_reference.keras_timing \
        --port /work/refsrc --h5 model.h5 --config-json '{"BACKBONE": "resnet101", ...}' \
        --image image.npy [--repeats 3] [--threads 2]

Prints one JSON line last: {"ms_per_image": median, "runs_ms": [...], "detections": N,
"rois": [[y1, x1, y2, x2], ...], "class_ids": [...], "scores": [...]}. TensorFlow runs with its
defaults (oneDNN on), i.e. as fast as it runs out of the box.

With ``--serve`` it prints "ready" after the warm-up, then times one ``detect`` for each "run"
line on stdin and answers {"ms": ..., "detections": N}, until stdin ends: the benchmark keeps
it alive and alternates it with our model run by run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from tools.matterport_reference.port import import_port


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tools.matterport_reference.keras_timing",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--port", type=Path, required=True, help="checkout of Ben-Sicat/mrcnn_tf2")
    parser.add_argument("--h5", type=Path, required=True)
    parser.add_argument("--config-json", required=True, help="Config overrides as a JSON object")
    parser.add_argument("--image", type=Path, required=True, help="uint8 [H, W, 3] .npy")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=0, help="intra-op threads (0: TensorFlow's default)"
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="bf16: TensorFlow's oneDNN auto-mixed-precision graph rewrite (its bf16 mode on CPU)",
    )
    parser.add_argument(
        "--serve", action="store_true", help='time one detect per "run" line on stdin'
    )
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        raise SystemExit("error: run with TF_USE_LEGACY_KERAS=1 (the port needs tf_keras, Keras 2)")
    with tempfile.TemporaryDirectory() as tmp:
        import_port(args.port, Path(tmp))
        import tensorflow as tf

        from mrcnn import model as modellib
        from mrcnn.config import Config

        if args.precision == "bf16":
            # Grappler rewrites the graph's float32 ops to bfloat16 where oneDNN has kernels for
            # them: TensorFlow's own way to run a float32 model in bf16 on a CPU.
            tf.config.optimizer.set_experimental_options(
                {"auto_mixed_precision_onednn_bfloat16": True}
            )
        if args.threads:
            tf.config.threading.set_intra_op_parallelism_threads(args.threads)
            tf.config.threading.set_inter_op_parallelism_threads(args.threads)
        overrides = dict(json.loads(args.config_json), GPU_COUNT=1, IMAGES_PER_GPU=1)
        overrides.setdefault("NAME", "timing")
        config = type("TimingConfig", (Config,), overrides)()
        model = modellib.MaskRCNN(
            mode="inference", config=config, model_dir=str(Path(tmp) / "logs")
        )
        model.keras_model.load_weights(str(args.h5), by_name=True)
        image = np.load(args.image)
        result = model.detect([image])[0]  # warm-up: graph tracing
        if args.serve:
            serve(model, image)
            return
        runs = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            result = model.detect([image])[0]
            runs.append((time.perf_counter() - start) * 1000)
    print(
        json.dumps(
            {
                "ms_per_image": statistics.median(runs),
                "runs_ms": runs,
                "detections": int(len(result["scores"])),
                "rois": result["rois"].tolist(),
                "class_ids": result["class_ids"].tolist(),
                "scores": [float(s) for s in result["scores"]],
            }
        )
    )


def serve(model, image: np.ndarray) -> None:
    """Answer each "run" line on stdin with one timed detect, as a JSON line."""
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "run":
            break
        start = time.perf_counter()
        result = model.detect([image])[0]
        ms = (time.perf_counter() - start) * 1000
        print(json.dumps({"ms": ms, "detections": int(len(result["scores"]))}), flush=True)


if __name__ == "__main__":
    main()

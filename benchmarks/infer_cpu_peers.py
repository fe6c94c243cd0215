"""CPU inference, end to end: our backends against the runtimes users deploy our export with.

Two models, as issue 34 sets them: R-50 FPN in torchvision's layout on an 800 x 1066 photo-like
image (random weights, TorchvisionCocoConfig, every detection kept: score threshold 0, so the
mask head and the pasting run on 100 instances), and Matterport's R-101 at 1024 x 1024 (the
seeded random-weight reference of the equivalence tests, loaded from its .h5).

Contenders, all in this one process, timed in turns (the order rotates each round) after a
warm-up, --repeats rounds; each figure is ms per image, end to end (image in, pasted masks out):

- ``mrcnn torch``: ``MaskRCNN.detect`` (the default backend);
- ``mrcnn openvino``: ``--backend openvino`` (:class:`mrcnn.deploy.openvino_backend.
  OpenVinoMaskRCNN`; its one-time export and conversion are timed separately);
- ``ONNX Runtime``: our ONNX export in ONNX Runtime (``mrcnn detect --onnx``), fp32 only;
- ``OpenVINO graph``: the same compiled OpenVINO graph alone (no molding, no pasting), at
  OpenVINO's own latency settings: the floor any OpenVINO user pays.
- ``Keras (Matterport)``, R-101 only, when a TensorFlow side environment is given
  (--keras-python and --port, as for benchmarks/infer_matterport.py): Matterport's own Keras
  code on the same .h5 and image, in a worker process (its figure also holds the worker's
  one-line reply, well under a millisecond); its bf16 is TensorFlow's oneDNN mixed precision.

Graph-only figures are printed for ONNX Runtime too. --precision bf16 runs each backend as
mrcnn runs it when asked for bf16: where the CPU has no native bf16 (AVX512_BF16 or AMX), both
backends keep fp32 and the bf16 rows are skipped with that reason. --precision int8 first makes
the int8 graph as ``mrcnn export --int8`` does (:func:`mrcnn.deploy.int8.make_int8_graph`,
calibrated on generated scenes of the image's size: random weights, so only the time means
something; accuracy: benchmarks/int8_demo.py) and times it against both fp32 backends, and
against ``mrcnn torch`` in bf16 where the CPU has native bf16. The
CPU's ISA flags, the releases and the thread count head the report.

    .venv/bin/python -m benchmarks.infer_cpu_peers [--models r50,r101] [--repeats 3] \
        [--precision fp32 --precision bf16 --precision int8] [--threads 2] \
        [--keras-python /work/tfenv/bin/python --port /work/refsrc]
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from benchmarks._common import isa_line
from benchmarks.infer_matterport import (
    KerasWorker,
    add_keras_arguments,
    benchmark_image,
    load_ours,
    reference_model,
)
from benchmarks.infer_onnx import agreement, our_model
from mrcnn.datasets import ShapesDataset
from mrcnn.deploy.export import export_onnx
from mrcnn.deploy.int8 import make_int8_graph
from mrcnn.deploy.openvino_backend import OpenVinoMaskRCNN, cpu_capabilities
from mrcnn.deploy.runtime import OnnxMaskRCNN, graph_feed, inference_plan
from mrcnn.modeling.precision import cpu_has_native_bf16
from mrcnn.testing import photo_like_image, randomised_torchvision_maskrcnn


def machine_line(threads: int) -> str:
    import onnxruntime
    import openvino

    return (
        f"{isa_line()}; OpenVINO CPU capabilities: {', '.join(cpu_capabilities())}; torch "
        f"{torch.__version__}, OpenVINO {openvino.__version__}, ONNX Runtime "
        f"{onnxruntime.__version__}; {threads} threads"
    )


def r50(folder: Path):
    """(our model, image, name, None) of the R-50 setup."""
    weights = folder / "r50.pth"
    torch.save(randomised_torchvision_maskrcnn().state_dict(), weights)
    return our_model(weights), photo_like_image(800, 1066), "R-50 FPN, 800x1066", None


def r101(folder: Path, threads: int):
    """(our model, image, name, (.h5, Config overrides) for Keras) of the Matterport R-101
    setup."""
    h5, overrides = reference_model(folder)
    model = load_ours(h5, overrides, threads, "fp32", str(folder / "logs"))
    image, _ = benchmark_image()
    return model, image, "Matterport R-101, 1024x1024", (h5, overrides)


def keras_contender(args, reference, image, precision: str, folder: Path) -> dict:
    """{"Keras (Matterport)": (call, None)}: Matterport's own Keras code (the TF2 port) on the
    same .h5 and image, in a worker process of the TensorFlow side environment that times its
    own ``detect`` (``benchmarks.infer_matterport.KerasWorker``); {} without one (said)."""
    if reference is None:
        return {}
    if not (args.keras_python and args.port):
        print(
            "  Keras: not run (give --keras-python and --port, or MRCNN_KERAS_PYTHON and "
            "MRCNN_MATTERPORT_PORT: tools/matterport_reference/README.md)"
        )
        return {}
    image_path = folder / "keras_image.npy"
    np.save(image_path, image)
    h5, overrides = reference
    worker = KerasWorker(
        args.keras_python, args.port, h5, overrides, image_path, args.threads, precision
    )
    args.keras_workers.append(worker)
    return {"Keras (Matterport)": (worker.run, None)}


class GraphTimer:
    """Wraps a runtime's graph call and records its ms."""

    def __init__(self, run: Callable) -> None:
        self.run, self.ms = run, []

    def __call__(self, *args):
        start = time.perf_counter()
        out = self.run(*args)
        self.ms.append((time.perf_counter() - start) * 1000)
        return out


def contenders(model, image, precision: str, folder: Path, threads: int) -> dict:
    """name -> (call, graph timer or None); prints the one-time export costs."""
    model.config.INFERENCE_PRECISION = precision
    openvino = OpenVinoMaskRCNN(model, folder / "openvino", precision, say=lambda _: None)
    size = openvino.input_size(*image.shape[:2])
    start = time.perf_counter()
    graph = openvino.compiled_graph(size)
    seconds = time.perf_counter() - start
    print(f"  --backend openvino, first use: export + convert + compile {seconds:.0f} s")
    out: dict = {
        "mrcnn torch": (lambda: model.detect([image])[0], None),
        "mrcnn openvino": (lambda: openvino.detect([image])[0], None),
    }
    molded = _molded(openvino, image)
    ov_graph = GraphTimer(graph)
    out["OpenVINO graph"] = (lambda: ov_graph(molded), ov_graph)
    if precision == "fp32":
        onnx_file = folder / f"graph_{size[0]}x{size[1]}.onnx"
        if not onnx_file.exists():
            start = time.perf_counter()
            export_onnx(model, onnx_file, input_size=size)
            print(f"  ONNX export for ONNX Runtime: {time.perf_counter() - start:.0f} s")
        runtime = OnnxMaskRCNN(onnx_file, threads=threads)
        runtime._run_graph = ort_graph = GraphTimer(runtime._run_graph)
        out["ONNX Runtime"] = (lambda: runtime.detect([image])[0], ort_graph)
    return out


def int8_contenders(model, image, folder: Path, calibration: int) -> dict:
    """name -> (call, graph timer or None) of the int8 comparison: both fp32 backends (the
    baselines) and the int8 graph, end to end and alone; prints the one-time costs."""
    model.config.INFERENCE_PRECISION = "fp32"
    cache = folder / "openvino"
    fp32 = OpenVinoMaskRCNN(model, cache, "fp32", say=lambda _: None)
    size = fp32.input_size(*image.shape[:2])
    scenes = ShapesDataset()
    scenes.load_shapes(calibration + 2, image.shape[0], image.shape[1], seed=1)
    scenes.prepare()
    start = time.perf_counter()
    _, made = make_int8_graph(
        model, scenes, cache, size, holdout=2, say=lambda _: None, progress=False
    )
    print(
        f"  int8 graph made in {time.perf_counter() - start:.0f} s ({made.calibration_images} "
        f"scenes; {made.int8_layers} of {made.layers} layers in int8)"
    )
    int8 = OpenVinoMaskRCNN(model, cache, "int8", say=lambda _: None)
    int8_graph = GraphTimer(int8.compiled_graph(size))
    molded = _molded(int8, image)
    runs = {
        "mrcnn torch": (lambda: model.detect([image])[0], None),
        "mrcnn openvino": (lambda: fp32.detect([image])[0], None),
        "mrcnn openvino int8": (lambda: int8.detect([image])[0], None),
        "OpenVINO int8 graph": (lambda: int8_graph(molded), int8_graph),
    }
    if cpu_has_native_bf16():  # the bar: int8 at most 0.6 of our bf16 time
        runs["mrcnn torch bf16"] = (lambda: _detect_in(model, "bf16", image), None)
    return runs


def _detect_in(model, precision: str, image: np.ndarray) -> dict:
    """``model.detect([image])[0]`` with INFERENCE_PRECISION ``precision`` for this call."""
    kept, model.config.INFERENCE_PRECISION = model.config.INFERENCE_PRECISION, precision
    try:
        return model.detect([image])[0]
    finally:
        model.config.INFERENCE_PRECISION = kept


def _molded(openvino: OpenVinoMaskRCNN, image: np.ndarray) -> dict:
    """The graph's inputs for ``image``, molded as the backend molds it."""
    return graph_feed(image, openvino.config, inference_plan(*image.shape[:2], openvino.config))


def time_turns(runs: dict, repeats: int) -> tuple[dict, dict]:
    """(name -> ms of each round, name -> last result), after one warm-up call each."""
    results = {name: call() for name, (call, _) in runs.items()}
    times: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for turn in range(repeats):
        for name in names[turn % len(names) :] + names[: turn % len(names)]:
            start = time.perf_counter()
            results[name] = runs[name][0]()
            times[name].append((time.perf_counter() - start) * 1000)
    return times, results


def report(times: dict, runs: dict, results: dict) -> None:
    peers = [statistics.median(times[name]) for name in times if not name.startswith("mrcnn")]
    fastest_peer = min(peers, default=math.nan)
    for name, values in times.items():
        graph = runs[name][1]
        extra = ""
        if graph is not None and name != "OpenVINO graph":
            extra = f" (graph {statistics.median(graph.ms[-len(values) :]):.0f} ms)"
        print(
            f"  {name:19} median {statistics.median(values):7.0f} ms, fastest "
            f"{min(values):7.0f} ms{extra}; median / fastest peer "
            f"{statistics.median(values) / fastest_peer:.2f}"
        )
    if "mrcnn openvino int8" in times:
        int8 = statistics.median(times["mrcnn openvino int8"])
        for baseline in ("mrcnn torch", "mrcnn openvino", "mrcnn torch bf16"):
            if baseline in times:
                ratio = int8 / statistics.median(times[baseline])
                suffix = "" if baseline.endswith("bf16") else " fp32"
                print(f"  int8 / {baseline}{suffix}: {ratio:.2f}")
    elif "mrcnn openvino" in results:
        ours = results["mrcnn torch"]
        print(f"  detections: {agreement(ours, results['mrcnn openvino'], 'OpenVINO')}")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.infer_cpu_peers", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--models", default="r50,r101", help="r50, r101 or both (default)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--precision", action="append", choices=("fp32", "bf16", "int8"))
    parser.add_argument(
        "--calibration", type=int, default=8, help="scenes the int8 graph is calibrated on"
    )
    add_keras_arguments(parser)  # Matterport's Keras code joins the R-101 when given
    args = parser.parse_args()
    args.keras_workers = []
    torch.set_num_threads(args.threads)
    precisions = args.precision or ["fp32", "bf16"]
    print(machine_line(args.threads))
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for which in args.models.split(","):
            setup = r50(folder) if which == "r50" else r101(folder, args.threads)
            model, image, name, reference = setup
            for precision in precisions:
                print(f"{name}, {precision}, {args.repeats} rounds:")
                if precision == "bf16" and not cpu_has_native_bf16():
                    print(
                        "  skipped: no native bf16 on this CPU (no AVX512_BF16, no AMX); "
                        "--precision bf16 runs fp32 in both backends here"
                    )
                    continue
                if precision == "int8":
                    try:
                        runs = int8_contenders(model, image, folder, args.calibration)
                    except ValueError as error:  # the calibration check refused the graph
                        print(f"  skipped: {error}")
                        continue
                else:
                    runs = contenders(model, image, precision, folder, args.threads)
                    runs |= keras_contender(args, reference, image, precision, folder)
                try:
                    times, results = time_turns(runs, args.repeats)
                finally:
                    while args.keras_workers:
                        args.keras_workers.pop().close()
                report(times, runs, results)


if __name__ == "__main__":
    main()

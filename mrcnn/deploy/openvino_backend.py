"""Run the inference network in OpenVINO (``--backend openvino``): export once, cache, reuse.

:class:`OpenVinoMaskRCNN` wraps a loaded :class:`mrcnn.model.MaskRCNN` and offers its
``detect``. For each network input size it meets (the molded size of an image under the config's
current IMAGE_RESIZE_MODE, so a video's tight input and a photo folder's square one both work),
it exports the network as ``mrcnn export`` does, converts the ONNX graph to OpenVINO's IR and
keeps it in a cache folder, keyed by:

- a digest of the weights (every tensor of the network's state, so weights loaded or changed in
  memory count, not only the file's name),
- the config values the graph depends on (everything but the molding and device keys, so the
  score threshold, NMS and class count are in it),
- the input size, the precision, and the OpenVINO and torch releases (the exporter and the
  converter change graphs between releases).

A later run with the same key compiles the cached IR (about a second) instead of exporting again
(tens of seconds); changed weights or settings give another key, so a stale graph is never used.
Molding, unmolding and pasting are :mod:`mrcnn.deploy.runtime`'s, as for ``--onnx``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from mrcnn.deploy.export import check_onnx_dependencies, export_onnx
from mrcnn.deploy.runtime import (
    GraphDetections,
    dense_result,
    detect_each,
    detect_result,
    graph_detections,
    inference_plan,
)
from mrcnn.structures.masks import BoxMasks

INSTALL_HINT = "pip install openvino onnx onnxscript (or pip install 'mrcnn[openvino]')"
#: OpenVINO's CPU inference precision for each INFERENCE_PRECISION it runs.
OPENVINO_PRECISIONS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
#: The CPU capability (OPTIMIZATION_CAPABILITIES) each precision needs; fp32 needs none.
NEEDED_CAPABILITY = {"bf16": "BF16", "fp16": "FP16"}
#: Config keys that change how images are molded or where the model runs, not the graph.
NOT_IN_GRAPH = frozenset(
    {
        *("IMAGE_RESIZE_MODE", "IMAGE_MIN_DIM", "IMAGE_MAX_DIM", "IMAGE_MIN_SCALE"),
        *("IMAGE_SHAPE", "IMAGES_PER_GPU", "GPU_COUNT", "BATCH_SIZE", "DEVICE"),
        *("INFERENCE_PRECISION", "CPU_THREADS", "NAME"),
    }
)
#: Version of the cache's layout and key.
CACHE_FORMAT = 1


def openvino_module():
    """The ``openvino`` package, or a one-line RuntimeError saying how to install it."""
    try:
        import openvino
    except ImportError as error:
        raise RuntimeError(f"--backend openvino needs OpenVINO: {INSTALL_HINT}") from error
    return openvino


@lru_cache(maxsize=1)
def openvino_core():
    """The process's one ``openvino.Core`` (OpenVINO advises one per application: each loads
    its device plugins, and their threads live as long as the process)."""
    return openvino_module().Core()


def cpu_capabilities() -> list[str]:
    """OpenVINO's OPTIMIZATION_CAPABILITIES of this CPU (e.g. FP32, INT8, BF16)."""
    core = openvino_core()
    return [str(c) for c in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")]


def runnable_precision(precision: str, say: Callable[[str], None]) -> str:
    """The precision OpenVINO runs for INFERENCE_PRECISION ``precision`` on this CPU: itself
    where the CPU has it, else fp32 with a note (as the PyTorch path falls back)."""
    if precision not in OPENVINO_PRECISIONS:
        raise ValueError(
            f"INFERENCE_PRECISION={precision!r}: OpenVINO runs one of "
            f"{', '.join(OPENVINO_PRECISIONS)}"
        )
    needed = NEEDED_CAPABILITY.get(precision)
    capabilities = cpu_capabilities() if needed else []
    if needed and needed not in capabilities:
        say(
            f"note: OpenVINO has no {precision} on this CPU (it offers "
            f"{', '.join(capabilities)}): running fp32"
        )
        return "fp32"
    return precision


def weights_digest(net: torch.nn.Module) -> str:
    """A digest of every tensor in ``net``'s state (names, dtypes, shapes, bytes)."""
    digest = hashlib.sha256()
    for name, tensor in net.state_dict().items():
        value = tensor.detach().to("cpu").contiguous()
        digest.update(f"{name}:{value.dtype}:{tuple(value.shape)};".encode())
        if value.dtype == torch.bfloat16:
            value = value.view(torch.int16)
        # flat first: numpy cannot view a 0-d array (BatchNorm's num_batches_tracked) as bytes
        digest.update(value.reshape(-1).numpy().view(np.uint8).data)
    return digest.hexdigest()


def graph_settings(config) -> dict:
    """The config values the exported graph depends on, as JSON-ready values."""
    values = config.to_dict() if hasattr(config, "to_dict") else dict(vars(config))
    return {key: value for key, value in sorted(values.items()) if key not in NOT_IN_GRAPH}


def graph_key(digest: str, config, input_size: tuple[int, int], precision: str) -> str:
    """The cache key of one compiled graph (see the module's docstring)."""
    parts = {
        "format": CACHE_FORMAT,
        "weights": digest,
        "config": graph_settings(config),
        "input_size": list(input_size),
        "precision": precision,
        "openvino": openvino_module().__version__,
        "torch": torch.__version__,
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def default_cache_dir(weights: str | Path | None) -> Path:
    """Where the graphs of ``weights`` are cached: ``<weights>.openvino/`` beside a weights
    file in a folder this user can write, else ``~/.cache/mrcnn/openvino``."""
    path = Path(str(weights)) if weights else None
    if path is not None and path.is_file() and _writable(path.parent):
        return path.parent / f"{path.name}.openvino"
    return Path.home() / ".cache" / "mrcnn" / "openvino"


def _writable(folder: Path) -> bool:
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


class OpenVinoMaskRCNN:
    """``MaskRCNN.detect`` run by OpenVINO on the CPU, graphs exported and cached on demand.

    Args:
        model: a loaded :class:`mrcnn.model.MaskRCNN` (float32 on the CPU); its config is
            shared, so a threshold the caller changes reaches the next graph (a new key).
        cache_dir: folder of the cached graphs (see :func:`default_cache_dir`).
        precision: "fp32", "bf16" or "fp16"; fp32 where the CPU lacks the one asked for
            (:func:`runnable_precision`, which says so).
        threads: OpenVINO's inference threads (default: its own choice, one per core).
        say: where the one-line notes go (exporting, cache hits); default stderr.

    Attributes:
        config: ``model.config``; ``checkpoint_extras``: the model's.
        exports: how many graphs this object exported (0 when every one came from the cache).

    The weights are digested once, when the first graph is needed: after changing them in
    memory (more training, another checkpoint), make a new object.
    """

    def __init__(
        self,
        model,
        cache_dir: str | Path,
        precision: str = "fp32",
        threads: int | None = None,
        say: Callable[[str], None] = _say,
    ) -> None:
        precision = runnable_precision(precision, say)
        self.model, self.config = model, model.config
        self.checkpoint_extras = getattr(model, "checkpoint_extras", None) or {}
        self.cache_dir, self.precision, self.threads = Path(cache_dir), precision, threads
        self.say, self.exports = say, 0
        self._core = openvino_core()
        self._digest: str | None = None
        self._graphs: dict[str, Callable] = {}

    def detect(
        self, images: Sequence[np.ndarray], verbose: int = 0, *, mask_format: str = "dense"
    ) -> list[dict]:
        """As :meth:`mrcnn.model.MaskRCNN.detect` (same dicts, same ``mask_format``s)."""
        if mask_format not in ("dense", "boxes"):
            raise ValueError(f"mask_format={mask_format!r}: use 'dense' or 'boxes'")
        as_result = dense_result if mask_format == "dense" else _boxes
        return detect_each(images, lambda image: as_result(self._detect_one(image)), verbose)

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """(H, W) network input of an image of ``height`` x ``width`` under the config now."""
        return inference_plan(height, width, self.config).output_shape

    def _detect_one(self, image: np.ndarray) -> GraphDetections:
        plan = inference_plan(image.shape[0], image.shape[1], self.config)
        graph = self.compiled_graph(plan.output_shape)  # made for this plan's exact input
        return graph_detections(graph, image, self.config, plan)

    def compiled_graph(self, size: tuple[int, int]) -> Callable:
        """The compiled graph for inputs of ``size``: from memory, the cache, or a new export."""
        if self._digest is None:
            self._digest = weights_digest(self.model.net)
        key = graph_key(self._digest, self.config, size, self.precision)
        if key not in self._graphs:
            folder = self.cache_dir / key
            if not (folder / "model.xml").is_file():
                self._export(size, folder)
            self._graphs[key] = self._compile(folder / "model.xml")
        return self._graphs[key]

    def _export(self, size: tuple[int, int], folder: Path) -> None:
        """Export the network for ``size`` and save it as IR in ``folder`` (all or nothing:
        written in a temporary folder beside it, then renamed)."""
        self.say(
            f"OpenVINO: exporting the network for {size[1]}x{size[0]} inputs (once; cached in "
            f"{folder.parent})"
        )
        ov = openvino_module()
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=self.cache_dir))
        try:
            onnx_file = export_onnx(self.model, work / "graph.onnx", input_size=size)
            converted = self._core.read_model(str(onnx_file))  # convert_model: 2x slower
            ov.save_model(converted, str(work / "model.xml"), compress_to_fp16=False)
            onnx_file.unlink()
            made_from = {"input_size": list(size), "precision": self.precision}
            made_from["config"] = graph_settings(self.config)
            (work / "made_from.json").write_text(json.dumps(made_from, indent=1, default=str))
            work.chmod(0o777 & ~_umask())
            try:
                work.rename(folder)
            except OSError:  # another process cached the same graph meanwhile: use theirs
                if not (folder / "model.xml").is_file():
                    raise
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self.exports += 1

    def _compile(self, xml: Path) -> Callable:
        properties = {
            "INFERENCE_PRECISION_HINT": OPENVINO_PRECISIONS[self.precision],
            "PERFORMANCE_HINT": "LATENCY",
        }
        if self.threads:
            properties["INFERENCE_NUM_THREADS"] = int(self.threads)
        compiled = self._core.compile_model(str(xml), "CPU", properties)
        request, outputs = compiled.create_infer_request(), compiled.outputs

        def run(image: np.ndarray, window: np.ndarray) -> list[np.ndarray]:
            answer = request.infer({"image": image, "window": window})
            return [np.asarray(answer[output]) for output in outputs]

        return run


def _boxes(found: GraphDetections) -> dict:
    """``detect``'s dict with ``mask_format="boxes"``: the masks as a BoxMasks."""
    soft = torch.from_numpy(np.ascontiguousarray(found.masks))
    boxes = torch.from_numpy(np.ascontiguousarray(found.boxes))
    return detect_result(found, BoxMasks(shape=found.shape, soft=soft, boxes=boxes))


def _umask() -> int:
    """This process's umask (read by setting it and putting it back)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ------------------------------------------------------------------------------------------------
# Choosing the backend (--backend torch|openvino|auto)
# ------------------------------------------------------------------------------------------------
#: The values of --backend.
BACKENDS = ("torch", "openvino", "auto")


def auto_backend(device: str, precision: str, flavour: str | None = None) -> tuple[str, str]:
    """(backend, why) that ``--backend auto`` runs on this machine.

    OpenVINO wherever it can run the model: it is installed, the model runs on the CPU and can
    be exported (``flavour`` names a network flavour that cannot, Matterport's), and OpenVINO
    has the precision on this CPU. It was the faster on both CPUs measured: the issue's AMX
    Xeon (fp32 and bf16) and the AVX2-only AMD EPYC this project is built on (about 0.9x
    PyTorch's time in fp32; benchmarks/RESULTS.md). Elsewhere PyTorch.
    """
    if flavour is not None:
        return "torch", f"NETWORK_FLAVOUR={flavour!r} cannot be exported yet"
    if str(device).split(":")[0] != "cpu":
        return "torch", f"the model runs on {device}"
    try:
        openvino_module()
        check_onnx_dependencies()
    except RuntimeError:
        return "torch", f"OpenVINO is not installed ({INSTALL_HINT})"
    needed = NEEDED_CAPABILITY.get(precision)
    if needed and needed not in cpu_capabilities():
        return "torch", f"OpenVINO has no {precision} on this CPU"
    return "openvino", "OpenVINO is installed and runs this model on this CPU"


def with_backend(
    model,
    backend: str,
    weights: str | Path | None = None,
    cache_dir: str | Path | None = None,
    say: Callable[[str], None] = _say,
):
    """``model`` itself for "torch", an :class:`OpenVinoMaskRCNN` around it for "openvino",
    and what :func:`auto_backend` picks for "auto" (saying which, and why, in one line).

    Raises:
        ValueError: an unknown backend, or OpenVINO asked for a model not on the CPU.
        RuntimeError: OpenVINO (or the ONNX exporter) asked for and not installed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: use one of {', '.join(BACKENDS)}")
    device = str(getattr(model, "device", "cpu"))
    precision = str(getattr(model.config, "INFERENCE_PRECISION", "fp32"))
    flavour = getattr(getattr(model, "net", None), "flavour", None)
    unexportable = flavour.name if flavour is not None and not flavour.exportable else None
    if backend == "auto":
        backend, why = auto_backend(device, precision, unexportable)
        say(f"backend: {backend} ({why})")
    if backend == "torch":
        return model
    if device.split(":")[0] != "cpu":
        raise ValueError(f"--backend openvino runs on the CPU, not {device}: drop --device")
    if unexportable:
        raise ValueError(
            f"--backend openvino: NETWORK_FLAVOUR={unexportable!r} cannot be exported yet (its "
            "proposal, ROIAlign and detection stages are not in the export graph); use "
            "--backend torch"
        )
    openvino_module()
    check_onnx_dependencies()
    folder = Path(cache_dir) if cache_dir else default_cache_dir(weights)
    return OpenVinoMaskRCNN(model, folder, precision, say=say)

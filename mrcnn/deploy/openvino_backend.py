"""Run the inference network in OpenVINO (``--backend openvino``): export once, cache, reuse.

:class:`OpenVinoMaskRCNN` wraps a loaded :class:`mrcnn.model.MaskRCNN` and offers its
``detect``. For each network input size it meets (the molded size of an image under the config's
current IMAGE_RESIZE_MODE, so a video's tight input and a photo folder's square one both work),
it exports the network as ``mrcnn export`` does, converts the ONNX graph to OpenVINO's IR and
keeps it in a cache folder, keyed by:

- a digest of the weights (every tensor of the network's state, so weights loaded or changed in
  memory count, not only the file's name),
- the config values the graph depends on (everything but the molding and device keys, so NMS
  and the class count are in it; the score threshold is not: it is the graph's "min_score"
  input, so the video modes and the page can move it without another graph),
- the input size, the precision, and the OpenVINO and torch releases (the exporter and the
  converter change graphs between releases).

A later run with the same key compiles the cached IR (about a second) instead of exporting again
(tens of seconds); changed weights or settings give another key, so a stale graph is never used.
Molding, unmolding and pasting are :mod:`mrcnn.deploy.runtime`'s, as for ``--onnx``.

int8 graphs are not made on demand: they need the user's images to calibrate and an accuracy
check (:mod:`mrcnn.deploy.int8`, ``mrcnn export --int8``), which stores them in the same cache
under the precision "int8"; this module finds them there.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from mrcnn.deploy.export import check_onnx_dependencies, export_onnx
from mrcnn.deploy.runtime import (
    GraphDetections,
    Molding,
    dense_result,
    detect_each,
    detect_result,
    graph_detections,
    inference_plan,
    molding_for,
    plan_for_input,
)
from mrcnn.outputs import OutputWriteError, atomic_output, write_failure
from mrcnn.structures.masks import BoxMasks

INSTALL_HINT = "pip install openvino onnx onnxscript (or pip install 'mrcnn[openvino]')"
#: OpenVINO's CPU inference precision for each precision it runs. An int8 graph carries its
#: own int8 layers; what the quantizer left in floating point (NMS, ROIAlign) runs in f32.
OPENVINO_PRECISIONS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": "f32"}
#: The CPU capability (OPTIMIZATION_CAPABILITIES) each precision needs; fp32 needs none.
NEEDED_CAPABILITY = {"bf16": "BF16", "fp16": "FP16", "int8": "INT8"}
#: Config keys that change how images are molded or where the model runs, not the graph; and the
#: score threshold, which is the graph's "min_score" input (fed on each run).
NOT_IN_GRAPH = frozenset(
    {
        *("IMAGE_RESIZE_MODE", "IMAGE_MIN_DIM", "IMAGE_MAX_DIM", "IMAGE_MIN_SCALE"),
        *("IMAGE_SHAPE", "IMAGES_PER_GPU", "GPU_COUNT", "BATCH_SIZE", "DEVICE"),
        *("INFERENCE_PRECISION", "CPU_THREADS", "NAME", "DETECTION_MIN_CONFIDENCE"),
        "CPU_KEEP_FREED_MEMORY",
    }
)
#: Version of the cache's layout, key and exported graph: raised when the export changes, so
#: that graphs an older exporter cached are made again (2: the pyramid ROIAlign's reorder is a
#: Gather, which int8 graphs need; 3: the score threshold is an input).
CACHE_FORMAT = 3


class MissingInt8Graph(ValueError):
    """No int8 graph of these weights and settings is cached for the input size needed."""


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
            shared, so a threshold the caller changes reaches the next run (the graph's
            "min_score" input; other graph settings give a new key).
        cache_dir: folder of the cached graphs (see :func:`default_cache_dir`).
        precision: "fp32", "bf16", "fp16" or "int8"; fp32 where the CPU lacks the one asked
            for (:func:`runnable_precision`, which says so). int8 runs the graphs
            ``mrcnn export --int8`` cached (:mod:`mrcnn.deploy.int8`); an image whose input
            size has none runs in the smallest cached int8 graph it fits (padded), else
            :class:`MissingInt8Graph` says how to make one.
        threads: OpenVINO's inference threads (default: its own choice, one per core).
        say: where the one-line notes go (exporting, cache hits); default stderr.
        input_size: (H, W): every image goes into this one network input (padded, or scaled
            down to fit with a warning), as ``--onnx`` runs a graph; default: each image's
            molded size under the config.

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
        input_size: tuple[int, int] | None = None,
    ) -> None:
        precision = runnable_precision(precision, say)
        self.model, self.config = model, model.config
        self.checkpoint_extras = getattr(model, "checkpoint_extras", None) or {}
        self.cache_dir, self.precision, self.threads = Path(cache_dir), precision, threads
        self.say, self.exports = say, 0
        self.fixed_size = tuple(int(side) for side in input_size) if input_size else None
        self._core = openvino_core()
        self._digest: str | None = None
        self._graphs: dict[str, Callable] = {}
        self._int8_sizes: dict[str, tuple[int, int]] = {}

    def detect(
        self, images: Sequence[np.ndarray], verbose: int = 0, *, mask_format: str = "dense"
    ) -> list[dict]:
        """As :meth:`mrcnn.model.MaskRCNN.detect` (same dicts, same ``mask_format``s)."""
        if mask_format not in ("dense", "boxes"):
            raise ValueError(f"mask_format={mask_format!r}: use 'dense' or 'boxes'")
        molding = molding_for(self.config)
        if mask_format == "boxes":
            molding = molding.for_box_masks()
        as_result = dense_result if mask_format == "dense" else _boxes
        return detect_each(
            images, lambda image: as_result(self._detect_one(image, molding)), verbose
        )

    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """(H, W) network input of an image of ``height`` x ``width`` under the config now."""
        return inference_plan(height, width, self.config).output_shape

    def _detect_one(self, image: np.ndarray, molding: Molding) -> GraphDetections:
        height, width = image.shape[:2]
        size = self.fixed_size or self.input_size(height, width)
        if self.precision == "int8":
            size = self.int8_size(size)
        plan, fitted = plan_for_input(height, width, self.config, size)
        if fitted:
            warnings.warn(
                f"image {width}x{height} molds to more than the graph's input "
                f"{size[1]}x{size[0]}: scaled down to fit",
                stacklevel=4,
            )
        return graph_detections(self.compiled_graph(size), image, self.config, plan, molding)

    def key(self, size: tuple[int, int]) -> str:
        """The cache key of this model's graph for inputs of ``size`` (H, W)."""
        if self._digest is None:
            self._digest = weights_digest(self.model.net)
        return graph_key(self._digest, self.config, size, self.precision)

    def compiled_graph(self, size: tuple[int, int]) -> Callable:
        """The compiled graph for inputs of ``size``: from memory, the cache, or a new export."""
        key = self.key(size)
        if key not in self._graphs:
            self._graphs[key] = self._compile(self.graph_folder(size) / "model.xml")
        return self._graphs[key]

    def graph_folder(self, size: tuple[int, int]) -> Path:
        """The cache folder holding this model's graph for ``size`` (model.xml, model.bin,
        made_from.json), exported now when missing.

        Raises:
            MissingInt8Graph: int8 and none cached (int8 graphs are made by
                ``mrcnn export --int8``, never on demand).
        """
        folder = self.cache_dir / self.key(size)
        if not (folder / "model.xml").is_file():
            if self.precision == "int8":
                raise MissingInt8Graph(
                    f"no int8 graph of these weights and settings for {size[1]}x{size[0]} "
                    f"inputs in {self.cache_dir}: make one with `mrcnn export OUT.xml --weights "
                    f"W --int8 --calibrate SPEC --input-size {size[0]}x{size[1]}` (with the same "
                    "--config/--set: every graph setting but the score threshold is in its key)"
                )
            self._export(size, folder)
        return folder

    def int8_size(self, size: tuple[int, int]) -> tuple[int, int]:
        """``size`` when its int8 graph is cached, else the smallest cached int8 graph's input
        (of these weights and settings) that holds it, else ``size`` itself. Looked up once
        per size and settings: a video asks for every frame."""
        wanted = self.key(size)
        if wanted not in self._int8_sizes:
            self._int8_sizes[wanted] = self._cached_int8_size(size)
        return self._int8_sizes[wanted]

    def _cached_int8_size(self, size: tuple[int, int]) -> tuple[int, int]:
        if (self.cache_dir / self.key(size) / "model.xml").is_file():
            return size
        holding = []
        for made_from in self.cache_dir.glob("*/made_from.json"):
            try:
                stored = json.loads(made_from.read_text())
                other = (int(stored["input_size"][0]), int(stored["input_size"][1]))
            except (OSError, ValueError, KeyError, TypeError, IndexError):
                continue  # another version's entry, or one half written: not ours to use
            ours = made_from.parent.name == self.key(other)  # same weights, settings, int8
            if ours and other[0] >= size[0] and other[1] >= size[1]:
                holding.append(other)
        return min(holding, key=lambda other: other[0] * other[1], default=size)

    def _export(self, size: tuple[int, int], folder: Path) -> None:
        """Export the network for ``size`` and save it as IR in ``folder`` (all or nothing:
        written in a temporary folder beside it, then renamed)."""
        self.say(
            f"OpenVINO: exporting the network for {size[1]}x{size[0]} inputs (once; cached in "
            f"{folder.parent})"
        )
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=self.cache_dir))
        try:
            onnx_file = export_onnx(self.model, work / "graph.onnx", input_size=size)
            converted = self._core.read_model(str(onnx_file))  # convert_model: 2x slower
            onnx_file.unlink()
            store_graph(converted, work, folder, self.made_from(size))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self.exports += 1

    def made_from(self, size: tuple[int, int]) -> dict:
        """What the cache entry of ``size`` records in made_from.json (read back by
        :meth:`int8_size`)."""
        return {
            "input_size": list(size),
            "precision": self.precision,
            "config": graph_settings(self.config),
        }

    def use_graph(self, size: tuple[int, int], graph) -> None:
        """Run the OpenVINO model ``graph`` (not cached) for inputs of ``size`` from now on:
        how :mod:`mrcnn.deploy.int8` measures a graph before storing it."""
        self._graphs[self.key(size)] = self._compile(graph)

    def _compile(self, xml) -> Callable:
        """The graph of ``xml`` (an IR file, or an OpenVINO model in memory), compiled."""
        properties = {
            "INFERENCE_PRECISION_HINT": OPENVINO_PRECISIONS[self.precision],
            "PERFORMANCE_HINT": "LATENCY",
        }
        if self.threads:
            properties["INFERENCE_NUM_THREADS"] = int(self.threads)
        source = str(xml) if isinstance(xml, Path) else xml
        compiled = self._core.compile_model(source, "CPU", properties)
        request, outputs = compiled.create_infer_request(), compiled.outputs

        def run(feed: dict[str, np.ndarray]) -> list[np.ndarray]:
            answer = request.infer(feed)
            return [np.asarray(answer[output]) for output in outputs]

        return run


def store_graph(model, work: Path, folder: Path, made_from: dict) -> None:
    """Save OpenVINO ``model`` as IR with ``made_from`` (JSON) in the empty folder ``work``,
    then rename ``work`` to the cache entry ``folder`` (all or nothing).

    Raises:
        OutputWriteError: the disk (or quota) is full (OpenVINO itself only says
            "basic_ios::clear: iostream error").
    """
    try:
        openvino_module().save_model(model, str(work / "model.xml"), compress_to_fp16=False)
        (work / "made_from.json").write_text(json.dumps(made_from, indent=1, default=str))
    except (OSError, RuntimeError) as error:
        # why a new probe file: OpenVINO deletes what it wrote when a write fails
        probe = work / ".probe"
        probe.touch()
        cause = write_failure(error, probe)
        if cause:
            raise OutputWriteError(f"cannot cache the graph in {folder.parent}: {cause}") from error
        raise
    work.chmod(0o777 & ~_umask())
    try:
        work.rename(folder)
    except OSError:  # another process cached the same graph meanwhile: use theirs
        if not (folder / "model.xml").is_file():
            raise


def copy_graph(folder: Path, out: Path) -> None:
    """Copy the cache entry ``folder``'s IR to ``out`` (``X.xml``) and ``X.bin`` beside it,
    each written whole (:func:`mrcnn.outputs.atomic_output`), the weights first."""
    for name, target in (("model.bin", out.with_suffix(".bin")), ("model.xml", out)):
        with atomic_output(target) as temporary:
            shutil.copyfile(folder / name, temporary)


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


def auto_backend(device: str, precision: str) -> tuple[str, str]:
    """(backend, why) that ``--backend auto`` runs on this machine.

    OpenVINO wherever it can run the model: it is installed, the model runs on the CPU, and
    OpenVINO has the precision on this CPU. It was the faster on the CPUs measured before
    PyTorch's path kept its freed memory: the issue's AMX Xeon (fp32 and bf16) and an AVX2-only
    AMD EPYC (about 0.9x PyTorch's time in fp32). Since, on an AVX-512 EPYC, the two are level
    on the R-50 (OpenVINO 1.00x PyTorch's time in fp32, 1.04x in bf16) and OpenVINO is faster
    on Matterport's R-101 (0.84x, 0.92x; benchmarks/RESULTS.md). Elsewhere PyTorch.
    """
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
    precision: str | None = None,
):
    """``model`` itself for "torch", an :class:`OpenVinoMaskRCNN` around it for "openvino",
    and what :func:`auto_backend` picks for "auto" (saying which, and why, in one line).

    ``precision`` is the backend's (default: the config's INFERENCE_PRECISION); "int8" runs
    the int8 graphs ``mrcnn export --int8`` made, in OpenVINO only.

    Raises:
        ValueError: an unknown backend, OpenVINO asked for a model not on the CPU, or int8
            where OpenVINO cannot run it.
        RuntimeError: OpenVINO (or the ONNX exporter) asked for and not installed.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend {backend!r}: use one of {', '.join(BACKENDS)}")
    device = str(getattr(model, "device", "cpu"))
    precision = precision or str(getattr(model.config, "INFERENCE_PRECISION", "fp32"))
    if backend == "auto":
        backend, why = auto_backend(device, precision)
        say(f"backend: {backend} ({why})")
    if backend == "torch":
        if precision == "int8":
            raise ValueError(
                "int8 runs in OpenVINO only (PyTorch has no int8 path here): use --backend "
                "openvino, after making the graph with `mrcnn export --int8 --calibrate SPEC`"
            )
        return model
    if device.split(":")[0] != "cpu":
        raise ValueError(f"--backend openvino runs on the CPU, not {device}: drop --device")
    openvino_module()
    check_onnx_dependencies()
    folder = Path(cache_dir) if cache_dir else default_cache_dir(weights)
    return OpenVinoMaskRCNN(model, folder, precision, say=say)

"""int8 graphs for ``--backend openvino``: post-training quantization on the user's own images.

``mrcnn export --int8 --calibrate SPEC`` runs :func:`make_int8_graph`:

1. The quantizer calibrates on one set of the user's images and the accuracy is checked on
   another: a separate set (the CLI takes the spec's "val" subset), or else a held-out part of
   the one set, split deterministically (``holdout``: a quarter by default). The check never
   sees an image the quantizer was tuned on.
2. The model's fp32 OpenVINO graph for the input size (from the backend's cache, exported when
   missing) has its constants folded and is quantized by NNCF on the calibration images, molded
   exactly as at inference. Folding first matters: the exported graph multiplies each frozen
   BatchNorm's scale into its convolution's weights at run time, and NNCF quantizes only
   constant weights, so without it the whole backbone stayed fp32 (measured: 0.78x fp32's
   time instead of 0.55x on R-50).
3. Mask AP of the fp32 and the int8 graph is measured on the held-out images, both at the same
   input size with the same molding and pasting, and reported (:class:`Int8Report`).
4. The int8 graph is stored in the weights' OpenVINO cache under the precision "int8", the
   report in its made_from.json; ``--backend openvino --precision int8`` runs it from there.

NNCF's PERFORMANCE preset is used (symmetric weights and activations). On the trained demo
model (50 validation scenes, 100 calibration scenes) it lost 0.000 mask mAP@0.5 and 0.009
mAP@[.5:.95]; MIXED (asymmetric activations) lost 0.007 and 0.015, and leaving the heads' last
layers in fp32 did not help either preset. NNCF is an optional dependency (the ``openvino``
extra).
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mrcnn.datasets import from_spec
from mrcnn.datasets.failures import call_loaders
from mrcnn.deploy.openvino_backend import (
    OpenVinoMaskRCNN,
    openvino_core,
    store_graph,
)
from mrcnn.deploy.runtime import graph_feed, plan_for_input
from mrcnn.evaluation import evaluate_dataset

NNCF_HINT = "pip install nncf (or pip install 'mrcnn[openvino]')"
#: Held-out share of the calibration dataset's images when none is given.
DEFAULT_HOLDOUT = 0.25
#: Most images the quantizer's statistics use (NNCF's own default).
MAX_CALIBRATION_IMAGES = 300
#: Largest losses (fp32 minus int8, mask AP on the held-out images) reported as "kept": the
#: accuracy bar of issue 34 (mAP@0.5 within 0.01, mAP@[.5:.95] within 0.02).
ACCEPTED_DROP = {"mAP@0.5": 0.01, "mAP@[.5:.95]": 0.02}


def nncf_module():
    """The ``nncf`` package, or a one-line RuntimeError saying how to install it."""
    try:
        with _no_cuda_line():
            import nncf
    except ImportError as error:
        raise RuntimeError(f"--int8 quantizes with NNCF: {NNCF_HINT}") from error
    return nncf


@contextmanager
def _no_cuda_line() -> Iterator[None]:
    """Silence torch's C++-extension logger, which NNCF loads and which logs "No CUDA runtime
    is found" on every CPU-only machine, and NNCF's INFO lines."""
    # NNCF's INFO lines list every operation it leaves unquantized; torch's line is a warning
    quieter = {"torch.utils.cpp_extension": logging.ERROR, "nncf": logging.WARNING}
    loggers = {logging.getLogger(name): level for name, level in quieter.items()}
    before = {logger: logger.level for logger in loggers}
    for logger, level in loggers.items():
        logger.setLevel(level)
    try:
        yield
    finally:
        for logger, level in before.items():
            logger.setLevel(level)


def parse_holdout(text: str | float) -> float | int:
    """``--holdout``: a share in (0, 1) ("0.25") or a count of images ("20")."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ValueError(
            f"--holdout {text!r}: give a share such as 0.25 or a count such as 20"
        ) from None
    if 0 < value < 1:
        return value
    if value >= 1 and value == int(value):
        return int(value)
    raise ValueError(f"--holdout {text!r}: give a share between 0 and 1, or a whole count >= 1")


def split_for_calibration(
    image_ids: Sequence[int], holdout: float | int, seed: int = 0
) -> tuple[list[int], list[int]]:
    """(calibration ids, held-out ids): a seeded shuffle of ``image_ids`` cut in two.

    ``holdout`` is a share (rounded, at least one image) or a count. Both parts must keep at
    least one image.
    """
    ids = [int(i) for i in image_ids]
    held = holdout if isinstance(holdout, int) else max(1, round(len(ids) * holdout))
    if held >= len(ids):
        raise ValueError(
            f"--holdout {holdout}: the calibration dataset has {len(ids)} images, so no image "
            "would be left to calibrate with; give a smaller --holdout or more images"
        )
    order = np.random.default_rng(seed).permutation(len(ids))
    shuffled = [ids[i] for i in order]
    return sorted(shuffled[held:]), sorted(shuffled[:held])


@dataclass(frozen=True)
class Int8Report:
    """How the int8 graph compares with the fp32 graph it was made from.

    Attributes:
        input_size: (H, W) of both graphs.
        calibration_images, held_out_images: how many images calibrated (loaded ones) and
            checked.
        fp32, int8: mask AP on the checked images: {"mAP@0.5": .., "mAP@[.5:.95]": ..}
            (Matterport's mean of per-image AP).
        seconds: time the quantization took (statistics and corrections).
        int8_layers, layers: how many of the graph's convolutions and fully connected layers
            OpenVINO runs in int8 on this CPU, of how many (:func:`int8_layer_count`).
    """

    input_size: tuple[int, int]
    calibration_images: int
    held_out_images: int
    fp32: dict[str, float]
    int8: dict[str, float]
    seconds: float
    int8_layers: int
    layers: int

    def drops(self) -> dict[str, float]:
        """fp32 minus int8 for each figure (positive: int8 lost accuracy)."""
        return {name: self.fp32[name] - self.int8[name] for name in self.fp32}

    def kept(self) -> bool:
        """Whether every drop is within :data:`ACCEPTED_DROP`."""
        return all(self.drops()[name] <= limit for name, limit in ACCEPTED_DROP.items())

    def lines(self) -> list[str]:
        """The report as a small table, one string per line."""
        rows = [
            f"int8 accuracy on {self.held_out_images} checked images "
            f"({self.calibration_images} calibrated, {self.input_size[1]}x{self.input_size[0]} "
            f"input, {self.int8_layers} of {self.layers} layers in int8; mask AP):",
            f"  {'':14}{'fp32':>8}{'int8':>8}{'drop':>8}{'limit':>8}",
        ]
        for name, drop in self.drops().items():
            rows.append(
                f"  {name:14}{self.fp32[name]:8.4f}{self.int8[name]:8.4f}{drop:8.4f}"
                f"{ACCEPTED_DROP[name]:8.2f}"
            )
        verdict = "kept" if self.kept() else "NOT kept: more calibration images may help"
        rows.append(f"  accuracy {verdict}")
        return rows

    def to_dict(self) -> dict:
        return {**asdict(self), "input_size": list(self.input_size), "drops": self.drops()}


def calibration_sets(spec: str, holdout: float | int | None) -> tuple[object, object | None]:
    """(images to calibrate on, images to check on or None) of a dataset spec.

    The spec's "train" subset calibrates. Without ``holdout`` its "val" subset is the check
    (when it has images); with ``holdout``, or when there is no "val", None: the check is then
    a held-out part of "train" (:func:`make_int8_graph`).
    """
    calibration = from_spec(spec, "train")
    if holdout is not None:
        return calibration, None
    try:
        check = from_spec(spec, "val")
    except (ValueError, OSError):
        return calibration, None  # no "val" subset in this layout
    return calibration, check if len(check.image_ids) else None


def make_int8_graph(
    model,
    dataset,
    cache_dir: str | Path,
    input_size: tuple[int, int],
    check=None,
    holdout: float | int = DEFAULT_HOLDOUT,
    say: Callable[[str], None] | None = None,
    progress: bool = True,
) -> tuple[Path, Int8Report]:
    """Quantize ``model``'s graph for ``input_size`` (H, W) on ``dataset`` and cache it.

    Args:
        model: a loaded :class:`mrcnn.model.MaskRCNN` on the CPU (either flavour).
        dataset: a prepared dataset of the user's images to calibrate on, classes as the
            model's.
        check: a prepared dataset (with masks) to measure accuracy on; None: a held-out part
            of ``dataset`` (which then needs masks too).
        cache_dir: the backend's cache (:func:`~mrcnn.deploy.openvino_backend.
            default_cache_dir` of the weights).
        holdout: held-out share or count (:func:`split_for_calibration`), without ``check``.
        say: where notes go (default stderr); progress: progress bars.
    Returns:
        (cache folder of the int8 graph, its :class:`Int8Report`).
    Raises:
        RuntimeError: NNCF or OpenVINO missing; ValueError: too few usable images.
    """
    say = say or _say
    nncf = nncf_module()
    if check is None:
        calibration, held_out = split_for_calibration(dataset.image_ids, holdout)
        check = dataset
    else:
        calibration, held_out = [int(i) for i in dataset.image_ids], list(check.image_ids)
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    fp32 = OpenVinoMaskRCNN(model, cache_dir, "fp32", say=say, input_size=input_size)
    int8 = OpenVinoMaskRCNN(model, cache_dir, "int8", say=say, input_size=input_size)
    source = fp32.graph_folder(input_size) / "model.xml"
    calibration = calibration_ids(fp32, dataset, calibration, input_size, say, progress)
    calibration = calibration[:MAX_CALIBRATION_IMAGES]
    say(f"int8: calibrating on {len(calibration)} images, checking on {len(held_out)}")
    started = time.perf_counter()
    inputs = CalibrationInputs(dataset, calibration, model.config, input_size)
    graph = quantize(nncf, source, inputs, len(calibration))
    seconds = time.perf_counter() - started
    fill_empty_levels(graph, say)
    check_calibrated(graph, len(calibration))
    int8.use_graph(input_size, graph)
    report = Int8Report(
        input_size=tuple(input_size),
        calibration_images=len(calibration),
        held_out_images=len(held_out),
        fp32=_mask_ap(fp32, check, held_out, progress),
        int8=_mask_ap(int8, check, held_out, progress),
        seconds=round(seconds, 1),
        **dict(zip(("int8_layers", "layers"), int8_layer_count(graph), strict=True)),
    )
    return store_int8(graph, int8, input_size, report), report


def store_int8(graph, int8: OpenVinoMaskRCNN, size: tuple[int, int], report: Int8Report) -> Path:
    """Cache the int8 ``graph`` under ``int8``'s key for ``size``, the report in its
    made_from.json (a remake replaces the earlier entry); return the entry's folder."""
    folder = int8.cache_dir / int8.key(size)
    work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=int8.cache_dir))
    try:
        if folder.exists():
            shutil.rmtree(folder)
        made_from = {**int8.made_from(size), "report": report.to_dict()}
        store_graph(graph, work, folder, made_from)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return folder


def quantize(nncf, fp32_xml: Path, inputs: CalibrationInputs, count: int):
    """The int8 OpenVINO model of ``fp32_xml``: constants folded (see the module text), then
    ``nncf.quantize`` over ``count`` inputs (:func:`graph_inputs` dicts) from ``inputs``."""
    from openvino import passes  # why here: OpenVINO is optional (the openvino extra)

    model = openvino_core().read_model(str(fp32_xml))
    folding = passes.Manager()
    folding.register_pass(passes.ConstantFolding())
    folding.run_passes(model)
    # why errstate: NNCF averages statistics it then leaves unused (the detection stages'
    # large sentinel values) and numpy warns of the overflow; no quantizer range is infinite.
    with np.errstate(over="ignore"), _no_cuda_line():
        return nncf.quantize(
            model,
            nncf.Dataset(inputs),
            subset_size=count,
            preset=nncf.QuantizationPreset.PERFORMANCE,
            # box arithmetic (areas for the pyramid level, deltas) stays exact: quantized, a
            # box near a level's boundary could change level; it costs no int8 layer
            ignored_scope=nncf.IgnoredScope(types=list(EXACT_OPERATIONS), validate=False),
        )


#: Operations left unquantized: in this graph they compute on box coordinates.
EXACT_OPERATIONS = ("Multiply", "Subtract", "Divide", "Sqrt")
#: Largest bound of a quantizer that saw no values: NNCF gives a range it could not measure
#: (or one of zeros only) the bounds [0, 8e-05]; real activations reach far beyond.
UNMEASURED_RANGE = 1e-3


def unmeasured_quantizers(graph) -> list[str]:
    """Names of ``graph``'s FakeQuantize nodes whose input range was never measured (every
    calibration image gave the tensor no values, e.g. the mask head when nothing is detected)."""
    unmeasured = []
    for node in graph.get_ordered_ops():
        if node.get_type_name() != "FakeQuantize":
            continue
        low, high = (node.input(i).get_source_output().get_node() for i in (1, 2))
        if low.get_type_name() != "Constant" or high.get_type_name() != "Constant":
            continue  # a weight quantizer's range is folded into the weights' constants
        bound = max(float(np.abs(low.get_data()).max()), float(np.abs(high.get_data()).max()))
        if bound < UNMEASURED_RANGE:
            unmeasured.append(node.get_friendly_name())
    return unmeasured


def fill_empty_levels(graph, say: Callable[[str], None]) -> None:
    """Give each quantizer that saw no values its concatenated siblings' range
    (:func:`borrow_sibling_ranges`, which changes ``graph``), saying how many."""
    borrowed = borrow_sibling_ranges(graph)
    if borrowed:
        say(
            f"note: {borrowed} pyramid levels got no box on the calibration images; their "
            "ROIAlign quantizers take the range of the other levels"
        )


def check_calibrated(graph, images: int) -> None:
    """Raise a one-line ValueError when some quantizer of ``graph`` saw no values on the
    ``images`` calibration images (leaves ``graph`` as it is)."""
    unmeasured = unmeasured_quantizers(graph)
    if unmeasured:
        raise ValueError(
            f"int8: {len(unmeasured)} quantizers saw no values on the {images} calibration "
            f"images (e.g. {unmeasured[0]}): the model detected nothing on them, so its mask "
            "head had nothing to calibrate on; calibrate on images where the model finds "
            "objects (its own training or validation images)"
        )


def borrow_sibling_ranges(graph) -> int:
    """Give each quantizer that saw no values, and feeds a Concat, the range of a measured
    quantizer feeding the same Concat; returns how many were given one.

    Why: the pyramid ROIAlign pools each level separately and concatenates the rows, and a
    level no box of the calibration images reached (level 5 wants objects of about 320 px at
    1024) leaves its quantizer empty. The rows meet the same head layer, so the measured
    levels' range is the one that layer sees.
    """
    unmeasured = set(unmeasured_quantizers(graph))
    given = 0
    for node in graph.get_ordered_ops():
        if node.get_type_name() != "FakeQuantize" or node.get_friendly_name() not in unmeasured:
            continue
        sibling = _measured_sibling(node, unmeasured)
        if sibling is not None:
            for index in range(1, 5):  # input low, input high, output low, output high
                node.input(index).replace_source_output(sibling.input(index).get_source_output())
            given += 1
    return given


def _measured_sibling(node, unmeasured: set[str]):
    """A measured FakeQuantize feeding a Concat that ``node`` feeds, or None."""
    for target in node.output(0).get_target_inputs():
        concat = target.get_node()
        if concat.get_type_name() != "Concat":
            continue
        for other in concat.inputs():
            producer = other.get_source_output().get_node()
            if (
                producer.get_type_name() == "FakeQuantize"
                and producer.get_friendly_name() not in unmeasured
            ):
                return producer
    return None


#: OpenVINO CPU layer types that carry the weights (what int8 speeds up).
WEIGHTED_LAYERS = ("Convolution", "FullyConnected", "Deconvolution")


def int8_layer_count(graph) -> tuple[int, int]:
    """(layers run in int8, layers) of OpenVINO model ``graph`` compiled for this CPU, counting
    convolutions, deconvolutions and fully connected layers by the precision the CPU plugin
    chose (a layer whose input was not quantized runs in f32 even with int8 weights)."""
    compiled = openvino_core().compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    precisions = []
    for layer in compiled.get_runtime_model().get_ops():
        info = layer.get_rt_info()
        if "layerType" in info and info["layerType"].astype(str) in WEIGHTED_LAYERS:
            precisions.append(info["runtimePrecision"].astype(str))
    return sum(p in ("u8", "i8") for p in precisions), len(precisions)


#: The detection threshold fed to the graph while NNCF measures it (the graph's "min_score"
#: input). Why not the config's: the mask head runs on the detections above it, and at a
#: trained threshold a photo gives a handful, each on one pyramid level; the levels none reached
#: got no range. On the Matterport R-101 (8 scenes) four mask-head quantizers stayed empty and
#: the graph was refused; fed 0.05, every image gives the mask head up to
#: DETECTION_MAX_INSTANCES boxes on every level, and all 137 layers were calibrated.
CALIBRATION_MIN_SCORE = 0.05


class CalibrationInputs:
    """The graph inputs of ``ids``' images, molded for ``size`` as at inference (the threshold
    lowered to :data:`CALIBRATION_MIN_SCORE`); iterable more than once (NNCF passes over them
    for statistics and again for bias correction). Images are loaded on each pass: kept in
    memory, 300 molded 1024 x 1024 inputs would take 3.6 GB."""

    def __init__(self, dataset, ids: list[int], settings, size: tuple[int, int]) -> None:
        self.dataset, self.ids, self.settings, self.size = dataset, ids, settings, size

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self):
        for image_id in self.ids:
            inputs = graph_inputs(self.dataset.load_image(image_id), self.settings, self.size)
            inputs["min_score"] = np.asarray([CALIBRATION_MIN_SCORE], dtype=np.float32)
            yield inputs


def graph_inputs(image: np.ndarray, settings, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """The graph's inputs (:func:`mrcnn.deploy.runtime.graph_feed`) of one H x W (x 3) uint8
    image for a graph input of ``size``, molded as at inference
    (:func:`mrcnn.deploy.runtime.plan_for_input`)."""
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    image = np.ascontiguousarray(image[:, :, :3])
    plan, _ = plan_for_input(image.shape[0], image.shape[1], settings, size)
    return graph_feed(image, settings, plan)


def calibration_ids(
    fp32: OpenVinoMaskRCNN, dataset, ids: list[int], size, say: Callable[[str], None], progress
) -> list[int]:
    """``ids`` whose image loads and on which the fp32 graph finds at least one object.

    Why the second condition: NNCF averages each tensor's range over the images, and an image
    with no detection gives the mask head's tensors no values: with one such image among three
    calibration images, every mask-head quantizer got the range [0, 8e-05] (the masks are then
    lost: mask mAP@0.5 1.0 -> 0.33 measured when most images had none).
    """
    graph, kept, empty = fp32.compiled_graph(size), [], 0
    for image_id in tqdm(ids, desc="calibration images", disable=not progress, leave=False):
        found = call_loaders(dataset, image_id, ("load_image",))
        if not isinstance(found, list):
            say(f"warning: calibration skips {found.describe()}")
            continue
        inputs = graph_inputs(found[0], fp32.config, size)
        if len(graph(inputs)[2]):  # outputs: boxes, ids, scores, masks
            kept.append(image_id)
        else:
            empty += 1
    if empty:
        say(f"note: calibration leaves out {empty} images the model finds nothing on")
    if not kept:
        raise ValueError(
            f"int8: the model finds no object on any of the {len(ids)} calibration images "
            "(or none loaded), so its heads cannot be calibrated: calibrate on images where it "
            "finds objects (its own training or validation images)"
        )
    return kept


def _mask_ap(runner, dataset, ids: list[int], progress: bool) -> dict[str, float]:
    evaluation = evaluate_dataset(runner, dataset, ids, progress=progress, coco_results=False)
    return {
        "mAP@0.5": round(float(evaluation.map50), 4),
        "mAP@[.5:.95]": round(float(evaluation.map50_95), 4),
    }


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def report_json(report: Int8Report) -> str:
    """The report as the JSON ``mrcnn export --int8`` writes beside OUT."""
    return json.dumps(report.to_dict(), indent=1) + "\n"


__all__ = [
    "ACCEPTED_DROP",
    "calibration_sets",
    "check_calibrated",
    "fill_empty_levels",
    "int8_layer_count",
    "DEFAULT_HOLDOUT",
    "Int8Report",
    "make_int8_graph",
    "nncf_module",
    "parse_holdout",
    "quantize",
    "report_json",
    "split_for_calibration",
]

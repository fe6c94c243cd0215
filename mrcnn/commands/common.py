"""What the commands share: the common flags (--config, --set, --weights, --device, --logs,
--precision, --class-names, a dataset spec) and the set-up of an inference model from them."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from mrcnn.config import Config
from mrcnn.tracking.analysis import DEFAULT_KEYFRAME_INTERVAL
from mrcnn.tracking.keyframes import parse_interval
from mrcnn.weights.resolve import config_for_weights, resolve_weights

if TYPE_CHECKING:
    from mrcnn.maskrcnn import MaskRCNN


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """--config and --set, shared by every command that builds a model or reads data."""
    parser.add_argument(
        "--config",
        metavar="SPEC",
        help="a Config subclass as module:Class (or file.py:Class), or a YAML/JSON file of "
        "KEY: value pairs",
    )
    parser.add_argument(
        "--set",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="override one config value, e.g. --set DETECTION_MIN_CONFIDENCE=0.8 (repeatable)",
    )


def add_dataset_argument(parser: argparse.ArgumentParser, note: str = "") -> None:
    """--dataset SPEC, for the commands that read a dataset (``note`` ends its help)."""
    parser.add_argument(
        "--dataset",
        required=True,
        metavar="SPEC",
        help="via:PATH, via3:FILE, labelme:PATH, cvat:XML[:IMAGES], coco:ANNOTATIONS[:IMAGES], "
        f"masks:PATH, labels:IMAGES:MASKS or shapes[:COUNT[:SIZE]] (see docs/datasets.md){note}",
    )


def add_model_arguments(parser: argparse.ArgumentParser, weights_required: bool = True) -> None:
    """--weights, --device and --logs, shared by the commands that run a model."""
    parser.add_argument(
        "--weights",
        required=weights_required,
        metavar="W",
        help="a checkpoint (.pt, .safetensors), state-dict or Matterport .h5 file (the "
        "settings it carries are the config's defaults), 'coco' (torchvision's COCO Mask "
        "R-CNN), 'imagenet' (backbone only), 'last' (newest checkpoint under --logs) or, for "
        "train, 'none' (random initialisation)",
    )
    parser.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:1, ... (default: CUDA when available)"
    )
    parser.add_argument(
        "--logs", default="logs", metavar="DIR", help="folder of run folders (default: logs)"
    )


def add_precision_argument(parser: argparse.ArgumentParser) -> None:
    """--precision, for the commands that run inference (sets INFERENCE_PRECISION)."""
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16", "int8"),
        default=None,
        help="inference precision: bf16 on GPUs and on CPUs where it is faster (AMX, or "
        "AVX512_BF16 measured once; else fp32), "
        "fp16 on GPUs; box decoding, NMS and mask pasting stay fp32; int8 with --backend "
        "openvino runs the graph `mrcnn export --int8` made (default: the config's "
        "INFERENCE_PRECISION, fp32)",
    )


def add_backend_argument(parser: argparse.ArgumentParser) -> None:
    """--backend, for the commands that run the model on images (detect, splash, evaluate,
    serve)."""
    parser.add_argument(
        "--backend",
        choices=("torch", "openvino", "auto"),
        default="torch",
        help="what runs the network: torch (PyTorch), openvino (exports the network once per "
        "input size and caches it beside the weights, in <weights>.openvino/; needs pip install "
        "'mrcnn[openvino]'; CPU only), or auto (OpenVINO where it is installed and can run the "
        "model, else PyTorch; the choice is printed). Default: torch",
    )


def add_class_names_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--class-names",
        metavar="A,B,...",
        help="names of classes 1, 2, ... comma-separated (default: those stored in the "
        "checkpoint, COCO's for --weights coco, else 'class 1', 'class 2', ...)",
    )


def add_video_mode_arguments(
    parser: argparse.ArgumentParser, modes: tuple[str, ...], default: str
) -> None:
    """--video-mode (one of ``modes``) and --keyframe-interval, for commands that run a video."""
    meaning = {
        "stable": "instances tracked, and what is shown held still per track (score "
        "hysteresis, a minimum age, masks smoothed along their motion)",
        "tracked": "track ids on the detections as they are",
        "per-frame": "each frame alone, no ids",
    }
    parser.add_argument(
        "--video-mode",
        choices=modes,
        default=default,
        help="; ".join(f"{mode}: {meaning[mode]}" for mode in modes) + f" (default: {default})",
    )
    parser.add_argument(
        "--keyframe-interval",
        type=_keyframe_interval,
        default=DEFAULT_KEYFRAME_INTERVAL,
        metavar="K|auto",
        help="detect every K-th frame and carry the masks between by optical flow (a cut, new "
        "motion or a lost object forces a detection); auto: as often as the motion needs; 1: "
        f"every frame (default: {DEFAULT_KEYFRAME_INTERVAL})",
    )


def add_shard_argument(parser: argparse.ArgumentParser, what: str) -> None:
    """--shard I/N, for the commands that split a folder across processes (``what`` names the
    folder's flag in the help)."""
    parser.add_argument(
        "--shard",
        metavar="I/N",
        help=f"run shard I of N (from 0) of the {what}, without torchrun (e.g. one task of a "
        "cluster array job); under torchrun the shard is its RANK of WORLD_SIZE. A rerun skips "
        "finished shards; the last to finish merges (see docs/cli.md, 'Folders across "
        "processes and machines')",
    )


def shard_say(shard) -> Callable[..., None]:
    """print, each line starting ``[shard I/N]`` (the lines of several processes interleave)."""

    def say(text: str, file=None) -> None:
        print(f"[shard {shard.label}] {text}", file=file or sys.stdout, flush=True)

    return say


def _keyframe_interval(text: str) -> int | str:
    try:
        return parse_interval(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def config_overrides(args: argparse.Namespace) -> list[str]:
    """``KEY=VALUE`` strings of --set, --device and --precision."""
    overrides = list(getattr(args, "set", None) or [])
    if getattr(args, "device", None):
        overrides.append(f"DEVICE={args.device}")
    if getattr(args, "precision", None) not in (None, "int8"):  # int8 is the backend's alone
        overrides.append(f"INFERENCE_PRECISION={args.precision}")
    return overrides


def inference_config(args: argparse.Namespace) -> Config:
    """The config for running ``args.weights`` (:func:`mrcnn.weights.resolve.config_for_weights`
    with --config, --set, --device and --precision). ``--weights last`` is first resolved (in
    ``args``) to the newest checkpoint under --logs (of the NAME given with --set, if any).
    """
    overrides = config_overrides(args)
    args.weights = resolve_weights(args.weights, getattr(args, "logs", "logs"), overrides)
    return config_for_weights(args.weights, overrides, args.config)


def build_model(args: argparse.Namespace) -> MaskRCNN:
    """A MaskRCNN in inference mode with ``args.weights`` loaded (``last`` resolved in
    ``args``; see :meth:`MaskRCNN.from_checkpoint`), run by ``args.backend`` when the command
    has --backend (:func:`with_backend`). Notes from loading go to stderr."""
    # why here: the model's import (torchvision) is start-up time for every `mrcnn --help`.
    from mrcnn.maskrcnn import MaskRCNN

    overrides = config_overrides(args)
    logs = getattr(args, "logs", "logs")
    args.weights = resolve_weights(args.weights, logs, overrides)
    model = MaskRCNN.from_checkpoint(
        args.weights,
        overrides,
        config=args.config,
        model_dir=logs,
        on_note=lambda note: print(f"note: {note}", file=sys.stderr),
    )
    return with_backend(model, args)


def with_backend(model: MaskRCNN, args: argparse.Namespace):
    """``model`` run by ``args.backend`` (:func:`mrcnn.deploy.openvino_backend.with_backend`;
    the model itself without --backend or with ``torch``)."""
    backend = getattr(args, "backend", None) or "torch"
    precision = getattr(args, "precision", None)
    if backend == "torch" and precision != "int8":
        return model
    # why here: OpenVINO's module is imported only by the runs that ask for it.
    from mrcnn.deploy.openvino_backend import with_backend as run_by

    return run_by(model, backend, args.weights, precision=precision)


def class_names_for(model, weights: str | None, given: str | None = None) -> list[str]:
    """Names indexed by class id, "BG" first, NUM_CLASSES long.

    From ``given`` ("a,b,c": classes 1, 2, 3), else the checkpoint's extras["class_names"],
    else COCO's (torchvision's 91 ids) for ``coco`` weights, else "class 1", "class 2", ...
    """
    count = int(model.config.NUM_CLASSES)
    if given:
        names = [n.strip() for n in given.split(",") if n.strip()]
        return _with_background(names, count, "--class-names")
    stored = (getattr(model, "checkpoint_extras", None) or {}).get("class_names")
    if stored:
        return _with_background([str(n) for n in stored], count, "the checkpoint's class_names")
    if str(weights) == "coco" and count == 91:
        from torchvision.models.detection import MaskRCNN_ResNet50_FPN_Weights

        return ["BG", *MaskRCNN_ResNet50_FPN_Weights.DEFAULT.meta["categories"][1:]]
    return ["BG", *(f"class {i}" for i in range(1, count))]


def _with_background(names: list[str], count: int, where: str) -> list[str]:
    if len(names) == count and names[0].upper() in ("BG", "__BACKGROUND__", "BACKGROUND"):
        names = names[1:]
    if len(names) != count - 1:
        raise ValueError(
            f"{where} has {len(names)} names but the model has {count - 1} classes "
            f"(NUM_CLASSES={count} counts the background): give one name per class"
        )
    return ["BG", *names]

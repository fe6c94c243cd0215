"""Builds the Matterport Keras reference for issue 11: seeded random-weight models saved as .h5,
their detections on real photos, per-stage outputs, and the small committed test fixture.

Runs ONLY in the side environment (TensorFlow is never a dependency of this project); see
tools/matterport_reference/README.md for how to create it. Typical use, from the repository root::

    TF_USE_LEGACY_KERAS=1 /work/tfenv/bin/python -m tools.matterport_reference.make_reference \
        --port /work/refsrc --out /work/mmref [--models r50_c2_512 ...]

The weights are drawn by tools/matterport_reference/h5_models.py (numpy and h5py only) from each
model's seed, assigned to the Keras model and saved with Keras's own `save_weights` (and once
with `model.save()`); the tool checks that the numpy writer produces the same arrays, so the test
suite can rebuild every .h5 from the seed without TensorFlow.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
from PIL import Image

from tools.matterport_reference import h5_models as mh5  # numpy + h5py only
from tools.matterport_reference.port import PATCHES, import_port

BALLOON_VAL = Path("/work/shared/data/balloon/val")

# name -> Config overrides, seed, output-layer scales (h5_models.draw_weights).
# The 512 models use IMAGE_MIN_DIM 400 so a 512x448 crop needs padding but no resize.
MODELS = {
    "r50_c2_512": dict(
        BACKBONE="resnet50", NUM_CLASSES=2, IMAGE_MIN_DIM=400, IMAGE_MAX_DIM=512, seed=1
    ),
    "r101_c2_512": dict(
        BACKBONE="resnet101", NUM_CLASSES=2, IMAGE_MIN_DIM=400, IMAGE_MAX_DIM=512, seed=2
    ),
    "r50_c4_512": dict(
        BACKBONE="resnet50", NUM_CLASSES=4, IMAGE_MIN_DIM=400, IMAGE_MAX_DIM=512, seed=3
    ),
    "r101_c81_512": dict(
        BACKBONE="resnet101", NUM_CLASSES=81, IMAGE_MIN_DIM=400, IMAGE_MAX_DIM=512, seed=4
    ),
    "r50_c4_1024": dict(
        BACKBONE="resnet50", NUM_CLASSES=4, IMAGE_MIN_DIM=800, IMAGE_MAX_DIM=1024, seed=5
    ),
    "r101_c81_1024": dict(
        BACKBONE="resnet101", NUM_CLASSES=81, IMAGE_MIN_DIM=800, IMAGE_MAX_DIM=1024, seed=6
    ),
}

# Logit scales that spread scores: RPN foreground probabilities and class scores between ~0.1 and
# ~0.999 instead of all ~0.5 or all 1.0, masks mostly far from the 0.5 threshold.
OUTPUT_SCALES = {
    "rpn_class_raw": 0.35,
    "rpn_bbox_pred": 0.06,
    "mrcnn_bbox_fc": 0.12,
    "mrcnn_mask": 4.0,
}
# NUM_CLASSES -> the first guess of (mrcnn_class_logits scale, background logit); each model is
# then calibrated on its photos (calibrate_class_logits) so that its class logits have
# TARGET_LOGIT_STD and at most a few dozen ROIs pass DETECTION_MIN_CONFIDENCE: scores spread between
# 0.7 and ~0.99 and detections are rarely all cut at DETECTION_MAX_INSTANCES.
CLASS_LOGITS = {2: (0.25, 2.0), 4: (0.35, 2.0), 81: (0.5, 1.0)}
TARGET_LOGIT_STD = 2.0
PASS_FRACTION = 0.04

# Photos: (name, file, crop (y, x, h, w) or None). Crops give the molded size exactly (no resize,
# maybe padding); None is the photo at its native size (resized by molding).
PHOTOS = {
    512: [
        (
            "balloon_410488422_crop512",
            BALLOON_VAL / "410488422_5f8991f26e_b.jpg",
            (128, 256, 512, 512),
        ),
        ("sample_1045023827_crop448x512", "images/1045023827_4ec3e8ba5c_z.jpg", (0, 64, 448, 512)),
        ("balloon_410488422_native", BALLOON_VAL / "410488422_5f8991f26e_b.jpg", None),
        ("sample_12283150_native", "images/12283150_12d37e6389_z.jpg", None),
        ("balloon_14898532020_native", BALLOON_VAL / "14898532020_ba6199dd22_k.jpg", None),
        # Added after calibration (CALIBRATION_PHOTOS), as further no-resize cases: crops where
        # the 512 models detect more than on the first crop.
        (
            "balloon_3825919971_crop512",
            BALLOON_VAL / "3825919971_93fb1ec581_b.jpg",
            (300, 85, 512, 512),
        ),
        (
            "balloon_5555705118_crop512",
            BALLOON_VAL / "5555705118_3390d70abe_b.jpg",
            (256, 85, 512, 512),
        ),
    ],
    1024: [
        (
            "balloon_14898532020_crop1024",
            BALLOON_VAL / "14898532020_ba6199dd22_k.jpg",
            (170, 512, 1024, 1024),
        ),
        ("balloon_410488422_native", BALLOON_VAL / "410488422_5f8991f26e_b.jpg", None),
        ("sample_1045023827_native", "images/1045023827_4ec3e8ba5c_z.jpg", None),
    ],
}

# How many of each size's PHOTOS (the first ones) calibrate the class logits.
CALIBRATION_PHOTOS = {512: 5, 1024: 3}

# Keras layers whose outputs are saved per stage (Matterport's layer names).
STAGE_LAYERS = [
    "res2c_out", "res3d_out", "C4", "res5c_out",
    "fpn_p2", "fpn_p3", "fpn_p4", "fpn_p5", "fpn_p6",
    "rpn_class", "rpn_bbox", "ROI",
    "roi_align_classifier", "pool_squeeze", "mrcnn_class_logits", "mrcnn_class", "mrcnn_bbox",
    "mrcnn_detection", "roi_align_mask", "mrcnn_mask",
]  # fmt: skip


def load_photo(path: Path, crop) -> np.ndarray:
    """uint8 [H, W, 3] RGB as skimage.io.imread gives it (no EXIF rotation), optionally cropped."""
    image = np.asarray(Image.open(path).convert("RGB"))
    if crop is not None:
        y, x, h, w = crop
        image = image[y : y + h, x : x + w]
        assert image.shape[:2] == (h, w), f"crop {crop} does not fit {path}"
    return np.ascontiguousarray(image)


def pixel_digest(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


def model_settings(name: str) -> tuple[dict, int, dict, float]:
    """(Config overrides, seed, output-layer scales, background logit) of a MODELS entry."""
    spec = dict(MODELS[name])
    seed = spec.pop("seed")
    scale, background = CLASS_LOGITS[spec["NUM_CLASSES"]]
    scales = dict(OUTPUT_SCALES, mrcnn_class_logits=scale)
    config = dict(spec, NAME=name, GPU_COUNT=1, IMAGES_PER_GPU=1)
    return config, seed, scales, background


def build_keras(config_overrides: dict, log_dir: Path):
    from mrcnn import model as modellib
    from mrcnn.config import Config

    config = type("RefConfig", (Config,), dict(config_overrides))()
    return modellib.MaskRCNN(mode="inference", config=config, model_dir=str(log_dir))


def keras_manifest(keras_model) -> mh5.Manifest:
    return [
        (layer.name, [w.name for w in layer.weights], [tuple(w.shape) for w in layer.weights])
        for layer in keras_model.layers
    ]


def assign_weights(
    model, manifest, seed: int, scales: dict, background: float, projection=None
) -> dict:
    weights = mh5.draw_weights(manifest, seed, scales, background, projection)
    for layer in model.keras_model.layers:
        if layer.weights:
            layer.set_weights(weights[layer.name])
    return weights


def assign_and_save(model, manifest, seed, scales, background, projection, h5_path: Path) -> None:
    """Assigns the seeded weights, saves them as Matterport did (save_weights = ModelCheckpoint's
    layout) and checks the numpy writer gives the same file content. The file is replaced only
    once complete (someone may be reading the previous one)."""
    import h5py

    weights = assign_weights(model, manifest, seed, scales, background, projection)
    tmp_path = h5_path.with_suffix(".tmp.h5")
    model.keras_model.save_weights(str(tmp_path))
    numpy_path = h5_path.with_suffix(".numpy.h5")
    mh5.write_h5(numpy_path, manifest, weights, layout="tf-keras-2")
    with h5py.File(tmp_path, "r") as a, h5py.File(numpy_path, "r") as b:
        compare_h5(a, b)
    numpy_path.unlink()
    os.replace(tmp_path, h5_path)


def _names(group, key: str) -> tuple[list[str], str]:
    values = group.attrs[key]
    kind = group.attrs.get_id(key).dtype.kind
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values], kind


def compare_h5(a, b) -> None:
    """Raises AssertionError where two Keras weight files differ in names, storage or arrays."""
    assert _names(a, "layer_names") == _names(b, "layer_names"), "layer_names differ"
    assert sorted(a.keys()) == sorted(b.keys()), f"groups differ: {set(a.keys()) ^ set(b.keys())}"
    for key in ("backend", "keras_version"):
        assert a.attrs.get_id(key).dtype.kind == b.attrs.get_id(key).dtype.kind, (
            f"{key} storage differs"
        )
    for name in a.keys():
        names_a = _names(a[name], "weight_names")
        assert names_a == _names(b[name], "weight_names"), f"weight_names of {name} differ"
        for n in names_a[0]:
            assert a[name][n].dtype == b[name][n].dtype, f"{name}/{n} dtype differs"
            assert np.array_equal(a[name][n][()], b[name][n][()]), f"{name}/{n} differs"


def stage_model(model):
    from mrcnn import model as modellib

    km = model.keras_model
    names = [n for n in STAGE_LAYERS if n != "C4"]
    c4 = "res4w_out" if model.config.BACKBONE == "resnet101" else "res4f_out"
    outputs = [km.get_layer(n).output for n in names] + [km.get_layer(c4).output]
    return modellib.KM.Model(km.inputs, outputs), names + ["C4"]


def run_stages(model, image: np.ndarray) -> dict[str, np.ndarray]:
    """Molded inputs and every STAGE_LAYERS output for one image (batch axis dropped)."""
    molded, metas, windows = model.mold_inputs([image])
    anchors = model.get_anchors(molded[0].shape)
    if not hasattr(model, "stage_model"):  # one Keras model (one tf.function trace) per model
        model.stage_model = stage_model(model)
    sub, names = model.stage_model
    outs = sub.predict([molded, metas, anchors[None]], verbose=0)
    stages = {
        "molded_image": molded[0],
        "image_meta": metas[0],
        "window": windows[0],
        "anchors": anchors,
    }
    for name, value in zip(names, outs, strict=True):
        stages[name] = value[0]
    stages["roi_align_classifier"] = stages["roi_align_classifier"][:20]  # the first few ROIs
    n_det = int(np.sum(stages["mrcnn_detection"][:, 4] > 0))
    stages["roi_align_mask"] = stages["roi_align_mask"][: max(n_det, 1)][:10]
    stages["mrcnn_mask"] = stages["mrcnn_mask"][: max(n_det, 1)]
    return stages


def feature_directions(shared_per_photo) -> np.ndarray:
    """float32 [P, 1024] orthonormal basis of the photos' mean box-head features (pool_squeeze):
    projected out of the class-logit kernel, the logits lose what is common to a photo's ROIs."""
    means = np.stack([s.astype(np.float64).mean(axis=0) for s in shared_per_photo])
    q, _ = np.linalg.qr(means.T)
    return q.T.astype(np.float32)


def calibrate_class_logits(shared_per_photo, kernel, bias, scale0, background0, min_confidence):
    """(scale, background logit) for mrcnn_class_logits: the logits of each photo's ROIs get
    TARGET_LOGIT_STD about their mean, and on average PASS_FRACTION of the ROIs pass
    DETECTION_MIN_CONFIDENCE.

    shared_per_photo: [R, 1024] box-head features (pool_squeeze) per photo; kernel [1024, C] and
    bias [C]: the layer's weights as drawn with scale0 and background0 (linear in both)."""
    zs = []
    for shared in shared_per_photo:
        z = shared.astype(np.float64) @ kernel + bias
        z[:, 0] -= background0
        zs.append(z / scale0)
    spread = np.sqrt(np.mean([np.var(z - z.mean(axis=0)) for z in zs]))
    scale = TARGET_LOGIT_STD / spread

    def passing(background):
        fractions = []
        for z in zs:
            logits = scale * z
            logits[:, 0] += background
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            fractions.append(np.mean(p[:, 1:].max(axis=1) >= min_confidence))
        return float(np.mean(fractions))

    lo, hi = -50.0, 50.0  # passing() falls as the background logit grows
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if passing(mid) > PASS_FRACTION else (lo, mid)
    return float(np.float32(scale)), float(np.float32(round((lo + hi) / 2, 3)))


def pack_result(r: dict) -> dict[str, np.ndarray]:
    masks = r["masks"].astype(bool)
    return {
        "rois": r["rois"].astype(np.int32),
        "class_ids": r["class_ids"].astype(np.int32),
        "scores": r["scores"].astype(np.float32),
        "masks_shape": np.array(masks.shape, np.int32),
        "masks_packed": np.packbits(masks, axis=None),
    }


def summarize(name: str, r: dict, stages: dict | None = None) -> str:
    s = r["scores"]
    text = f"{name}: {len(s)} detections"
    if len(s):
        text += (
            f", scores {s.min():.3f}..{s.max():.3f}, classes {np.bincount(r['class_ids']).tolist()}"
        )
    if stages is not None:
        fg = stages["rpn_class"][:, 1]
        p10, p50, p999 = np.percentile(fg, [10, 50, 99.9])
        text += f"; rpn fg p10/p50/p99.9 {p10:.3f}/{p50:.3f}/{p999:.3f}"
    return text


def photo_path(path, port_src: Path) -> Path:
    return Path(path) if Path(path).is_absolute() else port_src / path


def save_whole_model(model, path: Path) -> None:
    """`keras_model.save(path)` (weights under "model_weights"). Matterport's custom layers have
    no get_config; Keras 2.2 saved them with the base config, tf_keras refuses, so they get
    that base config here (the weights, which are what matters, are unaffected)."""
    from mrcnn import model as modellib

    def base_config(layer):
        return {"name": layer.name, "trainable": layer.trainable, "dtype": layer.dtype}

    for cls in (modellib.ProposalLayer, modellib.PyramidROIAlign, modellib.DetectionLayer):
        cls.get_config = base_config
    model.keras_model.save(str(path), save_format="h5")


def check_model_save(path: Path, manifest, seed, scales, background, projection) -> None:
    """The numpy writer's "model-save" layout has the same weights group as Keras's model.save()."""
    import h5py

    numpy_path = path.with_suffix(".numpy.h5")
    mh5.write_matterport_h5(
        numpy_path, manifest, seed, scales, background, "model-save", projection
    )
    with h5py.File(path, "r") as a, h5py.File(numpy_path, "r") as b:
        compare_h5(a["model_weights"], b["model_weights"])
        assert sorted(a.attrs) == sorted(b.attrs), "root attributes differ"
    numpy_path.unlink()


def make_model(name: str, out: Path, port_src: Path, max_photos: int | None = None) -> None:
    config, seed, scales, background = model_settings(name)
    model = build_keras(config, out / "logs")
    manifest = keras_manifest(model.keras_model)
    h5_path = out / "models" / f"{name}.h5"
    size = config["IMAGE_MAX_DIM"]
    photos = [(photo, photo_path(path, port_src), crop) for photo, path, crop in PHOTOS[size]]

    # Calibrate the class logits on the model's photos, then save the final weights.
    assign_weights(model, manifest, seed, scales, background)
    shared = [
        run_stages(model, load_photo(path, crop))["pool_squeeze"]
        for _, path, crop in photos[: min(CALIBRATION_PHOTOS[size], max_photos or 99)]
    ]
    projection = feature_directions(shared)
    assign_weights(model, manifest, seed, scales, background, projection)
    kernel, bias = model.keras_model.get_layer("mrcnn_class_logits").get_weights()
    scales["mrcnn_class_logits"], background = calibrate_class_logits(
        shared,
        kernel,
        bias,
        scales["mrcnn_class_logits"],
        background,
        model.config.DETECTION_MIN_CONFIDENCE,
    )
    print(
        f"{name}: mrcnn_class_logits scale {scales['mrcnn_class_logits']}, "
        f"background logit {background}"
    )
    assign_and_save(model, manifest, seed, scales, background, projection, h5_path)
    if name == "r50_c2_512":
        save_whole_model(model, h5_path.with_suffix(".model_save.h5"))
        check_model_save(
            h5_path.with_suffix(".model_save.h5"), manifest, seed, scales, background, projection
        )
    info = dict(config=config, seed=seed, output_scales=scales, background_logit=background)
    info["class_logit_projection"] = projection.tolist()
    info["manifest"] = mh5.manifest_to_json(manifest)
    (out / "models" / f"{name}.json").write_text(json.dumps(info, indent=1))

    for i, (photo, path, crop) in enumerate(photos[:max_photos]):
        image = load_photo(path, crop)
        t = time.time()
        result = model.detect([image])[0]
        seconds = time.time() - t
        stages = run_stages(model, image) if i == 0 else None
        print(summarize(f"{name}/{photo}", result, stages), f"({seconds:.1f} s)", flush=True)
        record = dict(
            pack_result(result),
            image_sha1=np.array(pixel_digest(image)),
            image_shape=np.array(image.shape),
        )
        np.savez_compressed(out / "detections" / f"{name}__{photo}.npz", **record)
        if stages is not None:
            np.savez_compressed(out / "stages" / f"{name}__{photo}.npz", **stages)
            if name == "r50_c2_512":
                (out / "READY").touch()


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tools.matterport_reference.make_reference",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument(
        "--port", type=Path, default=Path("/work/refsrc"), help="checkout of Ben-Sicat/mrcnn_tf2"
    )
    parser.add_argument("--out", type=Path, default=Path("/work/mmref"))
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    parser.add_argument(
        "--max-photos", type=int, default=None, help="only the first N photos (quick look)"
    )
    args = parser.parse_args()
    if os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        raise SystemExit("error: run with TF_USE_LEGACY_KERAS=1 (the port needs tf_keras, Keras 2)")
    # Plain Eigen kernels: the reference does not depend on oneDNN's summation order.
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import_port(args.port, args.out / "src")
    for sub in ("models", "detections", "stages"):
        (args.out / sub).mkdir(parents=True, exist_ok=True)
    print("patches applied:", *(f"  {rel}: {why}" for rel, _, _, why in PATCHES), sep="\n")
    for name in args.models:
        make_model(name, args.out, args.port, args.max_photos)


if __name__ == "__main__":
    main()

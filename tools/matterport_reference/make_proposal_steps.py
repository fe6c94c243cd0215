"""Matterport's proposal-layer steps, read the way its inspect_model notebooks read them.

Runs ONLY in the side environment (see README.md). It builds the port's inference model in
TensorFlow 1 graph mode (eager execution off), which is what Matterport's ``model.ancestor`` needs
to walk the graph, loads a reference model written by make_reference.py, and runs the notebooks'
"Run RPN sub-graph" cell as they have it: ``model.ancestor`` finds ``ROI/pre_nms_anchors:0``,
``ROI/refined_anchors:0``, ``ROI/refined_anchors_clipped:0`` and the NMS node, and
``model.run_graph`` evaluates them. The first ROWS rows of each (normalised (y1, x1, y2, x2)),
all NMS indices and all proposals go to a small fixture for tests/modeling/test_run_graph.py::

    TF_USE_LEGACY_KERAS=1 /work/tfenv/bin/python -m tools.matterport_reference.make_proposal_steps \
        --port /work/refsrc --ref /work/mmref

(from the repository root).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from tools.matterport_reference.make_reference import (
    BALLOON_VAL,
    load_photo,
    model_settings,
    pixel_digest,
)
from tools.matterport_reference.port import import_port

REPO = Path(__file__).resolve().parents[2]

MODEL = "r50_c2_512"
PHOTO = ("balloon_410488422_crop512", "410488422_5f8991f26e_b.jpg", (128, 256, 512, 512))
ROWS = 300
OUT = REPO / "tests" / "fixtures" / "matterport_steps"


def rpn_subgraph(model, image: np.ndarray) -> dict:
    """The notebooks' "Run RPN sub-graph" cell (inspect_model.ipynb, inspect_balloon_model)."""
    pillar = model.keras_model.get_layer("ROI").output
    nms_node = model.ancestor(pillar, "ROI/rpn_non_max_suppression:0")
    if nms_node is None:
        nms_node = model.ancestor(pillar, "ROI/rpn_non_max_suppression/NonMaxSuppressionV2:0")
    if nms_node is None:
        nms_node = model.ancestor(pillar, "ROI/rpn_non_max_suppression/NonMaxSuppressionV3:0")
    assert nms_node is not None, "no NMS node under ROI"
    return run_graph(
        model,
        [image],
        [
            ("rpn_class", model.keras_model.get_layer("rpn_class").output),
            ("pre_nms_anchors", model.ancestor(pillar, "ROI/pre_nms_anchors:0")),
            ("refined_anchors", model.ancestor(pillar, "ROI/refined_anchors:0")),
            ("refined_anchors_clipped", model.ancestor(pillar, "ROI/refined_anchors_clipped:0")),
            ("post_nms_anchor_ix", nms_node),
            ("proposals", model.keras_model.get_layer("ROI").output),
        ],
    )


def check_detections(model, image: np.ndarray, reference: Path) -> None:
    """Stop unless graph mode detects what make_reference.py's eager run saved."""
    result = model.detect([image])[0]
    with np.load(reference) as saved:
        same = np.array_equal(result["rois"], saved["rois"]) and np.allclose(
            result["scores"], saved["scores"], atol=1e-5
        )
    if not same:
        raise SystemExit(f"graph-mode detections differ from {reference}: weights not loaded?")
    print(f"graph mode reproduces {reference.name}: {len(result['scores'])} detections")


def run_graph(model, images, outputs) -> dict:
    """Matterport's ``MaskRCNN.run_graph`` minus its Keras 2.0 learning-phase check
    (``uses_learning_phase``, which tf-keras models no longer have): a Keras function from the
    model's inputs to ``outputs``, fed the molded images, metas and anchors as run_graph fed
    them."""
    from mrcnn.model import K

    function = K.function(model.keras_model.inputs, [tensor for _, tensor in outputs])
    molded, metas, _ = model.mold_inputs(images)
    anchors = model.get_anchors(molded[0].shape)
    anchors = np.broadcast_to(anchors, (model.config.BATCH_SIZE,) + anchors.shape)
    values = function([molded, metas, anchors])
    return {name: value for (name, _), value in zip(outputs, values, strict=True)}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tools.matterport_reference.make_proposal_steps",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("--port", type=Path, default=Path("/work/refsrc"))
    parser.add_argument("--ref", type=Path, default=Path("/work/mmref"))
    args = parser.parse_args()
    if os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        raise SystemExit("error: run with TF_USE_LEGACY_KERAS=1 (the port needs tf_keras, Keras 2)")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.compat.v1.disable_eager_execution()  # graph mode: model.ancestor walks tensor.op.inputs
    import_port(args.port, args.ref / "src")
    from mrcnn import model as modellib
    from mrcnn.config import Config

    overrides, _, _, _ = model_settings(MODEL)
    config = type("RefConfig", (Config,), dict(overrides))()
    model = modellib.MaskRCNN(mode="inference", config=config, model_dir=str(args.ref / "logs"))
    # The port's load_weights assigns through tensorflow.python.keras, whose graph-mode session
    # is not tf-keras's: in graph mode its weights never reach the model. tf-keras's own
    # by-name loading reads the same layers.
    model.keras_model.load_weights(str(args.ref / "models" / f"{MODEL}.h5"), by_name=True)

    name, file, crop = PHOTO
    image = load_photo(BALLOON_VAL / file, crop)
    check_detections(model, image, args.ref / "detections" / f"{MODEL}__{name}.npz")
    rpn = rpn_subgraph(model, image)
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{MODEL}__{name}.npz"
    np.savez_compressed(
        path,
        model=np.array(MODEL),
        config_json=np.array(json.dumps(overrides)),
        photo_file=np.array(file),
        photo_crop=np.array(crop),
        image_sha1=np.array(pixel_digest(image)),
        pre_nms_anchors=rpn["pre_nms_anchors"][0, :ROWS].astype(np.float32),
        refined_anchors=rpn["refined_anchors"][0, :ROWS].astype(np.float32),
        refined_anchors_clipped=rpn["refined_anchors_clipped"][0, :ROWS].astype(np.float32),
        pre_nms_count=np.array(rpn["pre_nms_anchors"].shape[1]),
        post_nms_anchor_ix=rpn["post_nms_anchor_ix"].astype(np.int32),
        proposals=rpn["proposals"][0].astype(np.float32),
    )
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()

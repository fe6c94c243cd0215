"""Write tests/fixtures/matterport_rpn_targets.npz: Matterport's compute_backbone_shapes and
build_rpn_targets on fixed inputs, for tests/modeling/test_matterport_rpn_targets.py.

Both functions are numpy code inside Matterport's ``mrcnn/model.py``, a module that needs
TensorFlow and Keras to import. This script reads only those two functions out of the file
(with ``ast``) and runs them with Matterport's ``mrcnn/utils.py`` (loaded as
make_utils_expected.py loads it), so a throwaway environment with numpy, scipy and scikit-image
is enough; from the repository root:

    python -m tools.matterport_reference.make_rpn_targets MRCNN/utils.py MRCNN/model.py

where MRCNN is the folder of Matterport's package (e.g. from the TF2 port Ben-Sicat/mrcnn_tf2).

Inputs are drawn from a seed and stored beside the outputs.
"""

from __future__ import annotations

import argparse
import ast
import math
import types
from pathlib import Path

import numpy as np

from tools.matterport_reference.make_utils_expected import load_utils, random_boxes

#: The fixture written (this file is tools/matterport_reference/make_rpn_targets.py).
TARGET = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "matterport_rpn_targets.npz"

FUNCTIONS = ("compute_backbone_shapes", "build_rpn_targets")
IMAGE_SHAPE = (128, 192, 3)  # multiples of 64, as Matterport's network needs
STRIDES = [4, 8, 16, 32, 64]
SCALES = (8, 16, 32, 64, 128)
RATIOS = [0.5, 1, 2]
STD = np.array([0.1, 0.1, 0.2, 0.2])


def load_model_functions(model_path: str, utils) -> types.SimpleNamespace:
    """The FUNCTIONS of Matterport's model.py, run against its utils, without its imports."""
    tree = ast.parse(Path(model_path).read_text())
    wanted = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in FUNCTIONS]
    namespace = {"np": np, "math": math, "utils": utils}
    exec(compile(ast.Module(body=wanted, type_ignores=[]), model_path, "exec"), namespace)
    return types.SimpleNamespace(**{name: namespace[name] for name in FUNCTIONS})


def config(anchors_per_image: int) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        BACKBONE="resnet50",
        BACKBONE_STRIDES=STRIDES,
        RPN_TRAIN_ANCHORS_PER_IMAGE=anchors_per_image,
        RPN_BBOX_STD_DEV=STD,
    )


def main(utils_path: str, model_path: str) -> None:
    u = load_utils(utils_path)
    m = load_model_functions(model_path, u)
    rng = np.random.default_rng(2017)
    out = {}
    shapes = m.compute_backbone_shapes(config(256), IMAGE_SHAPE)
    out["backbone_shapes"] = shapes
    anchors = u.generate_pyramid_anchors(SCALES, RATIOS, shapes, STRIDES, 1)
    out["anchors"] = anchors
    boxes = random_boxes(rng, 6, size=120)  # inside 128 x 192
    boxes[4] = [60, 70, 63, 72]  # small: its best anchor is below 0.3 IoU, and still positive
    class_ids = np.array([1, 2, 1, 3, 2, -1])  # the last one is a crowd box
    out["gt_boxes"], out["gt_class_ids"] = boxes, class_ids
    # Anchors enough for every candidate: no random sampling, the whole labelling is fixed.
    everything = 2 * len(anchors)
    out["unsampled_anchors_per_image"] = np.array(everything)
    match, bbox = m.build_rpn_targets(IMAGE_SHAPE, anchors, class_ids, boxes, config(everything))
    out["rpn_match"], out["rpn_bbox"] = match, bbox
    np.random.seed(0)
    match, _ = m.build_rpn_targets(IMAGE_SHAPE, anchors, class_ids, boxes, config(64))
    out["sampled_64_counts"] = np.array([(match == 1).sum(), (match == -1).sum()])
    np.savez_compressed(TARGET, **out)
    print(f"wrote {TARGET} ({TARGET.stat().st_size} bytes, {len(out)} arrays)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        prog="python -m tools.matterport_reference.make_rpn_targets",
        description=__doc__.splitlines()[0],
    )
    parser.add_argument("utils", help="Matterport's mrcnn/utils.py")
    parser.add_argument("model", help="Matterport's mrcnn/model.py")
    arguments = parser.parse_args()
    main(arguments.utils, arguments.model)

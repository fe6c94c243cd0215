"""What Matterport's inspect_model notebooks read from the graph, on this package.

Their "Run RPN sub-graph" cell finds the proposal layer's nodes with ``model.ancestor`` and runs
them with ``model.run_graph``; later cells read any residual block (``res3c_out``) and the
detection layer, and use ``model.anchors`` after ``detect``. The proposal-layer fixture holds
what Matterport's own Keras code gave for that cell (tools/matterport_reference/
make_proposal_steps.py, graph mode, on the seeded r50_c2_512 reference model and a balloon crop).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mrcnn import inspect
from mrcnn.model import MaskRCNN
from tests.helpers.matterport_cases import load_case, load_photo, matterport_config, write_case_h5
from tests.helpers.paths import FIXTURES
from tests.helpers.tiny_model import tiny_model

STEPS = FIXTURES / "matterport_steps"
CASE = FIXTURES / "matterport" / "r50_c2_512__balloon_410488422_crop512.npz"
NOTEBOOK_NODES = [
    ("pre_nms_anchors", "ROI/pre_nms_anchors:0"),
    ("refined_anchors", "ROI/refined_anchors:0"),
    ("refined_anchors_clipped", "ROI/refined_anchors_clipped:0"),
    ("post_nms_anchor_ix", "ROI/rpn_non_max_suppression:0"),
    ("proposals", "ROI"),
    ("rpn_class", "rpn_class"),
    ("detections", "mrcnn_detection"),
]


@pytest.fixture(scope="module")
def matterport_model(module_tmp):
    """The reference model's .h5 in an ordinary Config subclass, and the photo."""
    case = load_case(CASE)
    image = load_photo(case)
    h5 = write_case_h5(case, module_tmp.mktemp("h5"))
    model = MaskRCNN("inference", matterport_config(case), str(module_tmp.mktemp("logs")))
    model.load_weights(str(h5), by_name=True)
    return model, image


def assert_rows_match_up_to_ties(ours, keras, scores, atol, name=""):
    """Row i of ``ours`` is Keras's row i, or a neighbour's where their probabilities tie.

    Candidates whose probabilities lie within float32 rounding of each other (a step or two
    of 1.2e-7 near 1) can round to the same value on one CPU and to neighbours on another
    (Keras's softmax against our sigmoid, AVX2 against AVX-512 kernels); the stable sort then
    puts them in anchor order, so two neighbouring rows trade places. ``scores`` are our
    probabilities in our row order.
    """
    assert ours.shape == keras.shape, name
    wrong = np.flatnonzero(np.abs(ours - keras).max(axis=1) > atol)
    assert len(wrong) <= 0.05 * len(keras), f"{name}: {len(wrong)} rows differ"
    for row in wrong:
        partners = [r for r in (row - 1, row + 1) if 0 <= r < len(keras)]
        swapped = [r for r in partners if np.abs(ours[row] - keras[r]).max() <= atol]
        assert swapped, f"{name}: row {row} is no neighbour's of Keras"
        assert abs(scores[row] - scores[swapped[0]]) <= 2.5e-7, f"{name}: row {row} not a tie"


@pytest.fixture(scope="module")
def keras_steps():
    with np.load(STEPS / CASE.name) as f:
        return {key: f[key] for key in f.files}


def test_proposal_layer_nodes_are_matterports(matterport_model, keras_steps):
    model, image = matterport_model
    nodes = [(name, model.ancestor("ROI", node)) for name, node in NOTEBOOK_NODES]
    ours = model.run_graph([image], nodes)
    rows = len(keras_steps["pre_nms_anchors"])
    assert ours["pre_nms_anchors"].shape == (1, int(keras_steps["pre_nms_count"]), 4)
    scores = np.sort(ours["rpn_class"][0, :, 1])[::-1]
    for name in ("pre_nms_anchors", "refined_anchors", "refined_anchors_clipped"):
        assert_rows_match_up_to_ties(ours[name][0, :rows], keras_steps[name], scores, 1e-5, name)

    # Past the stored rows, candidates whose probabilities Keras rounds to the same float32
    # (a softmax of two logits; here the sigmoid of their difference, one step apart) may
    # trade places, which renumbers them: NMS keeps the same boxes, a few under the
    # neighbouring row number.
    kept, keras_kept = ours["post_nms_anchor_ix"], keras_steps["post_nms_anchor_ix"]
    assert kept.dtype == np.int32 and kept.shape == keras_kept.shape
    differ = np.flatnonzero(kept != keras_kept)
    assert len(differ) <= 0.01 * len(kept), f"{len(differ)} of {len(kept)} NMS picks differ"
    assert np.all(np.abs(kept[differ] - keras_kept[differ]) == 1), "not a choice between ties"
    assert np.all(np.abs(scores[kept[differ]] - scores[keras_kept[differ]]) <= 2.5e-7)
    proposals, keras_proposals = ours["proposals"][0], keras_steps["proposals"]
    distance = np.abs(proposals[:, None] - keras_proposals[None]).max(axis=2)  # [ours, Keras]
    assert distance.min(axis=0).max() < 1e-5 and distance.min(axis=1).max() < 1e-5  # same boxes
    # ... in Keras's order, but for neighbours whose probabilities tie
    assert_rows_match_up_to_ties(proposals, keras_proposals, scores[kept], 1e-5, "proposals")

    # The detection layer of the Matterport flavour, as detect reports it.
    detected = model.detect([image])[0]
    n = len(detected["scores"])
    np.testing.assert_allclose(ours["detections"][0, :n, 5], detected["scores"], atol=1e-6)
    assert not ours["detections"][0, n:].any()


def test_inspect_shows_the_proposal_layer_the_model_runs(matterport_model, keras_steps):
    """mrcnn inspect's pre-NMS boxes and ROI refinements come from the model's own flavour."""
    model, image = matterport_model
    stages = inspect.run_stages(model, image)
    height, width = stages.molded.shape[:2]
    keras = keras_steps["refined_anchors_clipped"]  # normalised (y1, x1, y2, x2)
    scale = np.array([height - 1, width - 1, height - 1, width - 1])
    keras_pixels = (keras * scale + [0, 0, 1, 1])[:, [1, 0, 3, 2]]
    scores = np.sort(model.run_graph([image], [("p", "rpn_class")])["p"][0, :, 1])[::-1]
    pre_nms = stages.pre_nms_boxes[: len(keras)]
    assert_rows_match_up_to_ties(pre_nms, keras_pixels, scores, 1e-3)
    # Each detection is the refinement of a ROI by its most likely class.
    for box in stages.detections["boxes"]:
        assert np.abs(stages.refined - box).max(axis=1).min() < 1e-3, box


def test_ancestor_names_a_known_node_and_none_for_others(matterport_model):
    model, _ = matterport_model
    assert model.ancestor("ROI", "ROI/refined_anchors:0") == "ROI/refined_anchors:0"
    nms = "ROI/rpn_non_max_suppression/NonMaxSuppressionV3:0"
    assert model.ancestor("ROI", nms) == nms
    assert model.ancestor("ROI", "ROI/no_such_node:0") is None


def test_every_residual_block_is_a_stage():
    model = tiny_model()
    image = np.random.default_rng(0).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    out = model.run_graph([image], [("b", "res3b_out"), ("c4", "res4f_out")])
    molded, _, _ = model.mold_inputs([image])
    body = model.net.backbone.body
    with torch.no_grad():
        x = torch.from_numpy(molded).permute(0, 3, 1, 2)
        x = body.maxpool(body.relu(body.bn1(body.conv1(x))))
        c2 = body.layer1(x)
        block_b = body.layer2[1](body.layer2[0](c2))
    np.testing.assert_allclose(out["b"][0], block_b[0].permute(1, 2, 0).numpy(), atol=1e-4)
    assert out["c4"].shape == (1, 8, 8, 1024)
    with pytest.raises(KeyError, match="res4f_out"):  # ResNet-50's stage 4 ends at f
        model.run_graph([image], [("x", "res4w_out")])


def test_resnet101_names_its_23_stage4_blocks():
    model = tiny_model(BACKBONE="resnet101")
    image = np.zeros((128, 128, 3), np.uint8)
    out = model.run_graph([image], [("f", "res4f_out"), ("w", "res4w_out"), ("c5", "res5c_out")])
    assert out["f"].shape == out["w"].shape == (1, 8, 8, 1024)
    assert not np.allclose(out["f"], out["w"])  # res4f is the sixth block, not C4


def test_detect_leaves_the_anchors_of_its_input_in_model_anchors():
    model = tiny_model()
    with pytest.raises(AttributeError, match="get_anchors"):
        _ = model.anchors
    model.detect([np.zeros((90, 120, 3), np.uint8)])
    pixels = model.anchors
    normalised = model.get_anchors((128, 128, 3))
    np.testing.assert_allclose(model.anchors, pixels)
    scale = np.array([127, 127, 127, 127])
    np.testing.assert_allclose(normalised * scale + [0, 0, 1, 1], pixels, atol=1e-4)

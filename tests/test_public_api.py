"""The public API stays where users find it: every ``mrcnn`` name that the README, docs/*.md
(docs/migrating.md included), samples/ (scripts, notebooks, README) and Matterport's own samples
use can be imported, and resolves to the object the package means."""

from __future__ import annotations

import ast
import importlib
import json
import re

import pytest

from tests.helpers.paths import REPO

#: What Matterport's samples (samples/balloon/balloon.py, samples/coco/coco.py,
#: samples/nucleus/nucleus.py, samples/shapes/train_shapes.ipynb and the inspect_data,
#: inspect_model and inspect_weights notebooks of coco, balloon and nucleus) use of its package.
MATTERPORT_NAMES = {
    "mrcnn.config": ["Config"],
    "mrcnn.model": [
        "MaskRCNN",
        "load_image_gt",
        "mold_image",
        "data_generator",
        "log",
        "parse_image_meta",
        "compose_image_meta",
        "build_rpn_targets",
        "unmold_image",
        "compute_backbone_shapes",
        "generate_random_rois",
        "build_detection_targets",
    ],
    "mrcnn.utils": [
        "Dataset",
        "COCO_MODEL_URL",
        "download_trained_weights",
        "compute_ap",
        "compute_ap_range",
        "compute_matches",
        "compute_recall",
        "compute_overlaps",
        "compute_overlaps_masks",
        "compute_iou",
        "extract_bboxes",
        "resize_image",
        "resize_mask",
        "minimize_mask",
        "expand_mask",
        "unmold_mask",
        "generate_anchors",
        "generate_pyramid_anchors",
        "norm_boxes",
        "denorm_boxes",
        "non_max_suppression",
        "apply_box_deltas",
        "box_refinement",
        "trim_zeros",
        "resize",
    ],
    "mrcnn.visualize": [
        "display_images",
        "display_instances",
        "display_top_masks",
        "display_table",
        "display_weight_stats",
        "display_differences",
        "draw_boxes",
        "draw_box",
        "draw_rois",
        "plot_precision_recall",
        "plot_overlaps",
        "random_colors",
        "apply_mask",
    ],
}
#: The MaskRCNN methods and attributes Matterport's samples call.
MATTERPORT_METHODS = [
    "detect",
    "train",
    "load_weights",
    "find_last",
    "get_imagenet_weights",
    "set_log_dir",
    "run_graph",
    "ancestor",
    "keras_model",
    "mold_inputs",
    "unmold_detections",
    "get_anchors",
    "detect_molded",
    "set_trainable",
    "anchors",
]

DOCUMENTS = [
    REPO / "README.md",
    *sorted((REPO / "docs").glob("*.md")),
    *sorted((REPO / "samples").rglob("*.md")),
]
SAMPLE_CODE = sorted((REPO / "samples").rglob("*.py")) + sorted((REPO / "samples").rglob("*.ipynb"))
DOTTED = re.compile(r"(?<![\w./])mrcnn(?:\.[A-Za-z_]\w*)+")
FROM_IMPORT = re.compile(r"^\s*from (mrcnn(?:\.\w+)*) import \(?([\w ,\n]+?)\)?\s*$", re.M)


def _text(path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        return "\n".join("".join(cell["source"]) for cell in cells if cell["cell_type"] == "code")
    return path.read_text()


def _code_imports(text: str) -> set[str]:
    """``module:name`` of every ``from mrcnn... import name`` (``module:`` for ``import``)."""
    found = set()
    for module, names in FROM_IMPORT.findall(text):
        for name in re.split(r"[,\s]+", names):
            if name and name != "as" and not name.startswith("#"):
                found.add(f"{module}:{name}")
    for line in text.splitlines():
        try:
            tree = ast.parse(line.strip())
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(f"{a.name}:" for a in node.names if a.name.startswith("mrcnn"))
    return found


def _references() -> dict[str, set[str]]:
    """Each dotted ``mrcnn.x.y`` and each imported name -> the files that use it."""
    refs: dict[str, set[str]] = {}
    for path in [*DOCUMENTS, *SAMPLE_CODE]:
        text = _text(path)
        where = str(path.relative_to(REPO))
        for name in DOTTED.findall(text):
            refs.setdefault(name.rstrip("."), set()).add(where)
        for name in _code_imports(text):
            refs.setdefault(name, set()).add(where)
    for module, names in MATTERPORT_NAMES.items():
        for name in names:
            refs.setdefault(f"{module}:{name}", set()).add("Matterport's samples")
    return refs


def resolve(reference: str):
    """Import ``module:name`` or the longest importable prefix of ``a.b.c`` and get the rest."""
    if ":" in reference:
        module, name = reference.split(":")
        imported = importlib.import_module(module)
        return getattr(imported, name) if name else imported
    parts = reference.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            found = getattr(found, attribute)
        return found
    raise ModuleNotFoundError(reference)


REFERENCES = _references()


def test_the_documents_name_many_mrcnn_names():
    """The scan itself works: the README's quick start and design names are among them."""
    assert {"mrcnn.model:MaskRCNN", "mrcnn.config:Config", "mrcnn.splash"} <= set(REFERENCES)
    assert len(REFERENCES) > 100


@pytest.mark.parametrize("reference", sorted(REFERENCES))
def test_every_documented_name_imports(reference):
    try:
        resolve(reference)
    except (ImportError, AttributeError) as error:
        raise AssertionError(
            f"{reference} (used in {', '.join(sorted(REFERENCES[reference]))}): {error}"
        ) from None


@pytest.mark.parametrize("name", MATTERPORT_METHODS)
def test_matterport_maskrcnn_methods_exist(name):
    from mrcnn.model import MaskRCNN

    assert hasattr(MaskRCNN, name)


def test_the_faces_are_the_implementations():
    """Matterport's names and the package faces re-export the very objects the package uses
    (no copies that could drift)."""
    import mrcnn
    from mrcnn import maskrcnn, splash, utils, visualize
    from mrcnn.compat import utils as compat_utils
    from mrcnn.drawing import matterport_figures
    from mrcnn.splash import filter as splash_filter

    assert mrcnn.MaskRCNN is maskrcnn.MaskRCNN is resolve("mrcnn.model:MaskRCNN")
    assert splash.color_splash is splash_filter.color_splash
    assert utils.compute_ap is compat_utils.compute_ap
    assert visualize.display_instances is matterport_figures.display_instances

"""Matterport's published notebooks and scripts, other than balloon.py, run on this package.

They are Matterport's code, so they are not in this repository: set MRCNN_MATTERPORT_REPO to a
checkout of https://github.com/matterport/Mask_RCNN; each test skips with that reason when its
file is absent. tests/helpers/matterport_samples.py says what is ported and how. Where a file
needs Matterport's COCO model, a Matterport-format .h5 with seeded random weights stands in
(tools/matterport_reference/h5_models.py). Each test checks that every image of the data the
file reads was read at least once.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import pytest

from tests.helpers import matterport_samples as mp
from tests.helpers.data import write_coco_folder, write_nucleus_folder
from tests.helpers.paths import BALLOON
from tools.matterport_reference.h5_models import (
    draw_weights,
    fixture_manifest,
    with_num_classes,
    write_h5,
)

pytest.importorskip("nbclient", reason="notebook tests need nbclient (test extra)")
pytest.importorskip("ipykernel", reason="notebook tests need ipykernel (test extra)")
pytest.importorskip("h5py", reason="reading Matterport .h5 files needs h5py")

#: As the balloon-script test: small output layers, so a random model's scores spread.
OUTPUT_SCALES = dict.fromkeys(
    ("rpn_class_raw", "rpn_bbox_pred", "mrcnn_class_logits", "mrcnn_bbox_fc", "mrcnn_mask"), 0.1
)


def needs(relative: str):
    return pytest.mark.skipif(mp.published(relative) is None, reason=mp.skip_reason(relative))


needs_balloon = pytest.mark.skipif(
    not BALLOON.is_dir(), reason=f"balloon dataset not found at {BALLOON}"
)


def random_h5(path, manifest="r101_c81_1024", num_classes=81, background_logit=0.0):
    """A Matterport-format .h5 with seeded random weights: by default mask_rcnn_coco.h5's
    layout (ResNet-101, 81 classes). The inspect_model notebooks need detections and positive
    ROIs (they index random ones), so there ``background_logit`` is negative: most ROIs then
    score above DETECTION_MIN_CONFIDENCE for some class."""
    path.parent.mkdir(parents=True, exist_ok=True)
    layers = with_num_classes(fixture_manifest(manifest), num_classes)
    weights = draw_weights(layers, 5, OUTPUT_SCALES, background_logit=background_logit)
    return write_h5(path, layers, weights, layout="keras-2.2")


def run_inspect_notebook(relative, root, images, replacements=(), keras_graph=False):
    """Runs an inspect notebook ported (``replacements``, and the TensorFlow lines with
    ``keras_graph``), then every image of its ``dataset`` through load_image_gt: all
    ``images`` of them load, and the notebook drew its figures."""
    notebook = mp.ported_notebook(
        relative,
        replacements=replacements,
        prelude=mp.PRELUDE.format(short={}),
        epilogue=mp.ALL_IMAGES.format(dataset="dataset", config="config"),
        keras_graph=keras_graph,
    )
    outputs = mp.run_notebook(notebook, relative, root)
    assert mp.stdout_json(outputs, "ALL-IMAGES") == {"images": images, "failed": {}}
    assert mp.figures(outputs) >= 10
    return outputs


SHAPES = "samples/shapes/train_shapes.ipynb"


@needs(SHAPES)
def test_train_shapes_notebook(tmp_path):
    """train_shapes.ipynb: 500 generated training images and 50 validation images, trained
    from the COCO .h5 (heads, then all layers), then detect and VOC mAP on 10 images."""
    random_h5(tmp_path / "mask_rcnn_coco.h5")  # the notebook's COCO_MODEL_PATH
    batch = 8  # the notebook's IMAGES_PER_GPU
    short = {
        "config": {
            # One epoch reads all 500 training and all 50 validation images (not 100 steps).
            "STEPS_PER_EPOCH": math.ceil(500 / batch),
            "VALIDATION_STEPS": math.ceil(50 / batch),
            "WORKERS": 0,
        },
    }
    notebook = mp.ported_notebook(
        SHAPES,
        prelude=mp.PRELUDE.format(short=short),
        epilogue=mp.COVERAGE.format(datasets='{"train": dataset_train, "val": dataset_val}'),
    )
    outputs = mp.run_notebook(notebook, SHAPES, tmp_path)
    coverage = mp.stdout_json(outputs, "READ-COVERAGE")
    assert coverage == {
        "train": {"read": 500, "images": 500},
        "val": {"read": 50, "images": 50},
    }
    calls = mp.stdout_json(outputs, "TRAIN-CALLS")
    assert [(c["epochs"], c["layers"]) for c in calls] == [(1, "heads"), (2, "all")]
    assert sorted(p.name for p in (tmp_path / "logs").glob("shapes*/*.pt")) == [
        "mrcnn_shapes_0001.pt",
        "mrcnn_shapes_0002.pt",
    ]
    assert mp.figures(outputs) >= 6  # 4 sample masks, ground truth, detections
    assert any("mAP: " in o.get("text", "") for o in outputs)


BALLOON_DATA = "samples/balloon/inspect_balloon_data.ipynb"
BALLOON_MODEL = "samples/balloon/inspect_balloon_model.ipynb"
#: balloon.py as the notebooks import it. On today's scikit-image its load_mask raises
#: IndexError for the 7 training photos whose polygons touch the far edge (Matterport issue
#: #2592; test_balloon_script.py runs the script unported to check that training passes over
#: them). The notebooks draw random photos and load them directly, so here it gets the fix
#: docs/migrating.md gives: the mask's shape as polygon()'s third argument.
BALLOON_SCRIPT = (
    "samples/balloon/balloon.py",
    (
        (
            "skimage.draw.polygon(p['all_points_y'], p['all_points_x'])",
            "skimage.draw.polygon(p['all_points_y'], p['all_points_x'], mask.shape[:2])",
        ),
    ),
)


def balloon_root(tmp_path):
    """The notebooks' ROOT_DIR: datasets/balloon is the shared balloon data, samples/balloon
    the ported balloon.py."""
    (tmp_path / "datasets").mkdir()
    (tmp_path / "datasets" / "balloon").symlink_to(BALLOON)
    mp.port_samples_package(tmp_path, BALLOON_SCRIPT)
    return tmp_path


@needs(BALLOON_DATA)
@needs_balloon
def test_inspect_balloon_data_notebook(tmp_path):
    """inspect_balloon_data.ipynb on the 61 training photos: masks, resizing, anchors and the
    data generator's targets (random ROIs) as the notebook draws them; every photo is read."""
    root = balloon_root(tmp_path)
    run_inspect_notebook(BALLOON_DATA, root, 61)


@needs(BALLOON_MODEL)
@needs_balloon
def test_inspect_balloon_model_notebook(tmp_path):
    """inspect_balloon_model.ipynb on the 13 validation photos with the last checkpoint of a
    Matterport logs folder (mask_rcnn_balloon_0030.h5, random weights): detection, the RPN and
    proposal stages through run_graph, the heads, activations; every photo is read."""
    root = balloon_root(tmp_path)
    random_h5(
        root / "logs" / "balloon20180405T1234" / "mask_rcnn_balloon_0030.h5",
        num_classes=2,
        background_logit=-3.0,
    )
    outputs = run_inspect_notebook(BALLOON_MODEL, root, 13, keras_graph=True)
    assert any("mask_rcnn_balloon_0030.h5" in o.get("text", "") for o in outputs)


COCO_DATA = "samples/coco/inspect_data.ipynb"
COCO_MODEL = "samples/coco/inspect_model.ipynb"
COCO_WEIGHTS = "samples/coco/inspect_weights.ipynb"
#: coco.py imports imgaug at the top (for its training augmentation); imgaug's last release
#: does not import next to numpy 2, so the import goes, as docs/migrating.md says.
COCO_SCRIPT = (
    "samples/coco/coco.py",
    (("import imgaug  # https://github.com/aleju/imgaug (pip3 install imgaug)\n", ""),),
)
COCO_DIR = (
    'COCO_DIR = "path to COCO dataset"  # TODO: enter value here',
    'COCO_DIR = os.path.join(ROOT_DIR, "datasets/coco")',
)


def coco_root(tmp_path, subset: str, count: int, image_folder: str | None = None):
    """ROOT_DIR with datasets/coco: ``count`` generated images in COCO's format with COCO's 80
    category slots (the COCO model's 81 outputs index the class names), and the ported
    coco.py in samples/coco."""
    write_coco_folder(tmp_path / "datasets" / "coco", subset, count, 80, image_folder)
    mp.port_samples_package(tmp_path, COCO_SCRIPT)
    return tmp_path


@needs(COCO_DATA)
def test_inspect_coco_data_notebook(tmp_path):
    """inspect_data.ipynb (COCO) on a generated train2014 set of 12 images."""
    root = coco_root(tmp_path, "train2014", 12)
    run_inspect_notebook(COCO_DATA, root, 12, replacements=[COCO_DIR])


@needs(COCO_MODEL)
def test_inspect_coco_model_notebook(tmp_path):
    """inspect_model.ipynb (COCO) on a generated minival2014 set of 6 images with a
    Matterport-format mask_rcnn_coco.h5 (random weights)."""
    root = coco_root(tmp_path, "minival2014", 6, image_folder="val2014")
    random_h5(root / "mask_rcnn_coco.h5", background_logit=-3.0)
    run_inspect_notebook(COCO_MODEL, root, 6, replacements=[COCO_DIR], keras_graph=True)


#: The histogram cell of inspect_weights.ipynb reads Keras layer objects (class names,
#: get_weights(), weights[w].name); get_trainable_layers() gives torch modules, so the cell is
#: rewritten for them, as docs/migrating.md shows.
KERAS_LAYER_OBJECTS = [
    (
        "LAYER_TYPES = ['Conv2D', 'Dense', 'Conv2DTranspose']",
        "LAYER_TYPES = ['Conv2d', 'Linear', 'ConvTranspose2d']",
    ),
    (
        "weights = layer.get_weights()",
        "weights = [p.detach().numpy() for p in layer.parameters(recurse=False)]",
    ),
    (
        "tensor = layer.weights[w]\n        ax[l, w].set_title(tensor.name)",
        "ax[l, w].set_title(f'{layer.__class__.__name__} weight {w}')",
    ),
]


@needs(COCO_WEIGHTS)
def test_inspect_coco_weights_notebook(tmp_path):
    """inspect_weights.ipynb with a Matterport-format mask_rcnn_coco.h5 (random weights): the
    weight statistics table and histograms. It reads no images."""
    root = tmp_path
    mp.port_samples_package(root, COCO_SCRIPT)
    random_h5(root / "mask_rcnn_coco.h5")
    notebook = mp.ported_notebook(
        COCO_WEIGHTS,
        replacements=KERAS_LAYER_OBJECTS,
        prelude=mp.PRELUDE.format(short={}),
        keras_graph=True,
    )
    outputs = mp.run_notebook(notebook, COCO_WEIGHTS, root)
    assert mp.figures(outputs) >= 1


NUCLEUS_SCRIPT_PATH = "samples/nucleus/nucleus.py"
NUCLEUS_DATA = "samples/nucleus/inspect_nucleus_data.ipynb"
NUCLEUS_MODEL = "samples/nucleus/inspect_nucleus_model.ipynb"
#: nucleus.py imports imgaug and trains with an iaa.SomeOf of five augmenters; imgaug does not
#: import next to numpy 2, so the import and that one expression become their
#: torchvision.transforms.v2 equivalents (docs/migrating.md's table).
NUCLEUS_SCRIPT = (
    NUCLEUS_SCRIPT_PATH,
    (
        (
            "from imgaug import augmenters as iaa",
            "from torchvision.transforms import v2\n"
            "from mrcnn.training.augment import RandomRotate90",
        ),
        (
            """    augmentation = iaa.SomeOf((0, 2), [
        iaa.Fliplr(0.5),
        iaa.Flipud(0.5),
        iaa.OneOf([iaa.Affine(rotate=90),
                   iaa.Affine(rotate=180),
                   iaa.Affine(rotate=270)]),
        iaa.Multiply((0.8, 1.5)),
        iaa.GaussianBlur(sigma=(0.0, 5.0))
    ])""",
            """    augmentation = v2.Compose([
        v2.RandomApply([v2.RandomHorizontalFlip(0.5)], p=0.2),
        v2.RandomApply([v2.RandomVerticalFlip(0.5)], p=0.2),
        v2.RandomApply([RandomRotate90()], p=0.2),
        v2.RandomApply([v2.ColorJitter(brightness=(0.8, 1.5))], p=0.2),
        v2.RandomApply([v2.GaussianBlur(9, sigma=(0.01, 5.0))], p=0.2),
    ])""",
        ),
    ),
)
#: Training images of the generated folder besides the script's 25 validation ids.
NUCLEUS_TRAIN_IMAGES = 12


def nucleus_root(tmp_path):
    """ROOT_DIR with datasets/nucleus in the Kaggle layout nucleus.py reads: the 25 ids of
    its VAL_IMAGE_IDS (128 x 128) and NUCLEUS_TRAIN_IMAGES others, RGBA; the ported nucleus.py
    in samples/nucleus."""
    published = mp.published(NUCLEUS_SCRIPT_PATH).read_text()
    val_ids = re.findall(r'"([0-9a-f]{64})"', published.split("VAL_IMAGE_IDS = [", 1)[1])
    assert len(val_ids) == 25
    # inspect_nucleus_data.ipynb looks one photo up by its id: it is among the training ones.
    notebook = mp.published(NUCLEUS_DATA)
    named = re.findall(r"[0-9a-f]{64}", notebook.read_text()) if notebook else []
    named = sorted(set(named) - set(val_ids))
    train_ids = named + [f"{k:064x}" for k in range(NUCLEUS_TRAIN_IMAGES - len(named))]
    # Sides of 128, 320 and 720 pixels fill each of the notebook's image-area bins.
    nuclei = tmp_path / "datasets" / "nucleus"
    write_nucleus_folder(nuclei, val_ids)
    write_nucleus_folder(nuclei, train_ids, sizes=(128, 320, 720), seed=1)
    mp.port_samples_package(tmp_path, NUCLEUS_SCRIPT)
    return tmp_path


@needs(NUCLEUS_SCRIPT_PATH)
def test_nucleus_script_trains(tmp_path, monkeypatch, capsys):
    """``nucleus.py train --dataset=... --subset=train --weights=coco`` as its usage says: the
    COCO .h5 (ResNet-101, random weights) into the script's ResNet-50 by layer name, then its
    two train calls (heads to epoch 20, all layers to epoch 40) with augmentation. The test
    caps each call at one epoch that reads every training and validation image, at 256 px."""
    root = nucleus_root(tmp_path)
    random_h5(root / "mask_rcnn_coco.h5")
    batch = 6  # the script's IMAGES_PER_GPU
    short = {
        "config": {
            "STEPS_PER_EPOCH": math.ceil(NUCLEUS_TRAIN_IMAGES / batch),
            "VALIDATION_STEPS": math.ceil(25 / batch),
            "IMAGE_MIN_DIM": 256,
            "IMAGE_MAX_DIM": 256,
            "WORKERS": 0,
        },
        "epochs_per_call": 1,
    }
    script = root / NUCLEUS_SCRIPT_PATH
    driver = root / "run_nucleus.py"
    driver.write_text(
        mp.PRELUDE.format(short=short)
        + "\nimport runpy, sys\n"
        + f"sys.argv = [{str(script)!r}, 'train', '--dataset={root / 'datasets' / 'nucleus'}',"
        + " '--subset=train', '--weights=coco']\n"
        + f"runpy.run_path({str(script)!r}, run_name='__main__')\n"
        + "print('TRAIN-CALLS', _json.dumps(TRAIN_CALLS))\n"
        + "print('READS', _json.dumps(sorted(len(v) for v in READS.values())))\n"
    )
    monkeypatch.chdir(script.parent)
    result = subprocess.run(
        [sys.executable, str(driver)], capture_output=True, text=True, timeout=3600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    lines = result.stdout.splitlines()
    calls = json.loads(next(x for x in lines if x.startswith("TRAIN-CALLS")).split(" ", 1)[1])
    assert [(c["epochs"], c["layers"], c["ran_to"]) for c in calls] == [
        (20, "heads", 1),
        (40, "all", 2),
    ]
    reads = json.loads(next(x for x in lines if x.startswith("READS")).split(" ", 1)[1])
    assert reads == sorted([NUCLEUS_TRAIN_IMAGES, 25])
    checkpoints = sorted(p.name for p in (root / "logs").glob("nucleus*/*.pt"))
    assert checkpoints == ["mrcnn_nucleus_0001.pt", "mrcnn_nucleus_0002.pt"]


#: inspect_nucleus_data.ipynb imports imgaug and shows an iaa.Sometimes of four augmenters:
#: the same port as nucleus.py's.
NUCLEUS_DATA_IMGAUG = [
    (
        "import imgaug\nfrom imgaug import augmenters as iaa",
        "from torchvision.transforms import v2",
    ),
    (
        """augmentation = iaa.Sometimes(0.9, [
    iaa.Fliplr(0.5),
    iaa.Flipud(0.5),
    iaa.Multiply((0.8, 1.2)),
    iaa.GaussianBlur(sigma=(0.0, 5.0))
])""",
        """augmentation = v2.RandomApply([v2.Compose([
    v2.RandomHorizontalFlip(0.5),
    v2.RandomVerticalFlip(0.5),
    v2.ColorJitter(brightness=(0.8, 1.2)),
    v2.GaussianBlur(9, sigma=(0.01, 5.0)),
])], p=0.9)""",
    ),
]


@needs(NUCLEUS_DATA)
def test_inspect_nucleus_data_notebook(tmp_path):
    """inspect_nucleus_data.ipynb on the generated folder's training subset."""
    root = nucleus_root(tmp_path)
    run_inspect_notebook(NUCLEUS_DATA, root, NUCLEUS_TRAIN_IMAGES, replacements=NUCLEUS_DATA_IMGAUG)


@needs(NUCLEUS_MODEL)
def test_inspect_nucleus_model_notebook(tmp_path):
    """inspect_nucleus_model.ipynb on the 25 validation images, with the last checkpoint of a
    Matterport logs folder (mask_rcnn_nucleus_0040.h5: ResNet-50, 2 classes, random)."""
    root = nucleus_root(tmp_path)
    random_h5(
        root / "logs" / "nucleus20180410T1200" / "mask_rcnn_nucleus_0040.h5",
        manifest="r50_c2_512",
        num_classes=2,
        # Fewer detections than DETECTION_MAX_INSTANCES (400): the notebook trims the zero
        # padding after the last one, so it needs some.
        background_logit=-1.0,
    )
    run_inspect_notebook(NUCLEUS_MODEL, root, 25, keras_graph=True)

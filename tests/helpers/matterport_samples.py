"""Running Matterport's published samples and notebooks on this package.

Matterport's files are not in this repository. Point ``MRCNN_MATTERPORT_REPO`` at a checkout of
https://github.com/matterport/Mask_RCNN (its ``samples/`` folder is what is read; its own
``mrcnn/`` package is never imported). Each file is ported only as any user of today's stack
must port it, and each port is a literal replacement that must match the published text, so a
test fails (instead of silently running something else) when the file differs:

- ``np.bool`` -> ``bool`` (numpy >= 1.24 removed the alias);
- paths the published file leaves for the user to fill in (``"/path/to/..."``);
- imgaug (its last release does not import next to numpy 2) -> the torchvision.transforms.v2
  equivalent that docs/migrating.md names;
- epochs, steps and image size cut for a 2-core CPU: done by a prelude cell or wrapper, never
  in the file; every image of the data is still read at least once.

Notebooks run in a real kernel (nbclient), from a copy under ``samples/<name>/`` of a temporary
root, so that their ``ROOT_DIR = os.path.abspath("../../")`` is that root.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from unittest import mock

#: A checkout of Matterport's repository, or "".
MATTERPORT_REPO = os.environ.get("MRCNN_MATTERPORT_REPO", "")

#: Seconds a notebook cell may take (the training cells are the long ones).
CELL_TIMEOUT = 1800


def published(relative: str) -> Path | None:
    """Matterport's published ``relative`` (e.g. "samples/shapes/train_shapes.ipynb"), or None
    when MRCNN_MATTERPORT_REPO is unset or lacks it."""
    if not MATTERPORT_REPO:
        return None
    path = Path(MATTERPORT_REPO) / relative
    return path if path.is_file() else None


def skip_reason(relative: str) -> str:
    return (
        f"set MRCNN_MATTERPORT_REPO to a checkout of Matterport's Mask_RCNN "
        f"(needs {relative}; see tests/helpers/matterport_samples.py)"
    )


def port_numpy(source: str) -> str:
    """``np.bool`` -> ``bool``, the one change numpy >= 1.24 forces on Matterport's code."""
    return re.sub(r"\bnp\.bool\b(?!_)", "bool", source)


def replace_exactly(source: str, old: str, new: str, where: str) -> str:
    """``source`` with ``old`` replaced by ``new``; AssertionError if ``old`` is not in it."""
    if old not in source:
        raise AssertionError(f"{where}: the published text {old!r} was not found to port")
    return source.replace(old, new)


def port_module(relative: str, destination_root: Path, replacements=()) -> Path:
    """Copies Matterport's ``relative`` .py under ``destination_root`` with the numpy port and
    ``replacements`` ((old, new) pairs, each of which must match) applied; returns the copy."""
    source = port_numpy(Path(MATTERPORT_REPO, relative).read_text())
    for old, new in replacements:
        source = replace_exactly(source, old, new, relative)
    target = destination_root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(source)
    return target


def ported_notebook(
    relative: str,
    replacements=(),
    prelude: str = "",
    epilogue: str = "",
    keras_graph: bool = False,
):
    """Matterport's notebook ``relative`` as an nbformat notebook: code cells ported (numpy and
    each (old, new) of ``replacements``, which must match somewhere, and with ``keras_graph``
    :func:`port_keras_graph`), ``prelude`` inserted as the first cell and ``epilogue`` as the
    last. AssertionError if a TensorFlow line is left after the port."""
    import nbformat

    notebook = nbformat.read(Path(MATTERPORT_REPO) / relative, as_version=4)
    unmatched = list(replacements)
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        cell.outputs, cell.execution_count = [], None
        cell.source = port_numpy(cell.source)
        if keras_graph:
            cell.source = port_keras_graph(cell.source)
        code = "\n".join(line.split("#", 1)[0] for line in cell.source.splitlines())
        if re.search(r"\btf\.|keras_model", code):  # comments may name them
            raise AssertionError(f"{relative}: TensorFlow left after the port:\n{cell.source}")
        for old, new in replacements:
            if old in cell.source:
                cell.source = cell.source.replace(old, new)
                if (old, new) in unmatched:
                    unmatched.remove((old, new))
    if unmatched:
        raise AssertionError(f"{relative}: published text not found to port: {unmatched}")
    if prelude:
        notebook.cells.insert(0, nbformat.v4.new_code_cell(prelude))
    if epilogue:
        notebook.cells.append(nbformat.v4.new_code_cell(epilogue))
    return notebook


def run_notebook(notebook, relative: str, root: Path) -> list[dict]:
    """Executes ``notebook`` in a python3 kernel from ``root / relative``'s folder; returns every
    code cell's outputs (raises nbclient's CellExecutionError, with the cell, on an error)."""
    import nbclient

    folder = (root / relative).parent
    folder.mkdir(parents=True, exist_ok=True)
    with mock.patch.dict(os.environ, {"MPLBACKEND": "Agg"}):  # the kernel inherits it
        nbclient.NotebookClient(
            notebook,
            timeout=CELL_TIMEOUT,
            kernel_name="python3",
            resources={"metadata": {"path": str(folder)}},
        ).execute()
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]


def stdout_json(outputs: list[dict], marker: str) -> dict:
    """The JSON object a cell printed after ``marker``."""
    for output in outputs:
        text = output.get("text", "")
        if marker in text:
            return json.loads(text.split(marker, 1)[1].strip().splitlines()[0])
    raise AssertionError(f"no output line starts with {marker!r}")


def figures(outputs: list[dict]) -> int:
    """How many images the notebook's cells displayed."""
    return sum("image/png" in o.get("data", {}) for o in outputs)


#: The prelude of every notebook run: records which images training and the notebook's own
#: loaders read, seeds numpy's and Python's random draws (Matterport's notebooks pick random
#: images), and caps training as ``SHORT`` (a dict the test formats in) says. ``SHORT`` maps a
#: config attribute to its value; the "epochs" key, if present, caps each train() call's epochs
#: above the model's current epoch.
PRELUDE = """
import json as _json, random as _random
import numpy as _np
import mrcnn.model as _modellib
import mrcnn.training.data as _training_data
from mrcnn.datasets.base import Dataset as _Dataset

_random.seed(0)
_np.random.seed(0)
_SHORT = {short!r}
READS = {{}}
TRAIN_CALLS = []

def _record(dataset, image_id):
    READS.setdefault(id(dataset), set()).add(int(image_id))

_call_loaders = _training_data.call_loaders
def _recording_call_loaders(dataset, image_id):
    _record(dataset, image_id)
    return _call_loaders(dataset, image_id)
_training_data.call_loaders = _recording_call_loaders

_load_mask = _Dataset.load_mask
_init, _train = _modellib.MaskRCNN.__init__, _modellib.MaskRCNN.train

def _short_init(self, mode, config, model_dir, *args, **kwargs):
    for key, value in _SHORT.get("config", {{}}).items():
        setattr(config, key, value)
    _init(self, mode, config, model_dir, *args, **kwargs)

def _short_train(self, train_dataset, val_dataset, learning_rate, epochs, layers, **kwargs):
    start = int(self.training_state.epoch)
    capped = min(epochs, start + _SHORT.get("epochs_per_call", epochs - start))
    TRAIN_CALLS.append({{"epochs": epochs, "layers": layers, "ran_to": capped}})
    return _train(self, train_dataset, val_dataset, learning_rate, capped, layers, **kwargs)

_modellib.MaskRCNN.__init__ = _short_init
_modellib.MaskRCNN.train = _short_train
"""

#: An epilogue line: what training read from each named dataset, as JSON after "READ-COVERAGE".
COVERAGE = """
_coverage = {{
    name: {{"read": len(READS.get(id(ds), ())), "images": len(ds.image_ids)}}
    for name, ds in {datasets}.items()
}}
print("READ-COVERAGE", _json.dumps(_coverage))
print("TRAIN-CALLS", _json.dumps(TRAIN_CALLS))
"""


def port_keras_graph(source: str) -> str:
    """The TensorFlow/Keras lines of Matterport's inspect_model notebooks, as docs/migrating.md
    says to port them (there is no TensorFlow graph here): ``import tensorflow as tf`` and
    ``import keras`` go; ``with tf.device(DEVICE):`` goes and its block is dedented;
    ``model.keras_model.get_layer("X").output`` becomes the stage name ``"X"`` and a
    ``tf.identity(...)`` around one goes too."""
    source = re.sub(r"^import (tensorflow as tf|keras)\n", "", source, flags=re.M)
    source = re.sub(r'model\.keras_model\.get_layer\(("[^"]+")\)\.output', r"\1", source)
    source = re.sub(r'tf\.identity\(("[^"]+")\)', r"\1", source)
    lines, out, dedent_from = source.split("\n"), [], None
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if re.match(r"\s*with tf\.device\(DEVICE\):\s*$", line):
            dedent_from = indent
            continue
        if dedent_from is not None and line.strip() and indent <= dedent_from:
            dedent_from = None
        out.append(line[4:] if dedent_from is not None and line.startswith(" " * 4) else line)
    return "\n".join(out)


#: An epilogue: every image of ``{dataset}`` through ``load_image_gt`` with ``{config}``, as
#: training reads it; JSON after "ALL-IMAGES": the count and {reference: error type} of those
#: whose loading raised.
ALL_IMAGES = """
_failed = {{}}
for _id in {dataset}.image_ids:
    try:
        _modellib.load_image_gt({dataset}, {config}, _id)
    except Exception as _error:
        _failed[str({dataset}.image_reference(_id))] = type(_error).__name__
print("ALL-IMAGES", _json.dumps({{"images": len({dataset}.image_ids), "failed": _failed}}))
"""


def port_samples_package(root: Path, *modules: tuple[str, tuple]) -> None:
    """``root/samples/__init__.py`` and each of Matterport's ``modules`` ((path, replacements), e.g.
    "samples/balloon/balloon.py") ported, with an ``__init__.py`` beside it, so that the
    notebooks' ``from samples.balloon import balloon`` and ``import coco`` find the ports."""
    (root / "samples").mkdir(parents=True, exist_ok=True)
    (root / "samples" / "__init__.py").write_text("")
    for module, replacements in modules:
        target = port_module(module, root, replacements)
        (target.parent / "__init__.py").write_text("")

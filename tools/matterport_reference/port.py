"""Copies the TensorFlow 2 port of Matterport's Mask R-CNN (Ben-Sicat/mrcnn_tf2) out of its
checkout and applies the few patches it needs to run on Python 3.12+ / TensorFlow 2.21.

Runs in the side environment only; nothing of the port ever enters this repository. Each patch
is (file, old text, new text, why) and must apply exactly once, so a different checkout fails
loudly instead of running a half-patched reference.

The port's package is also named ``mrcnn``. The tools run from the repository root
(``python -m tools.matterport_reference.NAME``), where ``import mrcnn`` would find this
repository's package, so :func:`import_port` imports the patched copy by its file location and
registers it as ``mrcnn``: the tools' and the port's own ``from mrcnn import ...`` then get it.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
import types
from pathlib import Path

# "distutils" is gone from Python 3.12 and deprecated in 3.11; the port only uses LooseVersion
# for two version checks, which a tuple comparison does as well.
_VERSION_SHIM = (
    "def LooseVersion(v):  # patched: distutils is gone from Python 3.12\n"
    "    import re as _re\n"
    "    return tuple(int(p) for p in _re.findall(r'\\d+', str(v))[:3])\n"
)

PATCHES = [
    (
        "mrcnn/model.py",
        "from distutils.version import LooseVersion\n",
        _VERSION_SHIM,
        "distutils.version.LooseVersion -> a tuple of ints (distutils removed in Python 3.12)",
    ),
    (
        "mrcnn/utils.py",
        "from distutils.version import LooseVersion\n",
        _VERSION_SHIM,
        "distutils.version.LooseVersion -> a tuple of ints (distutils removed in Python 3.12)",
    ),
    (
        "mrcnn/model.py",
        "if os.name is 'nt':",
        "if os.name == 'nt':",
        "`is` with a str literal (a SyntaxWarning on every import since Python 3.8; training only)",
    ),
]


def prepare_port(src: Path, dst: Path) -> Path:
    """Copies src/mrcnn to dst/mrcnn and applies PATCHES. Returns dst (import it with
    :func:`import_port`)."""
    if not (src / "mrcnn" / "model.py").is_file():
        raise SystemExit(
            f"error: {src} has no mrcnn/model.py: pass the port's checkout (Ben-Sicat/mrcnn_tf2)"
        )
    if (dst / "mrcnn").exists():
        shutil.rmtree(dst / "mrcnn")
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copytree(src / "mrcnn", dst / "mrcnn", ignore=shutil.ignore_patterns("__pycache__"))
    for rel, old, new, why in PATCHES:
        path = dst / rel
        text = path.read_text()
        if text.count(old) != 1:
            raise SystemExit(
                f"error: patch '{why}' expects {old!r} once in {rel}, found {text.count(old)}"
            )
        path.write_text(text.replace(old, new))
    return dst


def import_port(src: Path, dst: Path) -> types.ModuleType:
    """Prepares the port in dst (:func:`prepare_port`) and imports dst/mrcnn as the package
    ``mrcnn``, registered in ``sys.modules``: later ``import mrcnn.model`` / ``from mrcnn import
    ...`` (the caller's and the port's own) load its submodules from dst/mrcnn, whatever is on the
    import path. Call it before anything imports an ``mrcnn``."""
    folder = (prepare_port(src, dst) / "mrcnn").resolve()
    loaded = sys.modules.get("mrcnn")
    if loaded is not None:
        where = list(getattr(loaded, "__path__", []))
        if where == [str(folder)]:
            return loaded
        raise SystemExit(
            f"error: a package mrcnn is already imported from {where}: the port's mrcnn "
            f"({folder}) must be imported first"
        )
    init = folder / "__init__.py"
    if not init.is_file():  # a namespace-package checkout: give the copy an empty __init__
        init.write_text("")
    spec = importlib.util.spec_from_file_location(
        "mrcnn", init, submodule_search_locations=[str(folder)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["mrcnn"] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules["mrcnn"]
        raise
    return module

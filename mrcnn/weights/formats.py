"""What a weights file is: the format tags that loading records and the error for a bad file.

Below both :mod:`mrcnn.weights.loading` (which re-exports these names) and
:mod:`mrcnn.weights.keras_h5`, so
that the .h5 reader and the loader that dispatches to it need not import each other.
"""

from __future__ import annotations

import errno
import os

#: ``extras["format"]`` of weights read from a Matterport Keras .h5 file.
MATTERPORT_H5_FORMAT = "matterport-h5"
#: ``extras["format"]`` of a .safetensors written by ``mrcnn convert`` (weights and config).
CONVERTED_FORMAT = "mrcnn-weights"


class WeightsError(RuntimeError):
    """A weights file is missing, unreadable, or does not fit the network."""


def missing_weights_message(path: str | os.PathLike) -> str:
    """Why ``path`` (not a readable file) cannot be loaded, in one line: not found, a folder, a
    broken symbolic link (and where it points), or a loop of links."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return f"weights path {path} is a folder, not a file; pass the weights file inside it"
    if os.path.islink(path):
        try:
            os.stat(path)
        except OSError as error:
            if error.errno == errno.ELOOP:
                return f"weights path {path} is a loop of symbolic links; point it at a file"
        return (
            f"weights path {path} is a broken symbolic link (to {os.readlink(path)}, which does "
            "not exist); fix the link or pass the file itself"
        )
    return f"weights file not found: {path}"
